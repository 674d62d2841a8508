"""The `que` command's grammar: every subcommand and option, with the --help texts that
README.md and docs quote. que.cli runs what it parses."""

import argparse
import os
from typing import NoReturn

from que import __version__, aio
from que.dialects import schema

EXIT_USAGE = 2  # bad input (argparse's own exit code for it, kept for every usage error)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="que",
        description="Work with a Que job queue: the que_jobs table shared with Ruby Que 0.x and que-go, or with "
        "Ruby Que 1.x (schema version 5) or 2.x (schema version 7); every command reads which from the table.",
    )
    parser.add_argument("--version", action="version", version=f"que (que-interop) {__version__}")
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
        help=f"target version 0..{schema.LATEST_VERSION}: 3 is Que 0.x's schema, 5 Que 1.x's, 7 Que 2.x's "
        f"(default: {schema.CURRENT_VERSION}; 0 drops the table)",
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
        default=None,
        metavar="N",
        help="jobs the locker keeps claimed beyond the idle workers, ready to start; on a Que 0.x table up to 4 "
        "times N while jobs end faster than its round trips (default: 8)",
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
        help="past N retries, a failed job is set aside (Que 0.x: run_at 9999-12-31) or expired (Que 1.x/2.x); "
        "see `que dead` (default: as the table's Ruby Que does: retry forever on Que 0.x, 15 on Que 1.x/2.x)",
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

    work.add_argument(
        "--metrics-port",
        type=int,
        metavar="N",
        help="serve /metrics (Prometheus; needs que-interop[metrics]) and /health (JSON; 200 healthy, 503 not) on "
        "port N of --metrics-host while working",
    )
    work.add_argument(
        "--metrics-host", default="127.0.0.1", metavar="HOST", help="the address to serve on (default: 127.0.0.1)"
    )
    work.add_argument(
        "--health-max-age",
        type=float,
        metavar="S",
        help="/health fails while a queue's oldest due job has waited S seconds or more (default: no bound)",
    )

    web = commands.add_parser(
        "web",
        help="serve the web dashboard until SIGINT",
        description="The dashboard: queues by state, failing jobs, retry/delete/expire, the lockers. Beyond "
        "localhost it needs --token or --basic-auth; every change is a POST with a CSRF token.",
    )
    web.add_argument("--host", default="127.0.0.1", help="the address to serve on (default: 127.0.0.1)")
    web.add_argument("--port", type=int, default=8080, help="the port (default: 8080)")
    web.add_argument(
        "--token",
        default=os.environ.get("QUE_WEB_TOKEN"),
        help="require this token (open /login?token=... once; or Authorization: Bearer) (default: $QUE_WEB_TOKEN)",
    )
    web.add_argument("--basic-auth", metavar="USER:PASSWORD", help="require HTTP basic auth with these credentials")
    web.add_argument("--read-only", action="store_true", help="show the queue; change nothing")
    web.add_argument("--refresh", type=int, default=5, metavar="S", help="the overview reloads every S seconds")

    health = commands.add_parser(
        "health",
        help="check the queue for a probe: exit 0 when healthy, 1 when not",
        description="Checks that the database answers, que_jobs is at a version que works (or --schema-version), "
        "and, with --max-age, that no queue's oldest due job has waited that long. Prints one line per check "
        "(--json: an object).",
    )
    health.add_argument("--schema-version", type=int, metavar="V", help="the table must be at version V")
    health.add_argument("--max-age", type=float, metavar="S", help="fail when a due job has waited S seconds or more")
    health.add_argument("--json", action="store_true", help="print JSON instead of lines")

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
