"""A job as a `que_jobs` row."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from que import encoding


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
