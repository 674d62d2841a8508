"""The implementations a run can use, and how to make each one runnable.

The built-in rows come from the testees' manifests (testees/<folder>/manifest.json, read by
harness.manifests): python, python-sessions, python-async and python-batch over que; go and
gue (the real que-go and gue, built with `go build`); ruby (the real Ruby Que 0.14.3) and
ruby-2.4.1 (the real Ruby Que 2.4.1). Any other port joins with `--testee 'CMD ...'`.
Availability is decided by trying: a build that fails, a program that is missing or a
`start` that answers Unavailable makes the row's cells *unavailable*, with the reason.
"""

import os
import shlex
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness import containers, gobuild, image_build, manifests, paths


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
    # The dialects the row speaks ("0.14", "1", "2"), from its manifest; () for a port that
    # joins with --testee, which says at `start` what it speaks.
    dialects: tuple[str, ...] = ()

    @property
    def backend(self) -> str:
        return "container" if self.in_container else "process"

    def describe(self) -> str:
        return shlex.join(self.command)


def _command(row: manifests.Row) -> list[str]:
    values = {"python": sys.executable, "dir": str(row.folder), "bin": str(paths.go_bin_dir())}
    values["ruby"] = shutil.which("ruby") or "ruby"
    return [part.format(**values) for part in row.command]


def builtin(name: str, build: bool = True) -> Implementation:
    """The row `name` of the manifests, built first when `build` (Go programs)."""
    row = manifests.rows()[name]
    command = _command(row)
    impl = Implementation(name, command, dialects=row.dialects)
    impl.env = {variable: os.environ[variable] for variable in row.env if os.environ.get(variable)}
    missing = [tool for tool in row.needs if shutil.which(tool) is None]
    if missing:
        impl.unavailable = f"{', '.join(missing)} is not installed"
    elif manifests.manifest_of(row).build:
        binary = Path(command[0])
        impl.unavailable = _build(row) if build else (None if binary.exists() else f"{binary} is not built")
    return impl


# The tools a manifest's `build` may name, and how each builds its folder's programs.
BUILDERS: dict[str, Callable[[], str | None]] = {"go": gobuild.build}


def builds(name: str) -> bool:
    """Whether the built-in row `name` is built before it runs (its manifest has a build)."""
    row = manifests.rows().get(name)
    return row is not None and bool(manifests.manifest_of(row).build)


def build(names: Sequence[str]) -> str | None:
    """Build the folders of the rows `names`, each once; None, or the first reason one failed."""
    folders = {manifests.rows()[name].folder: manifests.rows()[name] for name in names if builds(name)}
    for row in folders.values():
        failed = _build(row)
        if failed:
            return failed
    return None


def _build(row: manifests.Row) -> str | None:
    """Build the programs of the row's folder; None, or why it failed."""
    for tool in manifests.manifest_of(row).build:
        builder = BUILDERS.get(tool)
        if builder is None:
            return f"{row.folder}/manifest.json builds with {tool!r}, which the harness does not know"
        failed = builder()
        if failed:
            return failed
    return None


def speaking(dialect: str) -> dict[str, Callable[[bool], Implementation]]:
    """The built-in rows that speak `dialect`, in run order: name -> how to make it."""
    return {
        name: (lambda build, name=name: builtin(name, build))  # type: ignore[misc]
        for name, row in manifests.rows().items()
        if dialect in row.dialects
    }


# The built-in rows of each dialect, in run order; and every built-in row.
BUILTINS: dict[str, Callable[[bool], Implementation]] = speaking("0.14")
BUILTINS2: dict[str, Callable[[bool], Implementation]] = speaking("2")
ALL_BUILTINS: dict[str, Callable[[bool], Implementation]] = {
    name: (lambda build, name=name: builtin(name, build))  # type: ignore[misc]
    for name in manifests.rows()
}

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
        dialects=manifests.rows()[name].dialects,
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
    A folder's programs are built at most once however many of its rows run."""
    if unknown(names):
        raise ValueError(f"unknown implementation(s) {unknown(names)}: built-ins are {', '.join(ALL_BUILTINS)}")
    found: list[Implementation] = []
    built: set[Path] = set()
    for name in names:
        if network is not None and name in image_build.IMAGES:
            found.append(container_impl(name, network))
            continue
        folder = manifests.rows()[name].folder
        found.append(builtin(name, build and folder not in built))
        built.add(folder)
    found += [outside_impl(command, i + 1) for i, command in enumerate(outside)]
    return found
