"""The suite catches broken ports, names the rule, and keeps cells apart.

The Python testee with one rule broken (`--break RULE`, testees/python/broken.py) joins a
run as an outside testee (testee1) beside the correct implementations. The cells of
testee1 that check the rule must fail naming it; no cell testee1 takes no part in may fail.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BROKEN = f"{sys.executable} -m testees.python.threads --break"


def run_suite(
    rules: list[str],
    tmp_path: Path,
    *,
    impls: str = "python",
    select: str | None = None,
    backend: str = "url",
    database_url: str | None = None,
    testees: list[str] | None = None,
) -> tuple[int, dict[str, Any], str, float]:
    env = {**os.environ}
    if database_url:
        env["QUE_DATABASE_URL"] = database_url
    else:
        env.pop("QUE_DATABASE_URL", None)
        env.pop("DATABASE_URL", None)
    command = [
        sys.executable,
        "-m",
        "conformance.cli",
        "--impl",
        impls,
        "--no-bootstrap",
        "--no-build",
        "--backend",
        backend,
        "--results",
        str(tmp_path),
        *(f"--testee={BROKEN} {rule}" for rule in rules),
        *(f"--testee={command}" for command in testees or []),
        "--",
        "-q",
    ]
    if select:
        command += ["-k", select]
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    elapsed = time.monotonic() - started
    results = json.loads((tmp_path / "results.json").read_text())
    return done.returncode, results, done.stdout + done.stderr, elapsed


def outcomes(results: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["cell"]: (c["outcome"], c["message"]) for c in results["cells"]}


def check_apart(results: dict[str, Any], broken: set[str]) -> None:
    """No cell without a broken port failed."""
    bystanders = [
        (c["cell"], c["message"][:300])
        for c in results["cells"]
        if not broken & set(c["impls"]) and c["outcome"] in ("failed", "stale")
    ]
    assert bystanders == [], f"cells the broken port takes no part in failed: {bystanders}"


# rule broken -> (cells selected with -k, cells that must fail, the rule id they must name, or
# the ids one of which each must name)
CASES = {
    "backoff": ("test_retries and testee1", ["test_high_error_counts_keep_the_schedule[testee1-9]"], "retry-schedule"),
    "ordering": ("test_ordering and testee1", ["test_fixture_scenarios[testee1]"], "lock-order"),
    "arguments": (
        "test_cross_language and testee1",
        ["test_enqueued_by_x_worked_by_y[testee1->python]"],
        "cross-worked",
    ),
    "lock-key": ("test_locking and testee1", ["test_lock_is_the_job_ids_bigint_key[testee1]"], "lock-key"),
    "client-clock": (
        "test_clock and testee1",
        [
            "test_due_is_the_servers_judgement[testee1]",
            "test_default_run_at_is_the_servers_now[testee1]",
            "test_retry_time_is_the_servers_now_plus_the_delay[testee1]",
        ],
        "clock-",
    ),
    "local-wall-time": (
        "test_timezones and testee1",
        ["test_run_at_with_any_offset_is_the_same_instant[testee1-2031-06-15T12:34:56.789012+05:45]"],
        "tz-run-at",
    ),
    "job-id-key": (
        "test_job_key and testee1",
        [
            "test_finishing_a_job_leaves_rows_sharing_its_job_id[testee1-delete]",
            "test_finishing_a_job_leaves_rows_sharing_its_job_id[testee1-error]",
        ],
        "whole-key",
    ),
    "last-error": ("test_last_error and testee1", ["test_last_error_shape[testee1-long]"], "last-error"),
    "delete-first": (
        "test_delivery and testee1 and dies",
        ["test_a_job_whose_worker_dies_mid_job_stays_and_runs_again[testee1]"],
        "at-least-once",
    ),
    "rewrite-args-on-error": (
        "test_retries and testee1",
        ["test_a_failure_changes_only_error_count_run_at_and_last_error[testee1]"],
        "retry-schedule",
    ),
    "retry-from-run-at": (
        "(test_retries or test_oracle) and testee1",
        ["test_an_overdue_job_is_retried_from_now[testee1]", "test_scenarios_agree_with_the_oracle[testee1]"],
        ("retry-schedule", "oracle"),
    ),
    "pool-size": ("test_pool and testee1", ["test_a_pool_of_n_works_n_jobs_at_once[testee1]"], "pool-size"),
    "unlock-before-finish": (
        "test_finish_commits and testee1",
        [
            "test_finish_commits_before_the_unlock[testee1-delete]",
            "test_finish_commits_before_the_unlock[testee1-error]",
        ],
        "delete-before-unlock",
    ),
}


def test_every_break_applies_to_todays_engine() -> None:
    """Each break patches a statement or function by name; when que moves one, the break must
    say so at once (a testee that cannot start only shows up as unavailable cells)."""
    from testees.python import broken

    script = "import sys; from testees.python import broken; broken.apply(sys.argv[1])"
    env = {**os.environ, broken.HANG_ONCE_FILE: "/nonexistent/marker"}
    failed = {}
    for rule in broken.BREAKS:
        done = subprocess.run([sys.executable, "-c", script, rule], cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            failed[rule] = done.stderr.strip().splitlines()[-1:]
    assert failed == {}


@pytest.mark.parametrize("rule", list(CASES))
def test_a_broken_rule_fails_its_cells_naming_it(rule: str, database_url: str, tmp_path: Path) -> None:
    select, must_fail, rule_id = CASES[rule]
    # The clock area needs a server whose clock the harness can shift: its own local cluster.
    backend = "local" if rule == "client-clock" else "url"
    code, results, output, _ = run_suite(
        [rule], tmp_path, select=select, backend=backend, database_url=None if backend == "local" else database_url
    )
    assert code == 1, output[-3000:]
    found = outcomes(results)
    for cell in must_fail:
        full = next((name for name in found if name.endswith(cell)), None)
        assert full is not None, f"{cell} did not run: {sorted(found)}"
        outcome, message = found[full]
        assert outcome == "failed", f"{cell} was {outcome} for a port that breaks {rule}"
        named = rule_id if isinstance(rule_id, tuple) else (rule_id,)
        assert any(f"rule {r}" in message for r in named), (
            f"{cell} failed without naming rule {rule_id}: {message[:500]}"
        )
    check_apart(results, {"testee1"})


# Every area with four rows takes 2-3 minutes here; pytest-timeout only guards against a hang.
@pytest.mark.timeout(600)
def test_ports_that_mishandle_locks_fail_only_their_own_cells(database_url: str, tmp_path: Path) -> None:
    """Every area runs with two broken ports at once: testee1 unlocks on another connection,
    testee2 unlocks before its delete commits. Python and Go cells stay green; each broken
    port fails the cells that touch its rule, and a lock left behind is named with the job,
    the port and the request."""
    code, results, output, _ = run_suite(
        ["unlock-elsewhere", "unlock-before-finish"], tmp_path, impls="python,go", database_url=database_url
    )
    assert code == 1, output[-3000:]
    check_apart(results, {"testee1", "testee2"})
    found = outcomes(results)
    must_fail = [
        "test_no_lock_survives_work[testee1-3]",
        "test_lock_is_the_job_ids_bigint_key[testee1]",
        "test_finish_commits_before_the_unlock[testee2-delete]",
        "test_finish_commits_before_the_unlock[testee2-error]",
    ]
    for cell in must_fail:
        outcome, message = next(value for name, value in found.items() if name.endswith(cell))
        assert outcome == "failed", f"{cell} was {outcome}: {message[:300]}"
    held = [m for outcome, m in found.values() if "advisory lock still held by testee1 after work_one" in m]
    assert held, "no cell named the lock testee1 kept"


@pytest.mark.timeout(600)
def test_a_full_run_against_a_port_that_never_unlocks_leaves_no_cell_waiting(tmp_path: Path) -> None:
    """Default settings, its own throwaway cluster: each lock left behind fails its cell and
    is cleaned up, so no later cell waits on it (a cell that waited would end at an op's
    deadline, 'gave no response'), and no other implementation's cell fails."""
    code, results, output, _ = run_suite(["never-unlock"], tmp_path, impls="python,go,gue,ruby", backend="local")
    assert code == 1, output[-3000:]
    check_apart(results, {"testee1"})
    found = outcomes(results)
    outcome, message = next(
        value for name, value in found.items() if name.endswith("test_no_lock_survives_work[testee1-3]")
    )
    assert outcome == "failed" and "advisory lock still held by testee1 after work_one" in message, message[:500]
    waited = [name for name, (_, text) in found.items() if "gave no response" in (text or "")]
    assert waited == [], waited


