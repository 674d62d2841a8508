"""A mutant of que as a testee: `python -m mutation.testee ID [ARGS ...]` makes this process's
que the mutant ID (mutation/mutants.py), then runs the python testee (testees.python.threads)
with ARGS. `python -m mutation.run --list` lists the ids."""

import runpy
import sys

from mutation import mutants


def main(argv: list[str]) -> None:
    if not argv or argv[0].startswith("-"):
        raise SystemExit("usage: python -m mutation.testee MUTANT_ID [testee arguments ...]")
    mutants.apply(argv[0])
    sys.argv = ["testees.python.threads", *argv[1:]]
    runpy.run_module("testees.python.threads", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
