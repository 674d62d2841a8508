"""Checking a Que 2 dialect job before any SQL runs (que.core.validate does the 0.x fields).

The limits are the table's own CHECK constraints (Ruby Que 2.x's migration 4), checked here
so a bad job gets an error naming the value and the rule instead of a constraint name, and
nothing is written.
"""

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, NamedTuple

from que.core import encoding, hooks
from que.core import validate as _validate

QUEUE_MAX_CHARS: Final = 100
JOB_CLASS_MAX_CHARS: Final = 200
TAGS_MAX: Final = 5
# The valid_data constraint measures a tag as jsonb writes it: quotes and escapes included.
# (Ruby Que 2.4.1's own check counts 100 plain characters, so its enqueue of a tag of 99 or
# 100 fails on the constraint instead.)
TAG_MAX_JSON_CHARS: Final = 100
# Ruby Que's Que.default_queue: where a job goes when it names no queue.
DEFAULT_QUEUE: Final = "default"
# A \u0000 escape in JSON text that is not itself an escaped backslash followed by "u0000".
_NUL_ESCAPE: Final = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


class Checked2(NamedTuple):
    """A Que 2 job whose fields passed every check; args, kwargs and data are JSON text."""

    job_class: str
    args: str
    kwargs: str
    data: str
    queue: str
    priority: int
    run_at: datetime | None


def _no_nul(text: str, name: str) -> str:
    # jsonb refuses the escape \u0000 (PostgreSQL text cannot hold NUL), so Ruby's insert
    # fails on it too; say which argument instead.
    if _NUL_ESCAPE.search(text):
        raise ValueError(f"{name} contains a NUL character (\\u0000), which a jsonb column cannot hold")
    return text


def _limited(name: str, value: object, most: int, *, allow_empty: bool) -> str:
    checked = _validate.text(name, value, allow_empty=allow_empty)
    if len(checked) > most:
        raise ValueError(
            f"{name} {checked[:40]!r}... is {len(checked)} characters long; que_jobs' {name} constraint allows at "
            f"most {most}"
        )
    return checked


def kwargs(value: object) -> str:
    if value is None:
        return "{}"
    if not isinstance(value, Mapping):
        raise TypeError(f"kwargs must be a dict of keyword arguments, got {value!r} of type {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise TypeError(f"kwargs keys must be str (they are Ruby keyword names), got {key!r}")
    return _no_nul(encoding.dumps(dict(value), "kwargs"), "kwargs")


def _tag(value: object) -> str:
    tag = _validate.text("tag", value, allow_empty=True)
    written = json.dumps(tag, ensure_ascii=False)  # escapes what jsonb's output escapes
    if len(written) > TAG_MAX_JSON_CHARS:
        raise ValueError(
            f"tag {tag[:40]!r}... is {len(written)} characters as jsonb writes it (quotes and escapes included); "
            f"que_jobs' valid_data constraint allows at most {TAG_MAX_JSON_CHARS}, so 98 plain characters"
        )
    return tag


def tags(value: object, extra: Mapping[str, Any] | None = None) -> str:
    """The job's data: its tags, and what hooks add (que.Hook.job_data)."""
    if value is None:
        return "{}" if not extra else _no_nul(encoding.dumps(dict(extra), "data"), "data")
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise TypeError(f"tags must be a list of str, got {value!r}")
    if len(value) > TAGS_MAX:
        raise ValueError(f"a job has at most {TAGS_MAX} tags (que_jobs' valid_data constraint), got {len(value)}")
    checked = [_tag(tag) for tag in value]
    return _no_nul(encoding.dumps({"tags": checked, **(extra or {})}, "tags"), "tags")


def job(
    job_class: object,
    job_args: object,
    job_kwargs: object,
    job_tags: object,
    queue: object,
    priority: object,
    run_at: object,
) -> Checked2:
    return Checked2(
        job_class=_limited("job_class", job_class, JOB_CLASS_MAX_CHARS, allow_empty=False),
        args=_no_nul(_validate.args(job_args), "args"),
        kwargs=kwargs(job_kwargs),
        data=tags(job_tags, hooks.enqueue_data(str(job_class), DEFAULT_QUEUE if queue is None else str(queue))),
        queue=DEFAULT_QUEUE if queue is None else _limited("queue", queue, QUEUE_MAX_CHARS, allow_empty=True),
        priority=_validate.priority(priority),
        run_at=_validate.run_at(run_at),
    )


def many(jobs: object) -> list[Checked2]:
    """Check every job of a batch; one bad job rejects the batch, naming its index."""
    if isinstance(jobs, str | bytes | Mapping) or not isinstance(jobs, Iterable):
        raise TypeError(f"jobs must be an iterable of que.NewJob or (job_class, args) tuples, got {jobs!r:.80}")
    checked = []
    for index, item in enumerate(jobs):
        try:
            spec = _validate.new_job(item)
            fields = (spec.job_class, spec.args, spec.kwargs, spec.tags, spec.queue, spec.priority, spec.run_at)
            checked.append(job(*fields))
        except (TypeError, ValueError) as error:
            raise type(error)(f"jobs[{index}]: {error}") from None
    return checked
