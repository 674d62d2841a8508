"""Hooks: code of yours that runs around every job a worker of this process runs, on
threads and asyncio alike, in every dialect. Metrics, traces and the job log are hooks.

    class Timing(que.Hook):
        def job_ended(self, job, end):
            print(job.job_class, end.outcome, end.duration)

    que.add_hook(Timing())

A hook subclasses Hook and overrides what it needs. `job_started` runs in the worker just
before the handler (in the handler's own thread or task, so a context variable it sets is
the handler's: a trace span, say), and `job_ended` right after, in the same place, with how
the job ends (`JobEnd`), before the outcome is written. `job_errored`, `job_retry_scheduled`
and `job_expired` follow `job_ended` for those ends. A hook that raises is logged
(`hook_failed`) and never fails the job or the worker. Hooks are process-wide, as the
workers of a process share its metrics registry and tracer.
"""

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from que.core.errors import short_message
from que.core.job import Job
from que.core.outcome import Outcome

log = logging.getLogger("que")

# How a job ended, by the Outcome kind the dialect chose for it.
WORKED: Final = "worked"  # the handler returned; the row is deleted (destroyed)
FINISHED: Final = "finished"  # Que 1.x/2.x: the handler asked finish(); the row stays
EXPIRED: Final = "expired"  # Que 1.x/2.x: expire() asked, or past the retry limit
RETRY: Final = "retry"  # the handler raised; due again after the backoff
DEAD: Final = "dead"  # the handler raised past Que 0.x's retry limit (max_retries)
_OUTCOMES: Final = {
    Outcome.DESTROY: WORKED,
    Outcome.FINISH: FINISHED,
    Outcome.EXPIRE: EXPIRED,
    Outcome.RETRY: RETRY,
    Outcome.DEAD: DEAD,
}


@dataclass(frozen=True)
class JobEnd:
    """How one run of a job ended: `outcome` (WORKED, FINISHED, EXPIRED, RETRY or DEAD),
    `duration` (seconds in the handler), `error` (what the handler raised, or None) and
    `retry_in` (seconds until it is due again, for RETRY)."""

    outcome: str
    duration: float
    error: BaseException | None = None
    retry_in: float | None = None


class Hook:
    """Override any of these; each is called in the worker, around the handler."""

    def job_started(self, job: Job) -> None:
        """The handler is about to run."""

    def job_ended(self, job: Job, end: JobEnd) -> None:
        """The handler returned or raised; `end` says how the job ends."""

    def job_errored(self, job: Job, error: BaseException, end: JobEnd) -> None:
        """The handler raised `error` (after job_ended)."""

    def job_retry_scheduled(self, job: Job, end: JobEnd) -> None:
        """The job failed and is due again in `end.retry_in` seconds (after job_ended)."""

    def job_expired(self, job: Job, end: JobEnd) -> None:
        """The job is set aside for good: expired, or dead past the retry limit."""

    def job_data(self, job_class: str, queue: str) -> Mapping[str, Any] | None:
        """Keys to add to the `data` of a job being enqueued (Que 1.x/2.x tables; Ruby Que
        reads only `tags` there and keeps the rest). Called in the enqueuing thread or task,
        so it sees the caller's context: a trace context to carry, say. Not `tags`."""
        return None


class LogHook(Hook):
    """The job log: `job_worked` and `job_errored` (docs/operations.md lists every event)."""

    def job_ended(self, job: Job, end: JobEnd) -> None:
        fields = {"job_id": job.job_id, "job_class": job.job_class, "queue": job.queue, "outcome": end.outcome}
        if end.error is None:
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "job_worked job_id=%s job_class=%s elapsed=%.5f",
                    job.job_id,
                    job.job_class,
                    end.duration,
                    extra={"event": "job_worked", **fields, "elapsed": end.duration},
                )
            return
        message = short_message(end.error)
        log.info(
            "job_errored job_id=%s job_class=%s error=%s: %s elapsed=%.5f",
            job.job_id,
            job.job_class,
            type(end.error).__name__,
            message,
            end.duration,
            extra={
                "event": "job_errored",
                **fields,
                "error_class": type(end.error).__name__,
                "error_message": message,
                "elapsed": round(end.duration, 5),
                "retry_in": end.retry_in,
            },
        )


H = TypeVar("H", bound=Hook)
_lock = threading.Lock()
_hooks: tuple[Hook, ...] = (LogHook(),)


def add_hook(hook: Hook) -> Hook:
    """Run `hook` around every job this process's workers run, from their next job on."""
    global _hooks
    if not isinstance(hook, Hook):
        raise TypeError(f"a hook is a que.Hook (subclass it and override its methods), not {hook!r}")
    with _lock:
        if hook in _hooks:
            raise ValueError(f"{hook!r} is already added")
        _hooks = (*_hooks, hook)
    return hook


def remove_hook(hook: Hook) -> None:
    global _hooks
    with _lock:
        if hook not in _hooks:
            raise ValueError(f"{hook!r} is not added")
        _hooks = tuple(h for h in _hooks if h is not hook)


@contextmanager
def hooked(hook: H) -> Iterator[H]:
    """add_hook for the length of a with block (tests, a request)."""
    add_hook(hook)
    try:
        yield hook
    finally:
        remove_hook(hook)


def _each(method: str, *args: object) -> None:
    for hook in _hooks:
        try:
            getattr(hook, method)(*args)
        except Exception:
            log.exception("hook_failed %s.%s", type(hook).__name__, method, extra={"event": "hook_failed"})


def enqueue_data(job_class: str, queue: str) -> dict[str, Any]:
    """What every hook adds to a new Que 1.x/2.x job's data (a hook that raises adds nothing)."""
    found: dict[str, Any] = {}
    for hook in _hooks:
        try:
            extra = hook.job_data(job_class, queue)
        except Exception:
            log.exception("hook_failed %s.job_data", type(hook).__name__, extra={"event": "hook_failed"})
            continue
        if extra:
            if "tags" in extra:
                raise ValueError(f"{type(hook).__name__}.job_data may not set 'tags': a job's tags are enqueue's")
            found.update(extra)
    return found


def started(job: Job) -> None:
    """Called by the workers just before a job's handler runs."""
    _each("job_started", job)


def ended(job: Job, outcome: Outcome, duration: float, error: BaseException | None) -> JobEnd:
    """Called by the workers right after a job's handler, with the end its dialect chose."""
    kind = _OUTCOMES[outcome.kind]
    end = JobEnd(kind, duration, error, outcome.delay if kind == RETRY else None)
    _each("job_ended", job, end)
    if error is not None:
        _each("job_errored", job, error, end)
    if kind == RETRY:
        _each("job_retry_scheduled", job, end)
    elif kind in (EXPIRED, DEAD):
        _each("job_expired", job, end)
    return end
