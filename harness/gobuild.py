"""Building the Go testees: the go command, and `go build` of every program the manifests'
`build.go` sections name (testees/go: que-go and gue)."""

import os
import shutil
import subprocess
from pathlib import Path

from harness import manifests, paths


def find_go() -> str | None:
    """The go command: on PATH, the usual /usr/local/go, or the toolchain the bootstrap
    fetched into the cache. A go of 1.21 or newer older than go.mod's fetches that one itself."""
    for candidate in (shutil.which("go"), "/usr/local/go/bin/go", str(paths.cache_dir() / "go" / "bin" / "go")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def programs() -> dict[str, tuple[Path, str]]:
    """program name -> (its module's folder, the package it is built from)."""
    return manifests.built("go")


def binary(program: str) -> Path:
    return paths.go_bin_dir() / program


def build(static: bool = False, only: str | None = None, into: Path | None = None) -> str | None:
    """`go build` the Go testees (or the program `only`, into the file `into`); None on
    success, else the reason it failed. `static`: no cgo, paths trimmed (for an image)."""
    go = find_go()
    if go is None:
        return "the Go toolchain (go) is not installed (harness/bootstrap.sh fetches the one go.mod names)"
    for program, (folder, package) in programs().items():
        if only is not None and program != only:
            continue
        target = into if into is not None else binary(program)
        command = [go, "build", *(["-trimpath"] if static else []), "-o", str(target), package]
        env = {"CGO_ENABLED": "0"} if static else {}
        done = subprocess.run(
            command, cwd=folder, capture_output=True, text=True, timeout=600, env={**os.environ, **env}
        )
        if done.returncode != 0:
            return f"go build failed: {done.stderr.strip()[-2000:]}"
    return None
