"""The implementations a run can use, and how to make each one runnable.

Built in: python (over que/, WorkerPool with its locker), python-sessions (a session per
worker), python-async (over que.aio), python-batch (que's batched claim), go (real que-go)
and gue (real gue v1.0.2), both built
with `go build`, and ruby (real Que 0.14 from the gem or QUE_RUBY_LIB). Any other port
joins with `--testee 'CMD ...'`. Availability is decided by trying: a build that fails
or a `start` that answers Unavailable makes the implementation's cells *unavailable*,
with the reason.
"""

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness import containers, image_build, paths
from harness.paths import GO_DIR, RUBY2_DIR, RUBY_DIR

# The Go testees: program name -> the package (under go/) it is built from.
GO_PROGRAMS = {"go": ("que-go-testee", "./cmd/que-go"), "gue": ("gue-testee", "./cmd/gue")}


@dataclass
class Implementation:
    """A testee command line plus what must happen before it can run."""

    name: str
    command: list[str]
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    # Set when the implementation cannot run here; its cells are reported unavailable.
    unavailable: str | None = None
    # With the docker backend, container testees are sent the in-network URL.
    in_container: bool = False
    # The image a container row runs, and where its implementation came from.
    image: str | None = None
    image_note: str = ""
    # Called after the testee process ends or is killed (a container outlives `docker run`).
    on_exit: Callable[[], None] | None = None

    @property
    def backend(self) -> str:
        return "container" if self.in_container else "process"

    def describe(self) -> str:
        return shlex.join(self.command)


def go_binary(name: str) -> Path:
    return paths.go_bin_dir() / GO_PROGRAMS[name][0]


def find_go() -> str | None:
    """The go command: on PATH, the usual /usr/local/go, or the toolchain the bootstrap
    fetched into the cache. A go of 1.21 or newer older than go.mod's fetches that one itself."""
    for candidate in (shutil.which("go"), "/usr/local/go/bin/go", str(paths.cache_dir() / "go" / "bin" / "go")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def build_go() -> str | None:
    """`go build` every Go testee; None on success, else the reason it failed."""
    go = find_go()
    if go is None:
        return "the Go toolchain (go) is not installed (harness/bootstrap.sh installs Debian's golang as root)"
    for name, (_, package) in GO_PROGRAMS.items():
        result = subprocess.run(
            [go, "build", "-o", str(go_binary(name)), package],
            cwd=GO_DIR,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode != 0:
            return f"go build failed: {result.stderr.strip()[-2000:]}"
    return None


def python_impl(build: bool = True) -> Implementation:
    return Implementation("python", [sys.executable, "-m", "harness.testees.python"])


# The batch size of the python-batch row (WorkerPool(batch=...)).
PYTHON_BATCH = 10


def python_batch_impl(build: bool = True) -> Implementation:
    return Implementation(
        "python-batch", [sys.executable, "-m", "harness.testees.python", "--batch", str(PYTHON_BATCH)]
    )


def python_sessions_impl(build: bool = True) -> Implementation:
    return Implementation("python-sessions", [sys.executable, "-m", "harness.testees.python", "--sessions"])


def python_async_impl(build: bool = True) -> Implementation:
    return Implementation("python-async", [sys.executable, "-m", "harness.testees.python_async"])


def _go_impl(name: str, build: bool) -> Implementation:
    binary = go_binary(name)
    reason = build_go() if build else (None if binary.exists() else f"{binary} is not built")
    return Implementation(name, [str(binary)], unavailable=reason)


def go_impl(build: bool = True) -> Implementation:
    return _go_impl("go", build)


def gue_impl(build: bool = True) -> Implementation:
    return _go_impl("gue", build)


def ruby_impl(build: bool = True) -> Implementation:
    ruby = shutil.which("ruby")
    if ruby is None:
        return Implementation("ruby", ["ruby", str(RUBY_DIR / "testee.rb")], unavailable="ruby is not installed")
    env = {}
    if os.environ.get("QUE_RUBY_LIB"):
        env["QUE_RUBY_LIB"] = os.environ["QUE_RUBY_LIB"]
    return Implementation("ruby", [ruby, str(RUBY_DIR / "testee.rb")], env=env)


def ruby2_impl(build: bool = True) -> Implementation:
    """The real Ruby Que 2.4 (the Que 2 dialect), from the gem or QUE2_RUBY_LIB."""
    command = ["ruby", str(RUBY2_DIR / "testee.rb")]
    ruby = shutil.which("ruby")
    if ruby is None:
        return Implementation("ruby-2.4.1", command, unavailable="ruby is not installed")
    env = {}
    if os.environ.get("QUE2_RUBY_LIB"):
        env["QUE2_RUBY_LIB"] = os.environ["QUE2_RUBY_LIB"]
    return Implementation("ruby-2.4.1", [ruby, *command[1:]], env=env)


# Every built-in implementation, in the order of a run's rows.
BUILTINS: dict[str, Callable[[bool], Implementation]] = {
    "python": python_impl,
    "python-sessions": python_sessions_impl,
    "python-async": python_async_impl,
    "python-batch": python_batch_impl,
    "go": go_impl,
    "gue": gue_impl,
    "ruby": ruby_impl,
}


# The rows of the Que 2 dialect (Ruby Que 2.x's protocol on a v7 table), in run order.
BUILTINS2: dict[str, Callable[[bool], Implementation]] = {
    "python": python_impl,
    "python-async": python_async_impl,
    "ruby-2.4.1": ruby2_impl,
}
# Every built-in row of either dialect.
ALL_BUILTINS: dict[str, Callable[[bool], Implementation]] = {**BUILTINS, **BUILTINS2}


# The environment a container row is given from the harness's (the rest is the image's).
CONTAINER_ENV = ("TZ",)


def container_impl(name: str, network: str) -> Implementation:
    """A built-in implementation run as a container on `network` (docker backend)."""
    import docker

    spec = image_build.IMAGES[name]
    try:
        client = docker.from_env()
        tag = image_build.build(spec, image_build.choose_bases(client), client)
        note = spec.note()
    except Exception as error:  # the SDK's errors and ours carry the reason
        return Implementation(name, [], unavailable=f"the {spec.repository} image: {error}")
    container = f"que-interop-{containers.run_id()}-{name}"
    command = containers.run_command(tag, spec.program, network, container, env=CONTAINER_ENV)
    return Implementation(
        name,
        command,
        in_container=True,
        image=tag,
        image_note=note,
        on_exit=lambda: containers.remove_container(container),
    )


def outside_impl(command: str, index: int) -> Implementation:
    argv = shlex.split(command)
    if not argv:
        raise ValueError("--testee needs a command line")
    return Implementation(f"testee{index}", argv)


def unknown(names: Sequence[str]) -> list[str]:
    return [name for name in names if name not in ALL_BUILTINS]


def resolve(
    names: Sequence[str], outside: Sequence[str] = (), build: bool = True, network: str | None = None
) -> list[Implementation]:
    """The implementations of a run, in order: built-ins by name, then outside testees.
    The Go toolchain runs at most once however many Go testees there are."""
    if unknown(names):
        raise ValueError(f"unknown implementation(s) {unknown(names)}: built-ins are {', '.join(ALL_BUILTINS)}")
    found: list[Implementation] = []
    built = False
    for name in names:
        if network is not None and name in image_build.IMAGES:
            found.append(container_impl(name, network))
            continue
        needs_build = build and name in GO_PROGRAMS and not built
        found.append(ALL_BUILTINS[name](needs_build))
        built = built or needs_build
    found += [outside_impl(command, i + 1) for i, command in enumerate(outside)]
    return found
