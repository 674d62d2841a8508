"""Wiring of the conformance suite: database, fleet, parametrization, expectations, report.

Configuration comes from the environment, so `que-conformance` and a plain `pytest
conformance/` behave the same:
  QUE_CONFORMANCE_IMPLS     built-ins to run (default: every one in harness.implementations.BUILTINS)
  QUE_CONFORMANCE_TESTEES   JSON list of outside testee command lines (testee1, testee2 ...)
  QUE_CONFORMANCE_RESULTS   folder for results.json and matrix.md (default results/conformance)
  QUE_CONFORMANCE_NO_BUILD  set to skip `go build` (use the Go testees already in testees/go/bin)
  QUE_PG_BACKEND            auto | local | url | docker;  QUE_DATABASE_URL for url
  QUE_CONFORMANCE_DIALECT   0.14 (the default: the cells of this folder), 2 (Ruby Que 2.x's
                            protocol on a v7 table: the cells of conformance/que2/) or 1
                            (Ruby Que 1.x's on a v5 table: the same cells)
"""

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, Phase, settings
from psycopg import sql

from conformance import checks, expectations
from conformance.checks import RuleBroken, message
from conformance.fleet import DIALECT, Fleet, configured_names, joins
from conformance.report import AREAS, Cell, Run, row_line, tally
from harness import implementations, signals
from harness.lab import reset
from harness.postgres import Database, LocalCluster, PostgresUnavailable, database
from harness.testee import NotApplicable

ROOT = Path(__file__).resolve().parent.parent

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile(
    "deep",
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    print_blob=True,
)
# make mutate needs a failure, not the smallest one: shrinking a failing scenario of many
# testee round trips can take minutes.
settings.register_profile("mutate", settings.get_profile("ci"), phases=[Phase.explicit, Phase.reuse, Phase.generate])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config: pytest.Config) -> None:
    # SIGTERM/SIGHUP unwind like Ctrl-C, so the session fixtures stop the cluster.
    signals.unwind_on_signals()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fix",
        action="store_true",
        default=False,
        help="rewrite conformance/expectations/*.json from this run: drop stale entries, add new failures",
    )


# -- parametrization over implementations ---------------------------------------------


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """A run checks one dialect: the cells of Que 1.x and 2.x live in que2/, the 0.14 ones
    beside it."""
    folder = collection_path.relative_to(Path(__file__).parent).parts[:1]
    if "activejob" in folder:  # the ActiveJob cells run in every dialect
        return None
    in_que2 = "que2" in folder
    if collection_path.is_file() and collection_path.suffix == ".py" and collection_path.name.startswith("test_"):
        return in_que2 != (DIALECT in ("1", "2"))
    return None


def _rows_for(metafunc: pytest.Metafunc) -> list[str]:
    """The rows of the run that take part in this cell's folder: a row whose manifest names
    the folders it joins (`only`, as the Rails row) is left out of every other folder."""
    folder = Path(metafunc.definition.path).parent.name
    return [name for name in configured_names() if joins(name, folder)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    names = _rows_for(metafunc)
    if "impl" in metafunc.fixturenames:
        metafunc.parametrize("impl", names)
    if "enqueuer" in metafunc.fixturenames and "worker" in metafunc.fixturenames:
        pairs = [(e, w) for e in names for w in names]
        metafunc.parametrize(("enqueuer", "worker"), pairs, ids=[f"{e}->{w}" for e, w in pairs])
    if "holder" in metafunc.fixturenames and "other" in metafunc.fixturenames:
        pairs = [(h, o) for h in names for o in names]
        metafunc.parametrize(("holder", "other"), pairs, ids=[f"{h}|{o}" for h, o in pairs])


def cell_id(item: pytest.Item) -> str:
    return item.nodeid.split("conformance/", 1)[-1]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The differential scenarios last: they are the slowest cells, and a cell that names one
    # rule says more about a port that fails both.
    items.sort(key=lambda item: item.path.name == "test_oracle.py")
    known = expectations.load(extra=expectations.extra_files())
    config.stash[_KNOWN] = known
    for item in items:
        entry = known.get(cell_id(item))
        if entry is not None:
            item.add_marker(pytest.mark.xfail(strict=True, reason=f"known divergence of {entry.impl}: {entry.reason}"))


# -- session resources ------------------------------------------------------------------


# The session TimeZone of every connection to the conformance database, and the shift of
# the clock area's server: both far from UTC and from the testees' own zone and clock.
SESSION_TIMEZONE = "America/St_Johns"
CLOCK_OFFSET = "-2h"
# The instant the frozen server's clock shows for ever (libfaketime): now() is the same in
# every transaction, so a job can be due exactly at the claim's now().
FROZEN_AT = "2031-01-02 03:04:05"


def _set_session_timezone(conn: psycopg.Connection[Any]) -> str | None:
    """Make every new session's TimeZone non-UTC; None, or why it could not be done."""
    try:
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET TimeZone = {}").format(
                sql.Identifier(conn.info.dbname), sql.Literal(SESSION_TIMEZONE)
            )
        )
    except psycopg.Error as error:
        return f"ALTER DATABASE ... SET TimeZone failed: {error}"
    return None


