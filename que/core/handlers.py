"""Handlers: the registry, how a job's arguments reach them, and what their outcome means.

Shared by the thread worker, the asyncio worker and LockedJob, so a handler's exception
means the same everywhere: KeyboardInterrupt and SystemExit keep their meaning (the row is
left as it is, the lock released, the exception goes on); anything else a handler raises,
BaseExceptions such as asyncio.CancelledError or GeneratorExit included, is the job's
failure and is recorded with the usual backoff.
"""

import contextvars
import inspect
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from que.core import validate as _validate
from que.core.errors import UnknownJobClass, short_message
from que.core.job import Job

log = logging.getLogger("que")

Handler = Callable[..., Any]
INTERRUPTS: Final = (KeyboardInterrupt, SystemExit)

_current_job: contextvars.ContextVar[Job] = contextvars.ContextVar("que_current_job")


def current_job() -> Job:
    """The job the calling handler is running (its id, error_count, queue ...)."""
    try:
        return _current_job.get()
    except LookupError:
        raise RuntimeError("current_job() called outside a que job handler") from None


# How Que 2 jobs asked to end otherwise than destroyed (que.finish, que.expire), by job id.
# A plain dict, not a context variable: an asyncio pool runs plain handlers in a thread
# with a copy of the context, and the runner must see what the handler asked.
_RESOLUTIONS: dict[int, str] = {}
FINISH: Final = "finish"
EXPIRE: Final = "expire"


def _resolve(action: str) -> None:
    job = current_job()
    if job.job_schema_version is None:
        raise ValueError(
            f"{action}() is Ruby Que 2's: it keeps a job's row ({action}ed) on a Que 2 table, and a Que 0.x "
            "table has no column for it; let the job end (its row is deleted) or raise"
        )
    _RESOLUTIONS[job.job_id] = action


def finish() -> None:
    """Inside a Que 2 job's handler: when it returns, keep the row with finished_at set
    instead of deleting it (Ruby Que 2's `finish`)."""
    _resolve(FINISH)


def expire() -> None:
    """Inside a Que 2 job's handler: when it returns, expire the job (expired_at set,
    error_count + 1, never retried) instead of deleting it (Ruby Que 2's `expire`)."""
    _resolve(EXPIRE)


def resolution(job: Job) -> str | None:
    """What the job's handler asked for (FINISH, EXPIRE or None: destroy); asked once."""
    return _RESOLUTIONS.pop(job.job_id, None)


class Registry(Mapping[str, Handler]):
    """Handlers by job class name. A plain dict works as well; this adds a decorator.

    >>> handlers = Registry()
    >>> @handlers.handler("SendEmail")
    ... def send_email(to, subject): ...
    """

    def __init__(self, handlers: Mapping[str, Handler] | None = None) -> None:
        self._handlers: dict[str, Handler] = {}
        for name, fn in (handlers or {}).items():
            self.register(name, fn)

    def register(self, job_class: str, fn: Handler) -> Handler:
        _validate.text("job_class", job_class, allow_empty=False)
        if not callable(fn):
            raise TypeError(f"handler for {job_class!r} must be callable, got {fn!r}")
        if job_class in self._handlers:
            raise ValueError(f"a handler for job class {job_class!r} is already registered")
        self._handlers[job_class] = fn
        return fn

    def handler(self, job_class: str | None = None) -> Callable[[Handler], Handler]:
        """Register the decorated function, under its __name__ if no name is given."""

        def decorate(fn: Handler) -> Handler:
            return self.register(job_class or fn.__name__, fn)

        return decorate

    def __getitem__(self, job_class: str) -> Handler:
        return self._handlers[job_class]

    def __iter__(self) -> Iterator[str]:
        return iter(self._handlers)

    def __len__(self) -> int:
        return len(self._handlers)


def find(handlers: Mapping[str, Handler], job: Job) -> Handler:
    handler = handlers.get(job.job_class)
    if handler is None:
        raise UnknownJobClass(job.job_class)
    return handler


def is_async(handler: Handler) -> bool:
    """Whether calling `handler` gives a coroutine (an `async def`, or an object whose
    __call__ is one): the asyncio worker awaits those and runs the others in threads."""
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(type(handler).__call__)


def arguments(job: Job) -> tuple[Any, ...]:
    """The handler's positional arguments, as Ruby calls `run(*args)`.

    A JSON array is spread into positional arguments. Any other JSON value (a que-go
    writer may store an object, a scalar or null) is passed as one argument; Ruby
    would instead splat an object into [key, value] pairs and null into nothing.
    """
    args = job.args
    return tuple(args) if isinstance(args, list) else (args,)


def keywords(job: Job) -> dict[str, Any]:
    """The handler's keyword arguments: a Que 2 job's kwargs ({} on a Que 0.x row)."""
    return {} if job.kwargs_json == "{}" else job.kwargs


class running:
    """current_job() is `job` inside the block. (A class: the hot path of every job, and
    cheaper than a generator-based context manager.)"""

    __slots__ = ("job", "token")

    def __init__(self, job: Job) -> None:
        self.job = job

    def __enter__(self) -> None:
        self.token = _current_job.set(self.job)

    def __exit__(self, *exc: object) -> None:
        _current_job.reset(self.token)


def call(handlers: Mapping[str, Handler], job: Job) -> BaseException | None:
    """Run the job's handler in this thread; its failure, or None. Interrupts propagate."""
    token = _current_job.set(job)
    try:
        find(handlers, job)(*arguments(job))
    except INTERRUPTS:
        raise
    except BaseException as failure:
        return failure
    finally:
        _current_job.reset(token)
    return None


def log_finished(job: Job, failure: BaseException | None, elapsed: float) -> None:
    if failure is None:
        if log.isEnabledFor(logging.INFO):
            log.info(
                "job_worked job_id=%s job_class=%s elapsed=%.5f",
                job.job_id,
                job.job_class,
                elapsed,
                extra={"event": "job_worked", "job_id": job.job_id, "job_class": job.job_class, "elapsed": elapsed},
            )
        return
    message = short_message(failure)
    log.info(
        "job_errored job_id=%s job_class=%s error=%s: %s elapsed=%.5f",
        job.job_id,
        job.job_class,
        type(failure).__name__,
        message,
        elapsed,
        extra={
            "event": "job_errored",
            "job_id": job.job_id,
            "job_class": job.job_class,
            "error_class": type(failure).__name__,
            "error_message": message,
            "elapsed": round(elapsed, 5),
        },
    )
