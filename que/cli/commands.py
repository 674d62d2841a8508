"""The `que` command: migrate, enqueue, work and inspect from a shell.

Exit codes: 0 success, 1 a runtime failure (database unreachable, SQL error, workers that
cannot run, such as behind a transaction pooler), 2 bad input (the message names the value
and the rule; for `que work`, also an app module that cannot be imported or a handler that
is not callable), 130 interrupted. `que work` exits 0 when every job it was running
finished after SIGTERM or SIGINT, and 128 + that signal's number (143 for SIGTERM, 130 for
SIGINT) when jobs were cut short by a second signal or --shutdown-timeout, whatever the
pool; a handler's SystemExit(code) ends it with that code. `que health` exits 0 when every
check passes and 1 when one fails. Errors are one line on
stderr, never a traceback, and no message shows a password from the connection string.
"""

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg

from que import aio
from que.cli import operations
from que.cli.errors import UsageError
from que.cli.parser import EXIT_USAGE, parser
from que.core import encoding
from que.core.errors import QueError, printable, redact, remember_secrets
from que.shells.client import Client
from que.shells.common import check_batch, check_buffer, check_wake_interval
from que.shells.pool import WorkerPool

EXIT_RUNTIME = 1
EXIT_INTERRUPTED = 130


def _parse_kwargs_json(text: str) -> dict[str, Any]:
    try:
        value = encoding.loads(text)
    except ValueError as error:
        raise UsageError(f"--kwargs {text!r} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise UsageError(f"--kwargs must be a JSON object of keyword arguments, got {text!r}")
    return value


def _parse_args_json(text: str) -> list[Any]:
    try:
        value = encoding.loads(text)
    except ValueError as error:  # loads turns every failure (too deep, too many digits) into one
        raise UsageError(f"JSON_ARGS {text!r} is not valid JSON: {error}") from None
    if not isinstance(value, list):
        raise UsageError(f"JSON_ARGS must be a JSON array of positional arguments, got {text!r}")
    return value


def _parse_run_at(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--run-at {text!r} is not an ISO 8601 timestamp") from None
    if value.tzinfo is None:
        raise UsageError(f"--run-at {text!r} has no UTC offset (add e.g. +00:00)")
    return value


def _load_handlers(spec: str) -> Mapping[str, Any]:
    """The handlers `--app MODULE[:ATTR]` names, imported as `python -m` would import them:
    the current folder first on sys.path (an installed console script does not put it
    there), so `que work --app myapp.jobs` works from the project folder."""
    module_name, _, attr = spec.partition(":")
    attr = attr or "handlers"
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # the app's own import may raise anything: SyntaxError, NameError ...
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise UsageError(
            f"--app {spec!r}: cannot import {module_name!r}: {type(error).__name__}" + (f": {first}" if first else "")
        ) from None
    try:
        handlers = getattr(module, attr)
    except AttributeError:
        raise UsageError(f"--app {spec!r}: module {module_name!r} has no attribute {attr!r}") from None
    if not isinstance(handlers, Mapping):
        raise UsageError(
            f"--app {spec!r}: {attr!r} must be a mapping of job class name to callable, got {type(handlers).__name__}"
        )
    for job_class, handler in handlers.items():
        if not callable(handler):
            raise UsageError(
                f"--app {spec!r}: the handler for job class {job_class!r} is not callable: {handler!r:.60}"
            )
    return handlers


def _format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "no jobs"
    columns = list(rows[0].keys())
    cells = [[printable(str(row[c])) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def _run(options: argparse.Namespace) -> int:
    if options.command == "enqueue":
        args = _parse_args_json(options.args)
        kwargs = None if options.kwargs is None else _parse_kwargs_json(options.kwargs)
        run_at = _parse_run_at(options.run_at)
    elif options.command == "work":
        if options.workers < 1:
            raise UsageError(f"--workers must be at least 1, got {options.workers}")
        try:
            check_wake_interval(options.wake_interval, "--wake-interval")
        except ValueError as error:
            raise UsageError(str(error)) from None
        if options.max_retries is not None and options.max_retries < 0:
            raise UsageError(f"--max-retries must be 0 or more, got {options.max_retries}")
        if options.shutdown_timeout is not None and not options.shutdown_timeout >= 0:
            raise UsageError(f"--shutdown-timeout must be 0 or more seconds, got {options.shutdown_timeout}")
        try:
            check_batch(options.batch)
        except ValueError as error:
            raise UsageError(f"--batch: {error}") from None
        if options.use_async and options.batch != 1:
            raise UsageError("--batch is for the thread pool; the asyncio pool (--async) claims one job at a time")
        if options.batch != 1:
            options.locker = False  # batches are per-worker claims
        try:
            if options.buffer is not None:
                check_buffer(options.buffer)
        except ValueError as error:
            raise UsageError(f"--buffer: {error}") from None
        if options.loop is not None and not options.use_async:
            raise UsageError("--loop is for the asyncio pool: add --async")
        if options.metrics_port is not None and not 0 <= options.metrics_port <= 65535:
            raise UsageError(f"--metrics-port must be a TCP port (0-65535), got {options.metrics_port}")
        if options.health_max_age is not None and not options.health_max_age > 0:
            raise UsageError(f"--health-max-age must be above 0 seconds, got {options.health_max_age}")
        handlers = _load_handlers(options.app)
        if options.use_async:
            return _work_async(options, handlers)

    if options.command == "health":
        return operations.health_command(options)
    if options.command == "web":
        return operations.web_command(options)
    try:
        client = Client(options.database_url, notify=getattr(options, "notify", False))
    except ValueError as error:
        raise UsageError(str(error)) from None
    with client:
        if options.command == "migrate":
            before = client.db_version()
            client.migrate(options.version)
            print(f"que_jobs schema version {options.version} (was {before})")
        elif options.command == "enqueue":
            job = client.enqueue(
                options.job_class,
                *args,
                kwargs=kwargs,
                tags=options.tags,
                queue=options.queue,
                priority=options.priority,
                run_at=run_at,
            )
            print(
                json.dumps(
                    {
                        "job_id": job.job_id,
                        "job_class": job.job_class,
                        "queue": job.queue,
                        "priority": job.priority,
                        "run_at": job.run_at.isoformat(),
                        "args": job.args,
                        **({"kwargs": job.kwargs, "tags": job.tags} if job.job_schema_version else {}),
                    }
                )
            )
        elif options.command == "stats":
            rows = client.job_stats()
            states = client.job_states() if client.dialect().keeps_rows else None
            if options.json:
                print(json.dumps(rows if states is None else {"jobs": rows, "states": states}, default=str))
            else:
                print(_format_table(rows))
                if states is not None:
                    print()
                    print(_format_table(states))
        elif options.command == "dead" and options.repair:
            count = client.repair_dead()
            print(f"{count} job{'' if count == 1 else 's'} repaired")
        elif options.command == "dead":
            _print_dead(client, options.queue, options.json)
        elif options.command == "retry":
            return _retry(client, options.job_id, options.queue)
        elif options.command == "work":
            pool = WorkerPool(client, handlers, batch=options.batch, **_pool_options(options))
            with operations.endpoint(options, pool.is_alive):
                if not pool.run(shutdown_timeout=options.shutdown_timeout):
                    return _cut_short(pool.stop_signal)
    return 0


def _cut_short(signum: int | None) -> int:
    """The status of `que work` whose running jobs were cut short: 128 + the stop signal."""
    return 128 + signum if signum is not None else EXIT_INTERRUPTED


def _pool_options(options: argparse.Namespace) -> dict[str, Any]:
    """The `que work` flags both pools take alike."""
    return {
        "count": options.workers,
        "queue": options.queue,
        "wake_interval": options.wake_interval,
        "listen": options.listen,
        "max_retries": options.max_retries,
        "locker": options.locker,
        "buffer": options.buffer,
    }


def _work_async(options: argparse.Namespace, handlers: Mapping[str, Any]) -> int:
    """`que work --async`: the same flags over que.aio's pool on one event loop."""
    loop = options.loop or "auto"
    try:
        logging.getLogger("que").info("event loop: %s", aio.loop_name(loop), extra={"event": "event_loop"})
    except RuntimeError as missing:
        raise UsageError(str(missing)) from None

    stopped_by: list[int | None] = []

    async def work() -> bool:
        async with aio.AsyncClient(options.database_url) as client:
            pool = aio.AsyncWorkerPool(client, handlers, **_pool_options(options))
            try:
                with operations.endpoint(options, pool.is_alive):
                    return await pool.run(shutdown_timeout=options.shutdown_timeout)
            finally:
                stopped_by.append(pool.stop_signal)

    if not aio.run(work(), loop=loop):
        # Jobs were cut short (a second signal, or the shutdown timeout): plain handlers may
        # still run in their (daemon) threads, holding their jobs' locks. Their jobs stay
        # and run again later; the process exits now, as the thread pool's does.
        return _cut_short(stopped_by[0] if stopped_by else None)
    return 0


def _print_dead(client: Client, queue: str | None, as_json: bool) -> None:
    jobs = client.dead_jobs(queue)
    rows = [
        {
            "job_id": j.job_id,
            "queue": j.queue,
            "job_class": j.job_class,
            "error_count": j.error_count,
            "last_error": (j.last_error or "").split("\n", 1)[0],
        }
        for j in jobs
    ]
    print(json.dumps(rows) if as_json else _format_table(rows))


def _retry(client: Client, job_id: int | None, queue: str | None) -> int:
    count = client.retry_dead(job_id, queue=queue)
    if job_id is not None and count == 0:
        _say(f"que: error: no job {job_id} is set aside")
        return EXIT_RUNTIME
    print(f"{count} job{'' if count == 1 else 's'} due again")
    return 0


def _say(message: str) -> None:
    """One line on stderr, with every password que was given redacted."""
    print(printable(redact(message)), file=sys.stderr)


# 128 + SIGPIPE, as a program the signal ended.
EXIT_BROKEN_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    options = parser().parse_args(argv)
    for url in (options.database_url, os.environ.get("QUE_DATABASE_URL"), os.environ.get("DATABASE_URL")):
        if url:
            remember_secrets(url)
    logging.basicConfig(
        level=options.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        return _run(options)
    except UsageError as error:
        _say(f"que: error: {error}")
        return EXIT_USAGE
    except (TypeError, ValueError) as error:
        _say(f"que: error: {error}")
        return EXIT_USAGE
    except psycopg.Error as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        _say(f"que: database error: {first}")
        return EXIT_RUNTIME
    except QueError as error:
        _say(f"que: error: {error}")
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader stopped early (`que stats | head`): no traceback, and nothing more to
        # write; the status a program killed by SIGPIPE has.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