@pytest.fixture(scope="session")
def pg() -> Iterator[Database]:
    with database(backend=os.environ.get("QUE_PG_BACKEND", "auto")) as db:
        with psycopg.connect(db.url, autocommit=True) as conn:
            db.notes["timezone"] = _set_session_timezone(conn)
            reset(conn, DIALECT)
        yield db


@pytest.fixture(scope="session")
def fleet(pg: Database, request: pytest.FixtureRequest) -> Iterator[Fleet]:
    fleet = Fleet(pg, build=not os.environ.get("QUE_CONFORMANCE_NO_BUILD"))
    request.config.stash[_FLEET] = fleet
    request.config.stash[_PG] = {"version": pg.version, "backend": pg.backend, "dialect": DIALECT}
    if pg.image:
        request.config.stash[_PG].update(image=pg.image, images_from=pg.images_from)
    yield fleet
    fleet.stop()


def _cell(conn: psycopg.Connection[Any], fleet: Fleet) -> Iterator[None]:
    """Every cell starts with an empty que_jobs, no advisory locks and live testees, and
    fails when it leaves a lock behind (then the state is restored for the next cell)."""
    fleet.clean(conn)  # a previous cell's leftovers were reported by that cell
    reset(conn, DIALECT)
    yield
    problems = fleet.clean(conn)
    if problems:
        raise RuleBroken(message("no-lock-left", detail="\n  ".join(problems)))


@pytest.fixture
def db(pg: Database, fleet: Fleet) -> Iterator[psycopg.Connection[Any]]:
    """A clean database for the test, and the test's own connection to it."""
    with psycopg.connect(pg.url, autocommit=True) as conn:
        for _ in _cell(conn, fleet):
            yield conn


def _special_server(
    pg: Database, what: str, clock: str | None = None, settings: dict[str, str] | None = None
) -> Iterator[Database]:
    """Another throwaway local server, on libfaketime's clock `clock` or with `settings`,
    beside the run's own (whose clock and settings are not the harness's to change), or
    skip the cells. Testees in containers cannot reach a local server."""
    if pg.backend == "docker":
        pytest.skip(f"not applicable: the cells need a local server with another {what}, which containers cannot reach")
    try:
        cluster = LocalCluster(clock=clock, settings=settings)
        cluster.start()
    except PostgresUnavailable as error:
        pytest.skip(f"unavailable: {error}")
    try:
        with psycopg.connect(cluster.url, autocommit=True) as conn:
            reset(conn, DIALECT)
        yield Database(url=cluster.url, backend="local", version=pg.version, bindir=cluster.bindir)
    finally:
        cluster.stop()


def _fleet_on(server: Database) -> Iterator[Fleet]:
    fleet = Fleet(server, build=False)
    yield fleet
    fleet.stop()


def _db_on(server: Database, fleet: Fleet) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(server.url, autocommit=True) as conn:
        for _ in _cell(conn, fleet):
            yield conn


@pytest.fixture(scope="session")
def skewed_pg(pg: Database) -> Iterator[Database]:
    """A server whose clock runs CLOCK_OFFSET from the testees' clock."""
    yield from _special_server(pg, "server clock", clock=CLOCK_OFFSET)


@pytest.fixture(scope="session")
def skewed_fleet(skewed_pg: Database) -> Iterator[Fleet]:
    yield from _fleet_on(skewed_pg)


@pytest.fixture
def skewed_db(skewed_pg: Database, skewed_fleet: Fleet) -> Iterator[psycopg.Connection[Any]]:
    yield from _db_on(skewed_pg, skewed_fleet)


@pytest.fixture(scope="session")
def frozen_pg(pg: Database) -> Iterator[Database]:
    """A server whose clock stands still at FROZEN_AT."""
    yield from _special_server(pg, "server clock", clock=FROZEN_AT)


@pytest.fixture(scope="session")
def frozen_fleet(frozen_pg: Database) -> Iterator[Fleet]:
    yield from _fleet_on(frozen_pg)


@pytest.fixture
def frozen_db(frozen_pg: Database, frozen_fleet: Fleet) -> Iterator[psycopg.Connection[Any]]:
    yield from _db_on(frozen_pg, frozen_fleet)


# A planner that never walks an index: a claim's ORDER BY alone decides the order, as on a
# table whose statistics favour a sequential scan.
UNINDEXED = {"enable_indexscan": "off", "enable_indexonlyscan": "off", "enable_bitmapscan": "off"}


@pytest.fixture(scope="session")
def unindexed_pg(pg: Database) -> Iterator[Database]:
    yield from _special_server(pg, "planner settings", settings=UNINDEXED)


@pytest.fixture(scope="session")
def unindexed_fleet(unindexed_pg: Database) -> Iterator[Fleet]:
    yield from _fleet_on(unindexed_pg)


