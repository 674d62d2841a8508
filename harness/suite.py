"""The pytest command line that runs the conformance suite, for the CLI and for make mutate."""

import sys
from pathlib import Path

from harness import paths


def command(junit: Path, *extra: str) -> list[str]:
    """pytest over conformance/ with the suite's own settings, wherever it is installed and
    whatever the working folder holds, writing JUnit XML to `junit`."""
    return [
        sys.executable,
        "-m",
        "pytest",
        str(paths.CONFORMANCE),
        "-c",
        str(paths.CONFORMANCE / "pytest.ini"),
        "--rootdir",
        str(paths.CONFORMANCE),
        "-p",
        "no:cacheprovider",
        f"--junitxml={junit}",
        "-o",
        "junit_family=xunit2",
        *extra,
    ]
