"""Checking a Que 0.x job before any SQL runs: one bad field, one clear error naming the value
and the rule, and nothing written (que.core.validate has the checks both dialects share)."""

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from que.core.validate import args, new_job, priority, queue, run_at, text


class Checked(NamedTuple):
    """A job whose fields passed every check; `args` is its JSON text, run_at is UTC.
    (A named tuple: batches make thousands of them, and it is the cheapest to build.)"""

    job_class: str
    args: str
    queue: str
    priority: int
    run_at: datetime | None

    def texts(self) -> dict[str, str]:
        return {"job_class": self.job_class, "queue": self.queue, "args": self.args}

    def params(self) -> dict[str, Any]:
        return {
            "job_class": self.job_class,
            "args": self.args,
            "queue": self.queue,
            "priority": self.priority,
            "run_at": self.run_at,
        }


def job(job_class: object, job_args: object, job_queue: object, job_priority: object, job_run_at: object) -> Checked:
    """Check one job's fields and encode its args."""
    return Checked(
        job_class=text("job_class", job_class, allow_empty=False),
        args=args(job_args),
        queue=queue(job_queue),
        priority=priority(job_priority),
        run_at=run_at(job_run_at),
    )


def refuse_que2_fields(kwargs: object, tags: object) -> None:
    """A Que 0.x table has no kwargs or data column: refuse them rather than drop them."""
    for name, value in (("kwargs", kwargs), ("tags", tags)):
        if value is not None:
            raise ValueError(
                f"{name}={value!r:.60} needs a Que 1.x/2.x table (schema version 4 or later); que_jobs is a "
                "Que 0.x table (version 3 or earlier), which has no column for it. Migrate it with "
                "client.migrate(7) if every worker on it runs Que 2.x"
            )


def many(jobs: object) -> list[Checked]:
    """Check every job of a batch; one bad job rejects the batch, naming its index."""
    if isinstance(jobs, str | bytes | Mapping) or not isinstance(jobs, Iterable):
        raise TypeError(f"jobs must be an iterable of que.NewJob or (job_class, args) tuples, got {jobs!r:.80}")
    checked = []
    known: set[tuple[str, str]] = set()  # (job_class, queue) pairs already checked in this batch
    for index, item in enumerate(jobs):
        try:
            spec = new_job(item)
            if spec.kwargs is not None or spec.tags is not None:
                refuse_que2_fields(spec.kwargs, spec.tags)
            job_queue = "" if spec.queue is None else spec.queue
            names = (spec.job_class, job_queue)
            if type(spec.job_class) is str and type(job_queue) is str and names in known:
                fields = (spec.job_class, args(spec.args), job_queue, priority(spec.priority), run_at(spec.run_at))
                checked.append(Checked(*fields))
                continue
            checked.append(job(spec.job_class, spec.args, job_queue, spec.priority, spec.run_at))
            known.add(names)
        except (TypeError, ValueError) as error:
            raise type(error)(f"jobs[{index}]: {error}") from None
    return checked
