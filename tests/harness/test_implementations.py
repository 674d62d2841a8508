"""The built-in testees start for real: Python over que/, Go over que-go, Ruby (or its reason)."""

import os
from typing import Any

import psycopg
import pytest

from harness import implementations, protocol, results
from harness.testee import Testee, Unavailable
from tests.conftest import reset_schema


@pytest.fixture
def prepared(database_url: str) -> str:
    reset_schema(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        results.create(conn)
        results.clear(conn)
    return database_url


def run_echo(impl: implementations.Implementation, url: str) -> list[Any]:
    testee = Testee(impl.command, cwd=impl.cwd, env=impl.env)
    try:
        info = testee.start(url, results.TABLE)
        assert info.name == impl.name and info.protocol == protocol.VERSION
        testee.enqueue("QueConformance::Echo", '[1,"x"]')
        assert testee.work_one()["worked"] is True
    finally:
        testee.stop()
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT impl, received FROM {results.TABLE}").fetchall()


def test_python_testee(prepared: str) -> None:
    assert run_echo(implementations.builtin("python"), prepared) == [("python", '[1, "x"]')]


def test_go_testee_builds_and_runs_real_que_go(prepared: str) -> None:
    impl = implementations.builtin("go", build=True)
    assert impl.unavailable is None, impl.unavailable
    assert run_echo(impl, prepared) == [("go", '[1,"x"]')]
    testee = Testee(impl.command)
    try:
        info = testee.start(prepared, results.TABLE)
        assert info.version.startswith("que-go v1.0.1, pgx v3.6.2")
    finally:
        testee.stop()


def test_ruby_testee_runs_or_says_why_not(prepared: str) -> None:
    impl = implementations.builtin("ruby")
    if impl.unavailable is not None:
        assert impl.unavailable == "ruby is not installed"
        return
    if os.environ.get("QUE_RUBY_LIB"):
        assert run_echo(impl, prepared) == [("ruby", '[1,"x"]')]
        return
    testee = Testee(impl.command, cwd=impl.cwd, env=impl.env)
    try:
        testee.start(prepared, results.TABLE)
    except Unavailable as error:
        assert "cannot load Que 0.14" in str(error)
    else:  # the que gem is installed here
        testee.stop()


def test_unknown_builtin_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown implementation\(s\) \['java'\]"):
        implementations.resolve(["java"])


def test_que_imports_nothing_of_the_suite() -> None:
    """que/ knows PostgreSQL and the protocol only: importing it loads no harness code."""
    import subprocess
    import sys

    check = (
        "import sys, que, que.cli; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('harness', 'conformance')))"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_gue_testee_builds_and_runs_real_gue(prepared: str) -> None:
    impl = implementations.builtin("gue", build=True)
    assert impl.unavailable is None, impl.unavailable
    assert run_echo(impl, prepared) == [("gue", '[1,"x"]')]
    testee = Testee(impl.command)
    try:
        info = testee.start(prepared, results.TABLE)
        assert info.version.startswith("gue v1.0.2, pgx v3.6.2")
    finally:
        testee.stop()


def test_the_rails_row_joins_the_activejob_cells_only() -> None:
    """A row whose manifest names its folders (`only`) takes no part in any other folder's
    cells, including the ones that gather every row of the run (exactly-once, delivery):
    the Rails row is an application with ActiveJob's job classes, not Que's."""
    from conformance.fleet import joins

    assert joins("rails", "activejob")
    assert not joins("rails", "que2") and not joins("rails", "conformance")
    assert joins("python", "que2") and joins("python", "activejob")
    assert joins("testee1", "que2"), "an outside testee takes part everywhere"
