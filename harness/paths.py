"""Where the suite's files are, whether it runs from a checkout or an installed wheel.

The Go and Ruby testee sources travel inside the `harness` package (in a checkout,
harness/testees/go and harness/testees/ruby are links to go/ and ruby/), so one set of
paths serves both. Only what a run writes differs: a checkout builds Go testees into go/bin,
an installed suite into a user cache directory, because site-packages is not ours to write.
"""

import hashlib
import os
from pathlib import Path

HARNESS = Path(__file__).resolve().parent
GO_DIR = HARNESS / "testees" / "go"
RUBY_DIR = HARNESS / "testees" / "ruby"
RUBY2_DIR = HARNESS / "testees" / "ruby2"
BOOTSTRAP = HARNESS / "bootstrap.sh"
CONFORMANCE = HARNESS.parent / "conformance"
# A checkout has the project file beside the packages; a wheel does not.
CHECKOUT = HARNESS.parent if (HARNESS.parent / "pyproject.toml").is_file() else None


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "que-interop"


def go_bin_dir() -> Path:
    """go/bin in a checkout; else a cache folder keyed by the shipped sources, so an
    upgraded suite never runs testees built from older sources."""
    if CHECKOUT is not None:
        return GO_DIR / "bin"
    digest = hashlib.sha256()
    for path in sorted(GO_DIR.rglob("*")):
        if path.is_file() and path.suffix in (".go", ".mod", ".sum"):
            digest.update(str(path.relative_to(GO_DIR)).encode())
            digest.update(path.read_bytes())
    return cache_dir() / f"go-testees-{digest.hexdigest()[:16]}"
