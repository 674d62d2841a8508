"""`que-conformance --smoke`: a verdict in seconds, one plain sentence per broken step."""

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.harness.test_protocol_doc import minimal_testee

ROOT = Path(__file__).resolve().parents[2]
BROKEN = f"{sys.executable} -m testees.python.threads --break"
FAKE = f"{sys.executable} {Path(__file__).with_name('fake_testee.py')}"


def smoke(tmp_path: Path, database_url: str, *testees: str) -> tuple[int, str, list[dict[str, object]], float]:
    command = [sys.executable, "-m", "conformance.cli", "--smoke", "--backend", "url", "--database-url", database_url]
    command += ["--results", str(tmp_path), *(f"--testee={t}" for t in testees)]
    began = time.monotonic()
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    elapsed = time.monotonic() - began
    return done.returncode, done.stdout + done.stderr, json.loads((tmp_path / "smoke.json").read_text()), elapsed


def steps(run: dict[str, object]) -> dict[str, tuple[str, str]]:
    found = run["steps"]
    assert isinstance(found, list)
    return {s["name"]: (s["outcome"], s["sentence"]) for s in found}


def test_a_correct_testee_passes_every_step_and_the_verdict_comes_first(database_url: str, tmp_path: Path) -> None:
    code, output, runs, elapsed = smoke(tmp_path, database_url, f"{sys.executable} {minimal_testee(tmp_path)}")
    assert code == 0, output
    assert output.startswith("smoke test of testee1"), output
    assert "smoke: testee1 passed" in output
    found = steps(runs[0])
    assert [found[s][0] for s in ("start", "enqueue", "work_one", "retry")] == ["ok"] * 4
    assert found["lock/release"] == ("skip", "the testee does not declare capability lock")
    assert elapsed < 20, f"the smoke test took {elapsed:.1f}s"


def test_a_port_that_never_unlocks_hears_which_step_and_what_to_fix(database_url: str, tmp_path: Path) -> None:
    code, output, runs, _ = smoke(tmp_path, database_url, f"{BROKEN} never-unlock")
    assert code == 1, output
    found = steps(runs[0])
    assert found["enqueue"][0] == "ok"
    assert found["work_one"] == (
        "FAIL",
        "advisory lock on job 1 still held after work_one: unlock every job once its delete or error update has "
        "committed",
    )
    assert found["lock/release"][0] == "FAIL" and "pg_advisory_unlock(1)" in found["lock/release"][1]
    assert "smoke: testee1 FAILED 3 of 5 steps" in output


def test_a_lock_on_the_wrong_key_is_named_with_the_key_it_should_be(database_url: str, tmp_path: Path) -> None:
    code, output, runs, _ = smoke(tmp_path, database_url, f"{BROKEN} lock-key")
    assert code == 1, output
    found = steps(runs[0])
    assert found["lock/release"] == (
        "FAIL",
        "while job 1 is held the advisory locks are [2]; expected exactly pg_try_advisory_lock(1) on the job_id",
    )


def test_a_testee_that_crashes_on_enqueue_fails_that_step_and_the_rest_still_run(
    database_url: str, tmp_path: Path
) -> None:
    code, output, runs, _ = smoke(tmp_path, database_url, f"{FAKE} crash-on-enqueue")
    assert code == 1, output
    found = steps(runs[0])
    assert found["start"][0] == "ok"
    assert found["enqueue"][0] == "FAIL" and "exited with code 7 while answering enqueue" in found["enqueue"][1]
    assert "about to crash" in found["enqueue"][1]


def test_a_testee_that_cannot_start_is_a_failed_smoke_not_a_pass(database_url: str, tmp_path: Path) -> None:
    code, output, runs, _ = smoke(tmp_path, database_url, f"{FAKE} unavailable")
    assert code == 1, output
    found = steps(runs[0])
    assert found["start"] == ("FAIL", "the testee did not start: no library here")
    assert found["enqueue"] == ("skip", "not run: the testee did not start")
