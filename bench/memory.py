"""Worker-pool memory and connections: each testee runs its library's pool with N workers on
sleeping jobs, and the harness samples the testee process (with its children) from outside:
peak RSS with psutil, and the server sessions whose client port is one of the testee's."""

import contextlib
import threading
import time
from typing import Any

import psutil
import psycopg

from bench.drain import SLEEP, reset
from harness import lab, owners
from harness.testee import Testee

POOLS = (8, 32, 128)
SLEEP_MS = 1500  # long enough for every worker to be busy when sampled


def rss(pid: int) -> int:
    """Resident memory of a process and its children, bytes. A testee gone meanwhile is a
    failed cell (RuntimeError), not the end of the benchmark."""
    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        raise RuntimeError(f"the testee (pid {pid}) exited during the measurement") from None
    total = 0
    for process in family:
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return total


def sessions(conn: psycopg.Connection[Any], pid: int) -> int:
    """Server sessions opened by the process `pid` (or its children)."""
    ports = owners.client_ports(pid)
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE client_port = ANY(%s) AND backend_type = 'client backend'",
        [sorted(ports)],
    ).fetchone()
    return int(row[0]) if row else 0


def measure(testee: Testee, url: str, workers: int) -> dict[str, Any]:
    """Peak RSS and sessions of the testee while `workers` workers each run a sleeping job,
    against its idle figures before the pool starts."""
    assert testee.pid is not None
    reset(url)
    with psycopg.connect(url, autocommit=True) as conn:
        idle_rss, idle_sessions = rss(testee.pid), sessions(conn, testee.pid)
        lab.fill(conn, workers, SLEEP, f"json_build_array({SLEEP_MS})")
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["result"] = testee.request("work", timeout=120, queue="", workers=workers, deadline_ms=60_000)
            except Exception as error:  # raised below, in the caller's thread
                box["error"] = error

        thread = threading.Thread(target=work)
        thread.start()
        peak_rss, peak_sessions = idle_rss, idle_sessions
        while thread.is_alive():
            peak_rss = max(peak_rss, rss(testee.pid))
            peak_sessions = max(peak_sessions, sessions(conn, testee.pid))
            time.sleep(0.05)
        thread.join()
    if "error" in box:
        raise RuntimeError(f"{testee.label}: work with {workers} workers failed: {box['error']}")
    if not box["result"].get("drained"):
        raise RuntimeError(f"{testee.label}: work with {workers} workers did not drain: {box['result']}")
    return {
        "workers": workers,
        "idle_rss_mib": round(idle_rss / 2**20, 1),
        "rss_mib": round(peak_rss / 2**20, 1),
        "rss_per_worker_kib": round((peak_rss - idle_rss) / 1024 / workers, 1),
        "sessions": peak_sessions,
        "sessions_per_worker": round((peak_sessions - idle_sessions) / workers, 2),
    }
