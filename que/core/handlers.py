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
from que.core.errors import UnknownJobClass
from que.core.job import Job

log = logging.getLogger("que")

Handler = Callable[..., Any]
INTERRUPTS: Final = (KeyboardInterrupt, SystemExit)


class Run:
    """One run of one job's handler: the job, whether its table keeps finished and expired
    rows (Que 1.x/2.x: then the handler may ask for that end), and what it asked. Inside the
    block, current_job() is the job. (A class, not a generator-based context manager: this
    is the hot path of every job.)

    Kept per run, in a context variable holding this object: an asyncio pool runs a plain
    handler in a thread with a copy of the context, which holds the same object, so what the
    handler asks is seen by its runner, and by no other run, of this pool or another."""

    __slots__ = ("asked", "job", "keeps_rows", "token")

    def __init__(self, job: Job, keeps_rows: bool = False) -> None:
        self.job = job
        self.keeps_rows = keeps_rows
        self.asked: str | None = None

    def __enter__(self) -> "Run":
        self.token = _current.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _current.reset(self.token)


_current: contextvars.ContextVar[Run] = contextvars.ContextVar("que_current_run")
FINISH: Final = "finish"
EXPIRE: Final = "expire"


def _run() -> Run:
    try:
        return _current.get()
    except LookupError:
        raise RuntimeError("called outside a que job handler") from None


def current_job() -> Job:
    """The job the calling handler is running (its id, error_count, queue ...)."""
    return _run().job


def _ask(action: str) -> None:
    run = _run()
    if not run.keeps_rows:
        raise ValueError(
            f"{action}() is Ruby Que 1.x/2.x's: it keeps a job's row ({action}ed) on such a table, and a Que 0.x "
            "table has no column for it; let the job end (its row is deleted) or raise"
        )
    run.asked = action


def finish() -> None:
    """Inside a Que 1.x/2.x job's handler: when it returns, keep the row with finished_at
    set instead of deleting it (Ruby Que 2's `finish`). If the handler then raises, the row
    stays finished and the error is recorded too, as in Ruby."""
    _ask(FINISH)


def expire() -> None:
    """Inside a Que 1.x/2.x job's handler: when it returns, expire the job (expired_at set,
    error_count + 1, never retried) instead of deleting it (Ruby Que 2's `expire`)."""
    _ask(EXPIRE)


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

    def handler(self, job_class: str | None = None) -> Callable[[Handler], "JobType"]:
        """Register the decorated function, under its __name__ if no name is given. What
        the decoration gives back still calls the function, and enqueues its jobs under the
        same name (`send_email.enqueue(client, "ann@example.com")`), so the name a job is
        enqueued under and the name it is handled under cannot drift apart."""

        def decorate(fn: Handler) -> JobType:
            name = job_class or fn.__name__
            self.register(name, fn)
            return JobType(name, fn)

        return decorate

    def __getitem__(self, job_class: str) -> Handler:
        return self._handlers[job_class]

    def __iter__(self) -> Iterator[str]:
        return iter(self._handlers)

    def __len__(self) -> int:
        return len(self._handlers)


class JobType:
    """A registered handler and its job class: call it as the function, or enqueue a job
    of it with any client (`enqueue` on a que.Client, `aenqueue` on a que.aio.AsyncClient,
    the client's options as keywords: queue, priority, run_at, kwargs, tags, conn)."""

    def __init__(self, job_class: str, fn: Handler) -> None:
        self.job_class = job_class
        self.fn = fn
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", job_class)
        self.__wrapped__ = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<que job {self.job_class} handled by {self.fn!r}>"

    def enqueue(self, client: Any, *args: Any, **options: Any) -> Job:
        job: Job = client.enqueue(self.job_class, *args, **options)
        return job

    async def aenqueue(self, client: Any, *args: Any, **options: Any) -> Job:
        job: Job = await client.enqueue(self.job_class, *args, **options)
        return job

    def new(self, *args: Any, **options: Any) -> Any:
        """A que.NewJob of this class, for enqueue_many."""
        return _validate.NewJob(self.job_class, args, **options)


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
    writer may store an object, a scalar or null) is splatted as Ruby splats it: null gives
    no arguments, an object one [key, value] list per member (Hash#to_a), anything else
    one argument.
    """
    args = job.args
    if type(args) is list:
        return tuple(args)
    if args is None:
        return ()
    if isinstance(args, dict):
        return tuple([key, value] for key, value in args.items())
    return (args,)


def keywords(job: Job) -> dict[str, Any]:
    """The handler's keyword arguments: a Que 2 job's kwargs ({} on a Que 0.x row)."""
    return {} if job.kwargs_json == "{}" else job.kwargs


def call(handlers: Mapping[str, Handler], run: Run) -> BaseException | None:
    """Run the job's handler in this thread; its failure, or None. Interrupts propagate."""
    job = run.job
    with run:
        try:
            find(handlers, job)(*arguments(job), **keywords(job))
        except INTERRUPTS:
            raise
        except BaseException as failure:
            return failure
    return None
