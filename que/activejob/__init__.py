"""Share a queue with a Rails app that uses Que through ActiveJob: enqueue jobs its Rails
workers run, and run in Python the jobs it enqueues. Both dialects (Que 0.14 and Que
1.x/2.x tables), both I/O styles.

    from que import activejob

    activejob.enqueue(client, "SendEmailJob", "ann@example.com", template=activejob.Symbol("welcome"))

    pool = que.WorkerPool(client, activejob.handlers({"SendEmailJob": send_email}), queue="default")

The row is the one Rails' `perform_later` writes through the Que adapter: job class
ActiveJob::QueueAdapters::QueAdapter::JobWrapper, the job's queue and priority, and the
ActiveJob envelope as its one argument. Values map to ActiveJob's serializers
(docs/activejob.md); what ActiveJob could not carry is refused before anything is written.
"""

import asyncio
import contextvars
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from que.activejob.arguments import SerializationError, deserialize, serialize
from que.activejob.envelope import DEFAULT_QUEUE, FORMATS, WRAPPER, build, read
from que.activejob.types import Duration, GlobalID, IndifferentDict, RubyModule, RubyTime, Symbol
from que.core.errors import UnknownJobClass
from que.core.handlers import is_async
from que.core.job import Job

__all__ = [
    "DEFAULT_QUEUE",
    "FORMATS",
    "WRAPPER",
    "Duration",
    "GlobalID",
    "IndifferentDict",
    "RubyModule",
    "RubyTime",
    "SerializationError",
    "Symbol",
    "aenqueue",
    "current",
    "deserialize",
    "enqueue",
    "envelope",
    "handlers",
    "serialize",
]

_CURRENT: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("que_activejob", default=None)


def current() -> dict[str, Any] | None:
    """The envelope of the ActiveJob job this handler runs (job_id, executions, locale ...),
    with `executions` counting this run, as a Rails job's `executions` does."""
    return _CURRENT.get()


def envelope(
    job_class: str,
    *args: Any,
    queue: str = DEFAULT_QUEUE,
    priority: int | None = None,
    wait: timedelta | float | None = None,
    wait_until: datetime | None = None,
    rails: str = "6.1",
    locale: str = "en",
    timezone: str | None = "UTC",
    job_kwargs: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> tuple[dict[str, Any], datetime | None]:
    """(the envelope, run_at) of `job_class.set(queue:, priority:, wait: / wait_until:)
    .perform_later(*args, **kwargs)`. `job_kwargs` passes keyword arguments whose names
    are taken by these options. `timezone` is the app's Time.zone name (None when unset)."""
    now = datetime.now(UTC)
    if wait is not None and wait_until is not None:
        raise ValueError("give wait or wait_until, not both (ActiveJob's set takes one)")
    run_at: datetime | None = None
    if wait is not None:
        if isinstance(wait, bool) or not isinstance(wait, (int, float, timedelta)):
            raise ValueError(f"wait {wait!r}: a timedelta or a number of seconds")
        run_at = now + (wait if isinstance(wait, timedelta) else timedelta(seconds=wait))
    elif wait_until is not None:
        if not isinstance(wait_until, datetime) or wait_until.utcoffset() is None:
            raise ValueError(f"wait_until {wait_until!r}: an aware datetime (with its zone)")
        run_at = wait_until
    merged = {**(job_kwargs or {}), **kwargs}
    built = build(
        job_class,
        args,
        merged,
        queue=queue,
        priority=priority,
        scheduled_at=run_at,
        rails=rails,
        locale=locale,
        timezone=timezone,
        now=now,
    )
    return built, run_at


def enqueue(client: Any, job_class: str, *args: Any, conn: Any = None, **options: Any) -> Job:
    """Enqueue an ActiveJob job on a que.Client (in the caller's transaction with `conn`),
    as `job_class.set(...).perform_later(*args, **kwargs)` would; the row as stored.
    Options as for envelope()."""
    built, run_at = envelope(job_class, *args, **options)
    return client.enqueue(WRAPPER, built, **_row(built, run_at), conn=conn)  # type: ignore[no-any-return]


async def aenqueue(client: Any, job_class: str, *args: Any, conn: Any = None, **options: Any) -> Job:
    """enqueue() on a que.aio.AsyncClient."""
    built, run_at = envelope(job_class, *args, **options)
    return await client.enqueue(WRAPPER, built, **_row(built, run_at), conn=conn)  # type: ignore[no-any-return]


def _row(built: dict[str, Any], run_at: datetime | None) -> dict[str, Any]:
    """The adapter's Que options: the job's queue and priority (Que's default, 100, when the
    job has none), and when it is due."""
    priority = built["priority"]
    return {"queue": built["queue_name"], "priority": 100 if priority is None else priority, "run_at": run_at}


Handler = Callable[..., Any]


def handlers(by_class: Mapping[str, Handler]) -> dict[str, Handler]:
    """Handlers for a que pool: the JobWrapper class, dispatching each ActiveJob job to the
    handler of its job_class with its arguments as Python values (keyword arguments as
    keywords). A job_class with no handler fails like an unknown Que job class. With any
    `async def` handler the dispatcher is asyncio's (its plain handlers run in threads)."""
    table = dict(by_class)
    if any(is_async(fn) for fn in table.values()):

        async def dispatch_async(*job_args: Any, **job_kwargs: Any) -> Any:
            fn, args, kwargs, token = _prepare(table, job_args)
            try:
                if is_async(fn):
                    return await fn(*args, **kwargs)
                context = contextvars.copy_context()
                return await asyncio.to_thread(context.run, fn, *args, **kwargs)
            finally:
                _CURRENT.reset(token)

        return {WRAPPER: dispatch_async}

    def dispatch(*job_args: Any, **job_kwargs: Any) -> Any:
        fn, args, kwargs, token = _prepare(table, job_args)
        try:
            return fn(*args, **kwargs)
        finally:
            _CURRENT.reset(token)

    return {WRAPPER: dispatch}


def _prepare(
    table: Mapping[str, Handler], job_args: tuple[Any, ...]
) -> tuple[Handler, list[Any], dict[str, Any], contextvars.Token[dict[str, Any] | None]]:
    data = read(list(job_args))
    fn = table.get(data["job_class"])
    if fn is None:
        raise UnknownJobClass(data["job_class"])
    args, kwargs = deserialize(data["arguments"])
    # The job as its perform sees it: ActiveJob's perform_now counts this run in executions
    # (execution.rb). The row keeps the envelope as written, as Rails' own worker leaves it.
    running = {**data, "executions": (data.get("executions") or 0) + 1}
    return fn, args, kwargs, _CURRENT.set(running)
