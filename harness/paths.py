"""Where the suite's files are, whether it runs from a checkout or an installed wheel.

The testees (testees/<folder>: their sources and manifests) travel beside the `harness`
package, in a checkout and in a wheel alike, so one set of paths serves both. Only what a
run writes differs: a checkout builds Go testees into testees/go/bin, an installed suite into
a user cache directory, because site-packages is not ours to write.
"""

import hashlib
import os
from pathlib import Path

HARNESS = Path(__file__).resolve().parent
TESTEES = HARNESS.parent / "testees"
GO_DIR = TESTEES / "go"
RUBY_DIR = TESTEES / "ruby"
RUBY2_DIR = TESTEES / "ruby2"
BOOTSTRAP = HARNESS / "bootstrap.sh"
CONFORMANCE = HARNESS.parent / "conformance"
# A checkout has the project file beside the packages; a wheel does not.
CHECKOUT = HARNESS.parent if (HARNESS.parent / "pyproject.toml").is_file() else None


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "que-interop"


def go_bin_dir() -> Path:
    """testees/go/bin in a checkout; else a cache folder keyed by the shipped sources, so an
    upgraded suite never runs testees built from older sources."""
    if CHECKOUT is not None:
        return GO_DIR / "bin"
    digest = hashlib.sha256()
    for path in sorted(GO_DIR.rglob("*")):
        if path.is_file() and path.suffix in (".go", ".mod", ".sum"):
            digest.update(str(path.relative_to(GO_DIR)).encode())
            digest.update(path.read_bytes())
    return cache_dir() / f"go-testees-{digest.hexdigest()[:16]}"
