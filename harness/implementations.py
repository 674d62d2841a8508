"""The implementations a run can use, and how to make each one runnable.

Built in: python (over que/), go (real que-go, built with `go build`), ruby (real Que
0.14 from the gem or QUE_RUBY_LIB). Any other port joins with `--testee 'CMD ...'`.
Availability is decided by trying: a build that fails or a `start` that answers
Unavailable makes the implementation's cells *unavailable*, with the reason.
"""

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness import containers

ROOT = Path(__file__).resolve().parent.parent
GO_BINARY = ROOT / "go" / "bin" / "que-testee"


@dataclass
class Implementation:
    """A testee command line plus what must happen before it can run."""

    name: str
    command: list[str]
    cwd: Path = ROOT
    env: dict[str, str] = field(default_factory=dict)
    # Set when the implementation cannot run here; its cells are reported unavailable.
    unavailable: str | None = None
    # With the docker backend, container testees are sent the in-network URL.
    in_container: bool = False

    def describe(self) -> str:
        return shlex.join(self.command)


def build_go(output: Path = GO_BINARY) -> str | None:
    """`go build` the Go testee; None on success, else the reason it failed."""
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        return "the Go toolchain (go) is not installed"
    result = subprocess.run(
        [go, "build", "-o", str(output), "."],
        cwd=ROOT / "go",
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        return f"go build failed: {result.stderr.strip()[-2000:]}"
    return None


def python_impl() -> Implementation:
    return Implementation("python", [sys.executable, "-m", "harness.testees.python"])


def go_impl(build: bool = True) -> Implementation:
    reason = build_go() if build else (None if GO_BINARY.exists() else "go/bin/que-testee is not built")
    return Implementation("go", [str(GO_BINARY)], unavailable=reason)


def ruby_impl() -> Implementation:
    ruby = shutil.which("ruby")
    if ruby is None:
        return Implementation("ruby", ["ruby", "ruby/testee.rb"], unavailable="ruby is not installed")
    env = {}
    if os.environ.get("QUE_RUBY_LIB"):
        env["QUE_RUBY_LIB"] = os.environ["QUE_RUBY_LIB"]
    return Implementation("ruby", [ruby, str(ROOT / "ruby" / "testee.rb")], env=env)


def container_impl(name: str, network: str) -> Implementation:
    """A built-in implementation run as a container (docker backend)."""
    spec = containers.IMAGES[name]
    try:
        containers.build_image(spec)
    except Exception as error:  # the SDK's build errors carry the build log
        return Implementation(name, [], unavailable=f"docker build of {spec.repository} failed: {error}")
    return Implementation(name, containers.run_command(spec, network), in_container=True)


def outside_impl(command: str, index: int) -> Implementation:
    argv = shlex.split(command)
    if not argv:
        raise ValueError("--testee needs a command line")
    return Implementation(f"testee{index}", argv)


def resolve(
    names: Sequence[str], outside: Sequence[str] = (), build: bool = True, network: str | None = None
) -> list[Implementation]:
    """The implementations of a run, in order: built-ins by name, then outside testees."""
    found: list[Implementation] = []
    for name in names:
        if network is not None and name in containers.IMAGES:
            found.append(container_impl(name, network))
        elif name == "python":
            found.append(python_impl())
        elif name == "go":
            found.append(go_impl(build))
        elif name == "ruby":
            found.append(ruby_impl())
        else:
            raise ValueError(f"unknown implementation {name!r}: built-ins are python, go, ruby")
    found += [outside_impl(command, i + 1) for i, command in enumerate(outside)]
    return found
