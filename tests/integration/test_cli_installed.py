"""The installed `que` script, run as users run it: from their project folder, with their
app module, their connection strings and their signals."""

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

import que
from harness.lab import wait_until
from tests.conftest import rows

QUE = str(Path(sys.executable).parent / "que")

APP = """
import os
import psycopg


def hello(name):
    with psycopg.connect(os.environ["QUE_DATABASE_URL"], autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS app_marks (label text)")
        conn.execute("INSERT INTO app_marks VALUES (%s)", [name])


handlers = {"Hello": hello}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's project folder holding the package myapp (not installed anywhere)."""
    package = tmp_path / "myapp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "jobs.py").write_text(APP)
    (package / "broken.py").write_text("def handler(:\n    pass\n")
    (package / "uncallable.py").write_text('handlers = {"J": "not callable", "K": print}\n')
    return tmp_path


def run_que(database_url: str, cwd: Path, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QUE_DATABASE_URL": database_url}
    env.pop("PYTHONPATH", None)
    return subprocess.run([QUE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, **kw)


def test_que_work_imports_the_app_from_the_current_folder(
    database_url: str, conn: psycopg.Connection[Any], project: Path
) -> None:
    conn.execute("DROP TABLE IF EXISTS app_marks")
    conn.execute("""INSERT INTO que_jobs (job_class, args) VALUES ('Hello', '["ann"]')""")
    env = {**os.environ, "QUE_DATABASE_URL": database_url}
    env.pop("PYTHONPATH", None)
    proc = subprocess.Popen(
        [QUE, "work", "--app", "myapp.jobs", "--wake-interval", "0.05"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: rows(conn) == [] or proc.poll() is not None, 30, "the job to be worked")
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        proc.kill()
    assert conn.execute("SELECT label FROM app_marks").fetchall() == [("ann",)]


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("myapp.broken", "--app 'myapp.broken': cannot import 'myapp.broken': SyntaxError"),
        ("myapp.uncallable", "--app 'myapp.uncallable': the handler for job class 'J' is not callable"),
        ("myapp.missing", "--app 'myapp.missing': cannot import 'myapp.missing'"),
    ],
    ids=["syntax-error", "not-callable", "missing"],
)
def test_a_bad_app_is_one_line_and_exit_2_at_startup(
    database_url: str, conn: psycopg.Connection[Any], project: Path, app: str, message: str
) -> None:
    result = run_que(database_url, project, "work", "--app", app)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


SECRET = "Hunter2Secret"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://u:{SECRET}%zz@127.0.0.1/db",
        f"postgresql://u:{SECRET}@[::1/db",
        f"postgresql://u:{SECRET}@127.0.0.1:1/db?sslmode=bogus",
        f"host=127.0.0.1 password={SECRET} port=notaport",
        f"host=127.0.0.1 password='{SECRET}' sslmode=bogus",
        f"postgresql://127.0.0.1/db?password={SECRET}&sslmode=bogus",
    ],
    ids=["bad-percent", "bad-ipv6", "bad-option", "keywords", "quoted-keyword", "query-password"],
)
@pytest.mark.parametrize("given", ["flag", "environment"])
def test_a_malformed_connection_string_never_shows_its_password(tmp_path: Path, url: str, given: str) -> None:
    args = ["--database-url", url, "stats"] if given == "flag" else ["stats"]
    result = run_que(url, tmp_path, *args)
    assert result.returncode != 0
    assert SECRET not in result.stderr + result.stdout, result.stderr
    assert "que:" in result.stderr


def test_the_library_redacts_passwords_in_what_it_raises_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    url = f"postgresql://u:{SECRET}@[::1/db"
    with pytest.raises(psycopg.Error) as raised:
        que.Client(url)
    assert SECRET not in str(raised.value)
    caplog.set_level(logging.INFO, logger="que")
    logging.getLogger("que").warning("connection_lost error=%s", f"bad {url}")
    assert SECRET not in caplog.text and "bad" in caplog.text


@pytest.mark.parametrize(
    "pool",
    [[], ["--batch", "3"], ["--async"]],
    ids=["threads", "batch", "async"],
)
@pytest.mark.parametrize(("sent", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["TERM", "INT"])
def test_a_worker_cut_short_exits_128_plus_its_signal_in_every_mode(
    database_url: str, conn: psycopg.Connection[Any], tmp_path: Path, pool: list[str], sent: int, status: int
) -> None:
    conn.execute("DROP TABLE IF EXISTS cli_marks")
    conn.execute("INSERT INTO que_jobs (job_class, args) VALUES ('Sleepy', '[30]')")
    env = {**os.environ, "QUE_DATABASE_URL": database_url, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [QUE, "work", "--app", "tests.apps.sleepy", "--wake-interval", "0.05", "--shutdown-timeout", "0.2", *pool],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _marks(conn) == ["started"], 30, "the job to start")
        proc.send_signal(sent)
        assert proc.wait(30) == status
    finally:
        proc.kill()
    [row] = rows(conn)
    assert row["error_count"] == 0, "a job cut short is left as it was, to run again"


def _marks(conn: psycopg.Connection[Any]) -> list[str]:
    if conn.execute("SELECT to_regclass('cli_marks')").fetchone() == (None,):
        return []
    return [r[0] for r in conn.execute("SELECT label FROM cli_marks").fetchall()]


def test_log_lines_escape_control_characters(
    client: que.Client, conn: psycopg.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="que")
    forged = "X\nINFO que job_worked job_id=1"
    client.enqueue(forged)
    que.Worker(client, {forged: lambda: None}).work_one()
    worked = [r for r in caplog.records if r.getMessage().startswith("job_worked")]
    assert worked and all("\n" not in r.getMessage() for r in worked)
    assert "X\\nINFO" in worked[0].getMessage()


def test_a_statement_timeout_is_not_logged_as_a_lost_connection(
    client: que.Client, conn: psycopg.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="que")
    from que.shells.common import backoff

    with psycopg.connect(client.conninfo, autocommit=True) as other:
        other.execute("SET statement_timeout = '10ms'")
        with pytest.raises(psycopg.errors.QueryCanceled) as raised:
            other.execute("SELECT pg_sleep(1)")
    backoff(1, 1.0, raised.value)
    [record] = [r for r in caplog.records if "retry_in" in r.getMessage()]
    assert getattr(record, "event", None) == "database_error"


def test_retry_of_a_job_id_beyond_bigint_is_a_usage_error(database_url: str, tmp_path: Path) -> None:
    result = run_que(database_url, tmp_path, "retry", "99999999999999999999")
    assert result.returncode == 2, result.stderr
    assert "bigint" in result.stderr


def test_python_dash_m_que_cli_still_works(database_url: str, conn: psycopg.Connection[Any]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "que.cli", "stats"],
        env={**os.environ, "QUE_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
