"""que-conformance stopped by a signal (what CI timeouts send) removes its throwaway cluster."""

import glob
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from harness.lab import wait_until as wait_for

ROOT = Path(__file__).resolve().parents[2]


def clusters() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "que-pg-*")))


def postmaster_running(cluster: str) -> bool:
    pid_file = Path(cluster, "data", "postmaster.pid")
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=["TERM", "HUP", "INT"])
def test_a_signal_stops_the_run_and_removes_the_cluster(signum: int, tmp_path: Path) -> None:
    before = clusters()
    env = {k: v for k, v in os.environ.items() if k not in ("QUE_DATABASE_URL", "DATABASE_URL")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "conformance.cli",
            "--impl",
            "python",
            "--no-bootstrap",
            "--no-build",
            "--backend",
            "local",
            "--results",
            str(tmp_path),
            # An outside testee that never answers `start` keeps the run busy for a minute.
            "--testee",
            "sleep 600",
            "--",
            "-k",
            "test_defaults",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        new = wait_for(lambda: [c for c in clusters() - before if postmaster_running(c)], timeout=60, what="cluster")
        proc.send_signal(signum)
        # The run would go on for a minute: it must stop now, not when its cells are done.
        assert proc.wait(15) != 0
        wait_for(lambda: not any(postmaster_running(c) for c in new), timeout=15, what="the server to stop")
        wait_for(lambda: not any(Path(c).exists() for c in new), timeout=15, what="the cluster to be removed")
    finally:
        proc.kill()


def test_a_stopped_benchmark_removes_its_cluster(tmp_path: Path) -> None:
    """make bench under a CI timeout: SIGTERM mid-run must not leave a server behind."""
    before = clusters()
    command = [sys.executable, "-m", "bench.run", "--impl", "python", "--jobs", "200000", "--runs", "3"]
    proc = subprocess.Popen(
        [*command, "--workers", "1", "--out", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        new = wait_for(lambda: [c for c in clusters() - before if postmaster_running(c)], timeout=60, what="cluster")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) != 0
        wait_for(lambda: not any(postmaster_running(c) for c in new), timeout=15, what="the server to stop")
        wait_for(lambda: not any(Path(c).exists() for c in new), timeout=15, what="the cluster to be removed")
    finally:
        proc.kill()