@pytest.fixture
def unindexed_db(unindexed_pg: Database, unindexed_fleet: Fleet) -> Iterator[psycopg.Connection[Any]]:
    yield from _db_on(unindexed_pg, unindexed_fleet)


# -- outcomes, expectations --fix, and the report ---------------------------------------

_KNOWN = pytest.StashKey[dict[str, expectations.Divergence]]()
_FLEET = pytest.StashKey[Fleet]()
_PG = pytest.StashKey[dict[str, Any]]()
_CELLS = pytest.StashKey[dict[str, Cell]]()


def _impls_of(item: pytest.Item) -> tuple[list[str], str | None, str | None]:
    params: dict[str, Any] = (getattr(item, "callspec", None) and item.callspec.params) or {}  # type: ignore[attr-defined]
    if "enqueuer" in params:
        return [params["enqueuer"], params["worker"]], params["enqueuer"], params["worker"]
    if "holder" in params:
        return [params["holder"], params["other"]], None, None
    if "impl" in params:
        return [params["impl"]], None, None
    for key, value in item.user_properties:
        if key == "impls":
            return list(value), None, None
    return [], None, None


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def pytest_runtest_setup(item: pytest.Item) -> None:
    checks.RECORDED.clear()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """A cell that asks an enqueue-only testee to work or lock jobs is not applicable."""
    try:
        return (yield)
    except NotApplicable as why:
        pytest.skip(f"not applicable: {why}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.when == "setup" and report.passed:
        return
    if report.when == "teardown" and report.passed:
        return
    cells = item.config.stash.setdefault(_CELLS, {})
    impls, enqueuer, worker = _impls_of(item)
    module = item.nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py")
    if report.skipped and hasattr(report, "wasxfail"):
        kind, message = "expected", str(report.wasxfail)
    elif report.skipped:
        message = _skip_reason(report)
        kind = "not_applicable" if message.startswith("not applicable") else "unavailable"
    elif report.failed and "XPASS(strict)" in str(report.longrepr):
        kind, message = "stale", "listed as a known divergence but passed: remove it (or run with --fix)"
    elif report.failed:
        kind, message = "failed", report.longreprtext.strip().splitlines()[-1] if report.longreprtext else ""
        if call.excinfo is not None:
            message = f"{call.excinfo.typename}: {call.excinfo.value}"
    else:
        kind, message = "passed", ""
    previous = cells.get(item.nodeid)
    if previous is not None and report.when == "teardown":
        previous.checks = tally(checks.RECORDED)
    if previous is not None and previous.outcome in ("failed", "stale"):
        if kind == "failed":  # a teardown error (a lock left behind) adds to the call's failure
            previous.message += "\n" + message
        return
    cells[item.nodeid] = Cell(
        cell=cell_id(item),
        area=AREAS.get(module, module),
        impls=impls,
        outcome=kind,
        enqueuer=enqueuer,
        worker=worker,
        message=message,
        duration_s=round(report.duration, 3),
        checks=tally(checks.RECORDED),
        link=known.link if (known := item.config.stash.get(_KNOWN, {}).get(cell_id(item))) else "",
        notes={str(k): str(v) for k, v in item.user_properties if k == "oracle"},
    )


def _results_dir() -> Path:
    return Path(os.environ.get("QUE_CONFORMANCE_RESULTS", ROOT / "results" / "conformance"))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if config.option.collectonly:  # nothing ran: no results to write (make rules collects this way)
        return
    cells = config.stash.get(_CELLS, {})
    fleet = config.stash.get(_FLEET, None)
    run = Run(
        cells=list(cells.values()),
        implementations=fleet.summary() if fleet else {},
        postgres=config.stash.get(_PG, {}),
    )
    out = _results_dir()
    run.write(out)
    write = terminalreporter.write_line
    write("")
    write(run.impl_area_matrix())
    write("")
    write(run.pair_matrix())
    for name, info in run.implementations.items():
        if not info["available"] and info["unavailable_reason"]:
            write(f"{name}: {row_line(info)}")
    for line in run.oracle_lines():
        write(f"oracle: {line}")
    write(f"results: {out}/results.json, {out}/matrix.md")
    write(run.summary_line())
    if config.getoption("--fix"):
        # Only the built-in rows' files: an outside port keeps its own (--expectations).
        known = {c: e for c, e in config.stash.get(_KNOWN, {}).items() if e.impl in implementations.BUILTINS}
        stale = {c.cell for c in run.cells if c.outcome == "stale" and c.cell in known}
        unexpected = {
            c.cell: ((c.enqueuer or (c.impls[0] if c.impls else "python")), c.message)
            for c in run.cells
            if c.outcome == "failed"
        }
        unexpected = {c: v for c, v in unexpected.items() if v[0] in implementations.BUILTINS}
        for path in expectations.fix(known, unexpected, stale):
            write(f"rewrote {path}")
