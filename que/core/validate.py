"""Checking what a caller asks to enqueue, before any SQL runs: one bad field, one clear
error naming the value and the rule, and nothing written."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from que.core import encoding

SMALLINT_MIN: Final = -32768
SMALLINT_MAX: Final = 32767
# queue is part of que_jobs' primary key, whose index entries PostgreSQL limits to 2704
# bytes; at most 2000 bytes leaves room for the rest of the key however the text compresses.
QUEUE_MAX_BYTES: Final = 2000


@dataclass(frozen=True)
class NewJob:
    """One job for `Client.enqueue_many`. `queue` None is the dialect's default ('' on a Que
    0.x table, 'default' on a Que 2 one); `kwargs` and `tags` need a Que 2 table."""

    job_class: str
    args: Sequence[Any] = ()
    queue: str | None = None
    priority: int = 100
    run_at: datetime | None = None
    kwargs: Mapping[str, Any] | None = None
    tags: Sequence[str] | None = None


def text(name: str, value: object, *, allow_empty: bool) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {value!r} of type {type(value).__name__}")
    if not allow_empty and not value:
        raise ValueError(f"{name} must not be empty")
    if "\x00" in value:
        raise ValueError(f"{name} {value!r} contains a NUL character, which PostgreSQL text cannot hold")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} {value!r} contains an unpaired surrogate") from None
    return value


def queue(value: object) -> str:
    checked = text("queue", value, allow_empty=True)
    size = len(checked.encode("utf-8"))
    if size > QUEUE_MAX_BYTES:
        raise ValueError(
            f"queue {checked[:40]!r}... is {size} bytes long; queue is part of que_jobs' primary key, whose "
            f"index entries PostgreSQL limits, so que accepts at most {QUEUE_MAX_BYTES} bytes (UTF-8)"
        )
    return checked


def priority(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"priority must be an int, got {value!r} of type {type(value).__name__}")
    if not SMALLINT_MIN <= value <= SMALLINT_MAX:
        raise ValueError(f"priority {value} is outside the smallint range {SMALLINT_MIN}..{SMALLINT_MAX}")
    return value


def run_at(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(
            f"run_at must be a timezone-aware datetime or None, got {value!r} of type {type(value).__name__}"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"run_at {value!r} is naive: give it a tzinfo, because the server would "
            "otherwise read it in its own time zone"
        )
    return value.astimezone(UTC)


BIGINT_MIN: Final = -(2**63)
BIGINT_MAX: Final = 2**63 - 1


def job_id(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"job_id must be an int, got {value!r} of type {type(value).__name__}")
    if not BIGINT_MIN <= value <= BIGINT_MAX:
        raise ValueError(f"job_id {value} is outside the bigint range of que_jobs.job_id")
    return value


def max_retries(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"max_retries must be an int or None, got {value!r} of type {type(value).__name__}")
    if value < 0:
        raise ValueError(f"max_retries must be 0 or more, got {value}")
    return value


def args(value: object) -> str:
    if type(value) is list or type(value) is tuple:  # the usual case, without the ABC check below
        return encoding.encode_args(value)
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise TypeError(f"args must be a list or tuple of positional arguments, got {value!r}")
    return encoding.encode_args(value)


def new_job(item: object) -> NewJob:
    if isinstance(item, NewJob):
        return item
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
        return NewJob(item[0], item[1])
    raise TypeError(f"must be a que.NewJob or a (job_class, args) tuple such as ('SendEmail', [42]), got {item!r:.80}")
