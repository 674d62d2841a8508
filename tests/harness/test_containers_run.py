"""The container path for real: a Docker engine (the one that answers, or one the harness
starts from Debian's docker.io), images built here, PostgreSQL and the testees as containers.

Needs root and dockerd where no engine answers (harness/bootstrap.sh --test installs it);
elsewhere these tests are skipped with the reason. The first image builds take about two
minutes (a Debian base from debootstrap, then the images); later runs reuse them.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import containers, engine
from harness.lab import wait_until

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def _engine_reason() -> str | None:
    if containers.docker_unavailable_reason() is None:
        return None
    if shutil.which("dockerd") is None:
        return "no Docker engine answers and dockerd is not installed (harness/bootstrap.sh --docker)"
    if os.geteuid() != 0:
        return "no Docker engine answers and starting dockerd needs root"
    return None


def _command(results: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "conformance.cli",
        "--no-bootstrap",
        "--backend",
        "docker",
        "--containers",
        "--results",
        str(results),
        *args,
    ]


def _leftovers(run: str) -> list[str]:
    import docker

    client = docker.from_env()
    selector = {"label": f"{containers.RUN_LABEL}={run}"}
    return [f"container {c.name}" for c in client.containers.list(all=True, filters=selector)] + [
        f"network {n.name}" for n in client.networks.list(filters=selector)
    ]


@pytest.fixture
def held_engine() -> Iterator[engine.Engine]:
    """An engine for the whole test, so it can be asked what ran after the harness is done."""
    reason = _engine_reason()
    if reason:
        pytest.skip(reason)
    with engine.engine() as running:
        yield running


def test_python_and_go_rows_run_as_containers_and_nothing_is_left(held_engine: engine.Engine, tmp_path: Path) -> None:
    """The rows' results name the container backend and image, the engine saw a container of
    each image start during the run, and none of the run's containers or networks remain."""
    import docker

    run = uuid.uuid4().hex[:12]
    env = {**os.environ, containers.RUN_ID_VARIABLE: run}
    env.pop("QUE_DATABASE_URL", None)
    started = time.time()
    done = subprocess.run(
        _command(tmp_path, "--impl", "python,go", "--", "-q", "-k", "test_cross_language"),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1100,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    results: dict[str, Any] = json.loads((tmp_path / "results.json").read_text())
    assert results["postgres"]["backend"] == "docker" and results["postgres"]["image"], results["postgres"]
    rows = results["implementations"]
    images = {}
    for name in ("python", "go"):
        assert rows[name]["available"], rows[name]
        assert rows[name]["backend"] == "container", rows[name]
        images[name] = rows[name]["image"]
        assert images[name].startswith(f"que-interop-{name}:"), images[name]
    outcomes = {c["cell"]: c["outcome"] for c in results["cells"] if c["outcome"] != "deselected"}
    passed = [cell for cell, outcome in outcomes.items() if outcome == "passed"]
    # Every ordered pair of the two rows, python->go and go->python included.
    assert len(passed) >= 4 and "failed" not in outcomes.values(), outcomes
    client = docker.from_env()
    events = client.events(
        since=int(started), until=int(time.time()) + 1, decode=True, filters={"type": "container", "event": "start"}
    )
    seen = {event["Actor"]["Attributes"].get("image") for event in events}
    for name, image in images.items():
        assert image in seen, f"no container of {image} ({name}) started during the run: {sorted(map(str, seen))}"
    assert results["postgres"]["image"] in seen
    assert _leftovers(run) == []
    report = (tmp_path / "report.html").read_text()
    assert f"container {images['go']}" in report


def test_a_stopped_run_leaves_no_container_network_or_daemon(tmp_path: Path) -> None:
    """SIGTERM while testee containers run: the harness removes the run's containers and
    network, and stops a daemon it started."""
    import docker

    reason = _engine_reason()
    if reason:
        pytest.skip(reason)
    owned = containers.docker_unavailable_reason() is not None
    run = uuid.uuid4().hex[:12]
    env = {**os.environ, containers.RUN_ID_VARIABLE: run}
    env.pop("QUE_DATABASE_URL", None)
    process = subprocess.Popen(
        # The delivery area's long jobs (10.5 s each) keep the testees busy when the signal comes.
        _command(tmp_path, "--impl", "python,go", "--", "-q", "-k", "test_delivery"),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    host = f"unix://{engine.SOCKET}" if owned else None
    selector = {"label": f"{containers.RUN_LABEL}={run}"}

    def running() -> list[str] | bool:
        """The run's testee containers, or True once the harness has ended (first)."""
        if process.poll() is not None:
            return True
        if containers.docker_unavailable_reason(host) is not None:
            return []
        client = docker.DockerClient(base_url=host) if host else docker.from_env()
        try:
            return [c.name for c in client.containers.list(filters=selector) if c.name.endswith(("-python", "-go"))]
        finally:
            client.close()

    found = wait_until(running, 900, "a testee container of the run")
    assert isinstance(found, list), f"the harness ended before any testee container started: {process.returncode}"
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=180)
    assert process.returncode != 0, output[-3000:]
    if owned:
        assert containers.docker_unavailable_reason(host) is not None, "the harness's daemon still answers"
        assert not engine.PIDFILE.exists(), output[-3000:]
        # Its data root keeps the images; start it again to see that no container remains.
        with engine.engine():
            assert _leftovers(run) == []
    else:
        assert _leftovers(run) == []
