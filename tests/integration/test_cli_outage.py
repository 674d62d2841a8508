"""`que work` stops on SIGTERM even while the server cannot be reached (issue 29, fault 10:
with a job finished during the outage, the locker tried to write its outcome forever and
the process never exited). The outcome is given up: the job's lock died with the session,
and the job runs again once the server is back (at least once)."""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import que
from harness.lab import wait_until
from harness.postgres import LocalCluster, find_bindir
from tests.apps import outage

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    bindir = find_bindir()
    if bindir is None:
        pytest.fail("no PostgreSQL server binaries (make test installs Debian's postgresql)")
    server = LocalCluster(bindir=bindir).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("table", "mode"),
    [(3, []), (3, ["--async"]), (3, ["--no-locker"]), (7, []), (7, ["--async"])],
    ids=["0.x-threads", "0.x-asyncio", "0.x-sessions", "que2-threads", "que2-asyncio"],
)
def test_sigterm_during_an_outage_exits(cluster: LocalCluster, tmp_path: Path, table: int, mode: list[str]) -> None:
    with que.Client(cluster.url) as client:
        client.migrate(table)
        client.enqueue("Waits")
    marker = tmp_path / "go"
    os.mkfifo(marker)
    env = {**os.environ, "QUE_DATABASE_URL": cluster.url, "OUTAGE_MARKER": str(marker), "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "que.cli", "work", "--app", "tests.apps.outage", "--wake-interval", "0.1", *mode],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: (tmp_path / "started").exists(), 20, "the job to start")
        cluster.stop()
        outage.go(marker)  # the job ends while the server is down: its outcome cannot be written
        wait_until(lambda: (tmp_path / "ended").exists(), 20, "the job to end")
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            pytest.fail("que work did not exit within 20 s of SIGTERM while the server was down")
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(5)
    output = worker.stdout.read() if worker.stdout else ""
    assert "Traceback" not in output, output
