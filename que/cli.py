"""The `que` command: migrate, enqueue, work and inspect from a shell.

Exit codes: 0 success, 1 a runtime failure (database unreachable, SQL error, workers that
cannot run, such as behind a transaction pooler), 2 bad input (the message names the value
and the rule; for `que work`, also an app module that cannot be imported or a handler that
is not callable), 130 interrupted. `que work` exits 0 when every job it was running
finished after SIGTERM or SIGINT, and 128 + that signal's number (143 for SIGTERM, 130 for
SIGINT) when jobs were cut short by a second signal or --shutdown-timeout, whatever the
pool; a handler's SystemExit(code) ends it with that code. Errors are one line on
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
from typing import Any, NoReturn

import psycopg

from que import aio, encoding, schema
from que.client import Client
from que.errors import QueError, printable, redact, remember_secrets
from que.locker import DEFAULT_BUFFER, check_buffer
from que.pool import WorkerPool
from que.worker import check_batch, check_wake_interval

EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad input from the command line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="que",
        description="Work with a Que job queue: the que_jobs table shared with Ruby Que 0.x and que-go, or with "
        "Ruby Que 1.x/2.x (schema version 7; every command reads which from the table).",
    )
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="PostgreSQL connection string (default: $QUE_DATABASE_URL, then $DATABASE_URL)",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level for worker events (default: INFO)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    migrate = commands.add_parser("migrate", help="migrate que_jobs to a schema version")
    migrate.add_argument(
        "--version",
        type=int,
        default=schema.CURRENT_VERSION,
        metavar="N",
        help=f"target version 0..{schema.LATEST_VERSION}: 3 is Que 0.x's schema, 7 Que 1.x/2.x's (default: "
        f"{schema.CURRENT_VERSION}; 0 drops the table)",
    )

    enqueue = commands.add_parser("enqueue", help="enqueue one job and print it as JSON")
    enqueue.add_argument("job_class", metavar="CLASS", help="job class name, e.g. SendEmail or Mod::Job")
    enqueue.add_argument(
        "args",
        nargs="?",
        default="[]",
        metavar="JSON_ARGS",
        help="the job's positional arguments as a JSON array (default: [])",
    )
    enqueue.add_argument(
        "--queue", help="queue name (default: the table's: '' on a Que 0.x table, 'default' on a Que 2 one)"
    )
    enqueue.add_argument(
        "--kwargs",
        metavar="JSON_OBJECT",
        help="the job's keyword arguments as a JSON object (Que 2 tables only)",
    )
    enqueue.add_argument(
        "--tag", action="append", dest="tags", metavar="TAG", help="a tag for the job, repeatable (Que 2 tables only)"
    )
    enqueue.add_argument("--priority", type=int, default=100, help="smallint, lower runs first (default: 100)")
    enqueue.add_argument(
        "--notify", action="store_true", help="also NOTIFY workers started with --listen (default: off)"
    )
    enqueue.add_argument(
        "--run-at",
        metavar="ISO8601",
        help="when the job becomes due, with a UTC offset, e.g. 2030-01-01T12:00:00+00:00 (default: now)",
    )

    work = commands.add_parser("work", help="run workers until SIGTERM/SIGINT")
    work.add_argument(
        "--app",
        required=True,
        metavar="MODULE[:ATTR]",
        help="module holding a mapping of job class to handler callable; ATTR defaults to 'handlers'",
    )
    work.add_argument(
        "--queue", help="queue to work (default: the table's: '' on a Que 0.x table, 'default' on a Que 2 one)"
    )
    work.add_argument(
        "--workers",
        type=int,
        default=4,
        metavar="N",
        help="jobs run at once: threads (tasks with --async) that share one server session, the pool's locker "
        "(default: 4)",
    )
    work.add_argument(
        "--no-locker",
        dest="locker",
        action="store_false",
        help="give each worker a server session of its own, as Ruby Que 0.14 and que-go do (then --workers is at "
        "most the server's max_connections)",
    )
    work.add_argument(
        "--buffer",
        type=int,
        default=DEFAULT_BUFFER,
        metavar="N",
        help=f"jobs the locker keeps claimed beyond the idle workers, ready to start; up to 4 times N while jobs end "
        f"faster than its round trips (default: {DEFAULT_BUFFER})",
    )
    work.add_argument(
        "--wake-interval",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds between looks for new jobs when idle, above 0 and at most 86400 (default: 5)",
    )
    work.add_argument(
        "--max-retries",
        type=int,
        metavar="N",
        help="set a job aside (run_at 9999-12-31, see `que dead`) when it fails after N retries "
        "(default: retry forever, as Ruby Que does)",
    )
    work.add_argument(
        "--batch",
        type=int,
        default=1,
        metavar="K",
        help="with a session per worker (implies --no-locker): each worker claims up to K jobs per round trip "
        "(each still locked on its own job_id; Ruby and Go workers see nothing unusual) (default: 1)",
    )
    work.add_argument(
        "--shutdown-timeout",
        type=float,
        metavar="S",
        help="after SIGTERM/SIGINT, wait at most S seconds for running jobs (default: wait for them)",
    )

    work.add_argument(
        "--listen",
        action="store_true",
        default=None,
        help="also wake on NOTIFY from enqueuers using notify (polling continues for other writers); a Que 2 "
        "table's locker always listens",
    )
    work.add_argument(
        "--async",
        dest="use_async",
        action="store_true",
        help="run the asyncio pool (que.aio): async def handlers run on one event loop, plain ones in threads",
    )
    work.add_argument(
        "--loop",
        choices=aio.LOOPS,
        help="with --async: the event loop; auto is uvloop when it is installed (pip install "
        "'que-interop[uvloop]'), else asyncio's own (default: auto)",
    )

    stats = commands.add_parser(
        "stats", help="job counts per queue and job class (Que 2: per job class, and the jobs in each state)"
    )
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")

    dead = commands.add_parser("dead", help="list jobs set aside by a retry limit (Que 2: the expired jobs)")
    dead.add_argument("--queue", help="only this queue (default: all)")
    dead.add_argument("--json", action="store_true", help="print JSON instead of a table")
    dead.add_argument(
        "--repair",
        action="store_true",
        help="instead, give jobs set aside by que-interop 0.2 (run_at 'infinity', which Ruby Que's job_stats "
        "cannot read) the marker every Que reader can read",
    )

    retry = commands.add_parser(
        "retry", help="make jobs set aside by a retry limit (Que 2: expired) due again (error_count kept)"
    )
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("job_id", nargs="?", type=int, metavar="JOB_ID", help="the job to retry")
    which.add_argument("--all", action="store_true", help="every job set aside (of --queue)")
    retry.add_argument("--queue", help="with --all: only this queue")
    return parser


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
            check_buffer(options.buffer)
        except ValueError as error:
            raise UsageError(f"--buffer: {error}") from None
        if options.loop is not None and not options.use_async:
            raise UsageError("--loop is for the asyncio pool: add --async")
        handlers = _load_handlers(options.app)
        if options.use_async:
            return _work_async(options, handlers)

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
            states = client.job_states() if client.dialect() == "2" else None
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


def main(argv: Sequence[str] | None = None) -> int:
    options = _parser().parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
