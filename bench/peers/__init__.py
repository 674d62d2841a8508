"""The Python job queues a user would pick instead of que, drained on the same machine and
server with the same no-op jobs, each through its recommended fast path. They use their own
tables and SKIP LOCKED, so the comparison shows the price of Que interoperability, not a
like-for-like protocol race. Each runs in a process of its own (`python -m bench.peers.X`)
and prints one JSON line."""

import json
import subprocess
import sys
from typing import Any

# name -> the module that drains with it
PEERS = {"pgqueuer": "bench.peers.pgqueuer_drain", "procrastinate": "bench.peers.procrastinate_drain"}


class PeerUnavailable(Exception):
    """The peer library is not installed (pip install -e '.[bench]')."""


def version(name: str) -> str:
    from importlib import metadata

    try:
        return f"{name} {metadata.version(name)}"
    except metadata.PackageNotFoundError:
        raise PeerUnavailable(f"{name} is not installed (pip install -e '.[bench]')") from None


def run(name: str, url: str, jobs: int, concurrency: int, enqueue: int = 0) -> dict[str, Any]:
    """One drain (and, with `enqueue`, the enqueue rates first) in a fresh process."""
    version(name)
    command = [sys.executable, "-m", PEERS[name], url, str(jobs), str(concurrency)]
    if enqueue:
        command += ["--enqueue", str(enqueue)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"{name} failed ({out.returncode}): {out.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if report.get("left"):
        raise RuntimeError(f"{name} left {report['left']} jobs queued")
    return report
