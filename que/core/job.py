"""A job as a `que_jobs` row."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from que.core import encoding


@dataclass(frozen=True)
class Job:
    """One `que_jobs` row. `args` is decoded from `args_json` on first use.

    `run_at` is a UTC datetime; a run_at Python cannot hold ('infinity', which que-interop 0.2 gave a job
    set aside after its retries, BC dates, years past 9999) shows as datetime.max or
    datetime.min, while `run_at_us` keeps the exact value every job statement matches on.
    """

    queue: str
    priority: int
    run_at: datetime
    job_id: int
    job_class: str
    args_json: str
    error_count: int
    last_error: str | None = None
    run_at_us: int = field(default=0, repr=False, compare=False)
    # The Que 2 dialect's columns (a 0.x row has none of them): keyword arguments and data
    # (tags under "tags") as JSON text, last_error's backtrace half, and when the job was
    # finished or expired. `job_id` is the row's id there, and `last_error` its
    # last_error_message.
    kwargs_json: str = "{}"
    data_json: str = "{}"
    last_error_backtrace: str | None = None
    finished_at: datetime | None = None
    expired_at: datetime | None = None
    job_schema_version: int | None = None

    @property
    def kwargs(self) -> dict[str, Any]:
        """The decoded keyword arguments (Que 2 dialect; {} on a 0.x row)."""
        value: dict[str, Any] = encoding.loads(self.kwargs_json)
        return value

    @property
    def tags(self) -> list[str]:
        """The job's tags (Que 2 dialect; [] on a 0.x row)."""
        found: list[str] = encoding.loads(self.data_json).get("tags", [])
        return found

    @property
    def args(self) -> Any:
        """The decoded arguments: a list when the job was written by a Que client,
        any JSON value when a que-go writer stored something else. Decoded once."""
        # Cached by hand: functools.cached_property takes a lock on every access (3.11).
        try:
            return self.__dict__["_args"]
        except KeyError:
            value = self.__dict__["_args"] = encoding.loads(self.args_json)
            return value
