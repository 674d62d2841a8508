"""Handlers for CLI tests of troubled jobs: one that exits the process, one that always fails."""

import sys


def exits(code: int) -> None:
    sys.exit(code)


def fails(message: str) -> None:
    raise RuntimeError(message)


handlers = {"Exits": exits, "Fails": fails}
