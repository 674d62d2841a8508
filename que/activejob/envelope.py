"""The row a Rails app's `perform_later` writes through ActiveJob's Que adapter, and what
Python needs to run one: the job class Que sees (the adapter's JobWrapper) and the envelope
in its args (ActiveJob::Core#serialize, activejob/lib/active_job/core.rb).

Rails versions write two envelopes (FORMATS): 6.1 and 7.0 stamp enqueued_at to the second;
7.1 on stamps it to the nanosecond, add scheduled_at, and use the 7.1 argument format
(que.activejob.arguments). The adapter passes the job's queue_name and priority to Que as
the row's queue and priority, and the envelope keeps them too (priority null unless set).
"""

import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from que.activejob import arguments

# The Que job class of every ActiveJob job (activejob/lib/active_job/queue_adapters/que_adapter.rb).
WRAPPER: Final = "ActiveJob::QueueAdapters::QueAdapter::JobWrapper"
# Rails version -> the envelope and argument format it writes and reads.
FORMATS: Final = {"6.1": "6.1", "7.0": "6.1", "7.1": "7.1", "7.2": "7.1", "8.0": "7.1"}
# ActiveJob's default queue_name.
DEFAULT_QUEUE: Final = "default"
_CONSTANT: Final = re.compile(r"\A[A-Z][A-Za-z0-9_]*(::[A-Z][A-Za-z0-9_]*)*\Z")


def rails_format(rails: str) -> str:
    try:
        return FORMATS[rails]
    except KeyError:
        raise ValueError(f"rails={rails!r}: que.activejob writes the envelopes of Rails {', '.join(FORMATS)}") from None


def _stamp(moment: datetime, nanoseconds: bool) -> str:
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{utc.microsecond:06d}000Z" if nanoseconds else f"{text}Z"


def build(
    job_class: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    *,
    queue: str,
    priority: int | None,
    scheduled_at: datetime | None,
    rails: str,
    locale: str,
    timezone: str | None,
    now: datetime,
    job_id: str | None = None,
) -> dict[str, Any]:
    """The envelope, its keys in Rails' order. Raises ValueError (ArgumentError: the value
    and the rule) for a job class that is no Ruby constant or an argument ActiveJob refuses."""
    form = rails_format(rails)
    if not isinstance(job_class, str) or not _CONSTANT.match(job_class):
        raise ValueError(f"job_class {job_class!r} is not a Ruby class name (such as SendEmailJob or Mail::SendJob)")
    if not isinstance(queue, str) or not queue:
        raise ValueError(f"queue {queue!r}: an ActiveJob queue_name is a non-empty string")
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
        raise ValueError(f"priority {priority!r}: an integer, or None for the queue's default")
    envelope: dict[str, Any] = {
        "job_class": job_class,
        "job_id": job_id or str(uuid.uuid4()),
        "provider_job_id": None,
        "queue_name": queue,
        "priority": priority,
        "arguments": arguments.serialize(args, kwargs, form),
        "executions": 0,
        "exception_executions": {},
        "locale": locale,
        "timezone": timezone,
        "enqueued_at": _stamp(now, nanoseconds=form != "6.1"),
    }
    if form != "6.1":
        envelope["scheduled_at"] = None if scheduled_at is None else _stamp(scheduled_at, nanoseconds=True)
    return envelope


def read(job_args: Any) -> dict[str, Any]:
    """The envelope of a JobWrapper row's args (one JSON object in an array)."""
    if not (isinstance(job_args, list) and len(job_args) == 1 and isinstance(job_args[0], dict)):
        raise ValueError(f"an ActiveJob row's args are one envelope object in an array, not {job_args!r:.200}")
    envelope = job_args[0]
    for key in ("job_class", "arguments"):
        if key not in envelope:
            raise ValueError(f"the ActiveJob envelope has no {key!r}: {sorted(envelope)}")
    return envelope
