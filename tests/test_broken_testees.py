"""A broken port fails the run, with a message that names the broken rule.

The Python testee turns into a port that violates one rule (QUE_TESTEE_BREAK) and joins a
run as an outside testee next to the correct Python implementation.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CASES = [
    ("backoff", "test_retries.py", "the schedule says 19s"),
    ("ordering", "test_ordering.py", "expected ['c', 'd', 'b', 'a']"),
    ("arguments", "test_cross_language.py", "received"),
    ("lock-key", "test_locking.py", "the lock must be the single bigint key"),
]


@pytest.mark.parametrize(("rule", "area", "message"), CASES, ids=[c[0] for c in CASES])
def test_broken_rule_fails_the_run(rule: str, area: str, message: str, database_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "QUE_DATABASE_URL": database_url,
        "QUE_TESTEE_BREAK": rule,
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "--impl",
            "python",
            "--no-bootstrap",
            "--no-build",
            "--backend",
            "url",
            "--results",
            str(tmp_path),
            "--testee",
            f"{sys.executable} -m harness.testees.python",
            "--",
            "-k",
            f"{area.removesuffix('.py')} and testee1",
            "-q",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert message in output, output[-3000:]
    assert "failed" in output.splitlines()[-1]
