"""The `que` command: migrate, enqueue, work and inspect from a shell.

Exit codes: 0 success, 1 a runtime failure (database unreachable, SQL error),
2 bad input (the message names the value and the rule). Errors are one line on stderr,
never a traceback.
"""

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NoReturn

import psycopg

from que import encoding, schema
from que.client import Client
from que.worker import WorkerPool

EXIT_RUNTIME = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input from the command line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="que",
        description="Work with a Que 0.x job queue (the que_jobs table shared with Ruby Que and que-go).",
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
        help=f"target version 0..{schema.CURRENT_VERSION} (default: {schema.CURRENT_VERSION}; 0 drops the table)",
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
    enqueue.add_argument("--queue", default="", help="queue name (default: '')")
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
    work.add_argument("--queue", default="", help="queue to work (default: '')")
    work.add_argument("--workers", type=int, default=4, metavar="N", help="worker threads (default: 4)")
    work.add_argument(
        "--wake-interval",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds between looks for new jobs when idle (default: 5)",
    )

    work.add_argument(
        "--listen",
        action="store_true",
        help="also wake on NOTIFY from enqueuers using notify (polling continues for other writers)",
    )

    stats = commands.add_parser("stats", help="job counts per queue and job class")
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def _parse_args_json(text: str) -> list[Any]:
    try:
        value = encoding.loads(text)
    except ValueError as error:
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
    module_name, _, attr = spec.partition(":")
    attr = attr or "handlers"
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UsageError(f"--app {spec!r}: cannot import {module_name!r}: {error}") from None
    try:
        handlers = getattr(module, attr)
    except AttributeError:
        raise UsageError(f"--app {spec!r}: module {module_name!r} has no attribute {attr!r}") from None
    if not isinstance(handlers, Mapping):
        raise UsageError(
            f"--app {spec!r}: {attr!r} must be a mapping of job class name to callable, got {type(handlers).__name__}"
        )
    return handlers


def _format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "no jobs"
    columns = list(rows[0].keys())
    cells = [[str(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def _run(options: argparse.Namespace) -> int:
    if options.command == "enqueue":
        args = _parse_args_json(options.args)
        run_at = _parse_run_at(options.run_at)
    elif options.command == "work":
        if options.workers < 1:
            raise UsageError(f"--workers must be at least 1, got {options.workers}")
        if options.wake_interval <= 0:
            raise UsageError(f"--wake-interval must be positive, got {options.wake_interval}")
        handlers = _load_handlers(options.app)

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
                    }
                )
            )
        elif options.command == "stats":
            rows = client.job_stats()
            if options.json:
                print(json.dumps(rows, default=str))
            else:
                print(_format_table(rows))
        elif options.command == "work":
            pool = WorkerPool(
                client,
                handlers,
                count=options.workers,
                queue=options.queue,
                wake_interval=options.wake_interval,
                listen=options.listen,
            )
            pool.run()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    logging.basicConfig(
        level=options.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        return _run(options)
    except UsageError as error:
        print(f"que: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (TypeError, ValueError) as error:
        print(f"que: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except psycopg.Error as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"que: database error: {first}", file=sys.stderr)
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
