"""A Docker engine for the container path: the one that answers, or one the harness owns.

A machine without a running engine but with Debian's docker.io (the bootstrap installs it
as root) gets a daemon started for the run, with a data root of its own under
/var/lib/que-interop, so the images it builds are cached between runs. Its storage is
overlay2 where the kernel and file system allow it, else vfs, which works anywhere (inside
a container too) but copies an image's whole file system for every container it starts:
a testee restart then takes seconds instead of a fraction of one. QUE_DOCKER_STORAGE
names one driver instead. The harness removes the containers and networks of the
run and stops that daemon when the run ends, also on SIGINT and SIGTERM (the caller turns
those into exceptions with harness.signals.unwinding). An engine that already answers is
used as it is and left running.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness import containers

STATE = Path(os.environ.get("QUE_DOCKER_STATE", "/var/lib/que-interop/docker"))
RUN = Path(os.environ.get("QUE_DOCKER_RUN", "/run/que-interop"))
SOCKET = RUN / "docker.sock"
PIDFILE = RUN / "docker.pid"
# dockerd starts in about 8 s here; a first start on a slow disk takes longer.
START_TIMEOUT = 90.0
# Tried in order; a driver the kernel or file system refuses makes dockerd exit at start.
STORAGE_DRIVERS = ("overlay2", "vfs")


class EngineUnavailable(RuntimeError):
    """No engine answers and none can be started here."""


@dataclass(frozen=True)
class Engine:
    """The engine a run uses: its DOCKER_HOST and whether the harness started it."""

    host: str
    owned: bool
    storage: str = ""

    def describe(self) -> str:
        if not self.owned:
            return f"Docker engine at {self.host}, already running"
        return f"Docker engine at {self.host}, started by the harness ({self.storage} storage, images kept in {STATE})"


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stale_daemon() -> None:
    """A daemon of an earlier run killed with SIGKILL leaves its pid file and socket; the
    next start would refuse them. Stop a daemon still running from them, then remove them."""
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        pid = int(PIDFILE.read_text().strip())
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.1)
    for leftover in (PIDFILE, SOCKET):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()


def _start_daemon() -> tuple[subprocess.Popen[bytes], str]:
    """dockerd on the harness's socket, with the first storage driver that starts."""
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise EngineUnavailable(
            "no Docker engine answers and dockerd is not installed "
            "(as root on Debian, harness/bootstrap.sh --docker installs docker.io)"
        )
    if os.geteuid() != 0:
        raise EngineUnavailable("no Docker engine answers, and starting dockerd needs root")
    forced = os.environ.get("QUE_DOCKER_STORAGE")
    failures = []
    for driver in (forced,) if forced else STORAGE_DRIVERS:
        try:
            return _start_with(dockerd, driver), driver
        except EngineUnavailable as error:
            failures.append(f"{driver}: {error}")
    raise EngineUnavailable("dockerd did not start with any storage driver:\n" + "\n".join(failures))


def _start_with(dockerd: str, driver: str) -> subprocess.Popen[bytes]:
    _stale_daemon()
    STATE.mkdir(parents=True, exist_ok=True)
    RUN.mkdir(parents=True, exist_ok=True)
    log = STATE / "dockerd.log"
    command = [
        dockerd,
        "--storage-driver",
        driver,
        # One data root per driver: their image stores cannot be shared.
        "--data-root",
        str(STATE / f"root-{driver}"),
        "--exec-root",
        str(RUN / "exec"),
        "--pidfile",
        str(PIDFILE),
        "-H",
        f"unix://{SOCKET}",
    ]
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EngineUnavailable(f"dockerd exited with status {process.returncode}:\n{_log_tail(log, 5)}")
        if containers.docker_unavailable_reason(f"unix://{SOCKET}") is None:
            return process
        time.sleep(0.5)
    _stop_daemon(process)
    raise EngineUnavailable(f"dockerd did not answer within {START_TIMEOUT:.0f}s:\n{_log_tail(log)}")


def _stop_daemon(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@contextlib.contextmanager
def engine() -> Iterator[Engine]:
    """The engine for this run, with DOCKER_HOST set for this process and its children.
    On the way out the run's containers and networks are removed, and a daemon the harness
    started is stopped."""
    if containers.docker_unavailable_reason() is None:
        yield Engine(host=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"), owned=False)
        return
    before = os.environ.get("DOCKER_HOST")
    host = f"unix://{SOCKET}"
    # Another run's daemon (the harness's socket answers): used, and left to that run.
    process, storage = (None, "") if containers.docker_unavailable_reason(host) is None else _start_daemon()
    os.environ["DOCKER_HOST"] = host
    try:
        yield Engine(host=host, owned=process is not None, storage=storage)
    finally:
        try:
            containers.remove_leftovers()
        finally:
            if process is not None:
                _stop_daemon(process)
            if before is None:
                os.environ.pop("DOCKER_HOST", None)
            else:
                os.environ["DOCKER_HOST"] = before