def test_a_testee_that_misses_a_deadline_fails_one_cell_and_the_next_gets_a_fresh_one(
    database_url: str, tmp_path: Path
) -> None:
    """The port hangs in the first failed-before job it holds: the harness kills it at the
    op's deadline (not pytest's limit, far above), that cell fails naming the row and the op, and every later
    cell of the port runs on a testee started again."""
    os.environ["QUE_BROKEN_HANG_ONCE"] = str(tmp_path / "hung")
    try:
        code, results, output, _ = run_suite(
            ["hang-once"], tmp_path, select="test_retries and testee1", database_url=database_url
        )
    finally:
        del os.environ["QUE_BROKEN_HANG_ONCE"]
    assert code == 1, output[-3000:]
    failed = [(c["cell"], c["message"]) for c in results["cells"] if c["outcome"] in ("failed", "stale")]
    assert len(failed) == 1, failed
    assert "testee1 gave no response to work_one within 30s; killed it" in failed[0][1], failed[0]
    passed = [c["cell"] for c in results["cells"] if c["outcome"] == "passed" and "testee1" in c["impls"]]
    assert len(passed) >= 5, passed


def test_three_runs_of_one_port_give_the_same_verdicts(database_url: str, tmp_path: Path) -> None:
    """Verdicts do not depend on timing: a broken port's cells, run three times, pass and
    fail the same way each time, the timing-sensitive areas (defaults, clock reads, due
    jobs, ordering to the microsecond) included."""
    select = "testee1 and (test_enqueue or test_ordering or test_retries or test_oracle or test_locking)"
    verdicts = []
    for run in range(3):
        folder = tmp_path / f"run{run}"
        _, results, _, _ = run_suite(["retry-from-run-at"], folder, select=select, database_url=database_url)
        verdicts.append({c["cell"]: c["outcome"] for c in results["cells"]})
    assert verdicts[0], "no cells ran"
    assert "failed" in verdicts[0].values() and "passed" in verdicts[0].values(), verdicts[0]
    for other in verdicts[1:]:
        changed = {cell: (verdicts[0].get(cell), other.get(cell)) for cell in verdicts[0].keys() | other.keys()}
        assert {c: v for c, v in changed.items() if v[0] != v[1]} == {}
