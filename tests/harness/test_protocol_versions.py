"""The testee protocol is versioned: testees written from an earlier text keep working.

tests/harness/frozen/ holds testees written at each protocol version and never edited; they
run here against the harness as it is now, so a change that would break them has to bump
the version (harness.protocol.VERSION) and say how the older answers are read. A testee may
also say which dialects it speaks: a Que 2-only port then gets a green run of the dialect it
speaks, and the others are not applicable (tests/harness/que2_only_testee.py)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import protocol, results
from harness.lab import reset
from harness.testee import NotSpoken, Testee
from tests.harness.test_broken_testees import outcomes, run_suite

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FROZEN = sorted((HERE / "frozen").glob("protocol*.py"))
QUE2_ONLY = f"{sys.executable} {HERE / 'que2_only_testee.py'}"


def que_conformance(tmp_path: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "conformance.cli", "--backend", "url", "--database-url", database_url]
    command += ["--results", str(tmp_path), "--no-bootstrap", "--no-build", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)


def test_every_protocol_version_the_harness_accepts_has_a_frozen_testee() -> None:
    frozen = {int(path.name.removeprefix("protocol").split("_")[0]) for path in FROZEN}
    assert frozen == set(protocol.ACCEPTED)
    assert max(protocol.ACCEPTED) == protocol.VERSION


def test_a_version_1_start_is_read_in_todays_terms_with_a_one_line_notice(database_url: str) -> None:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        reset(conn)
    testee = Testee([sys.executable, str(HERE / "frozen" / "protocol1_2026_12_04.py")], label="testee1")
    try:
        info = testee.start(database_url, results.TABLE)
    finally:
        testee.stop()
    assert info.protocol == 1
    assert info.args_encoding == "javascript-json"
    assert len(testee.notices) == 1
    assert "'js-json-stringify' is 'javascript-json' since testee protocol 2" in testee.notices[0]


@pytest.mark.parametrize("frozen", FROZEN, ids=[path.stem for path in FROZEN])
def test_a_frozen_testee_passes_the_smoke_test_of_todays_harness(
    frozen: Path, database_url: str, tmp_path: Path
) -> None:
    done = que_conformance(tmp_path, database_url, "--smoke", "--impl", "none", f"--testee={sys.executable} {frozen}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "smoke: testee1 passed (dialect 0.14)" in done.stdout
    notices = [line for line in done.stderr.splitlines() if "speaks an older testee protocol" in line]
    assert len(notices) == (1 if "protocol1" in frozen.name else 0), done.stderr


def test_the_frozen_version_2_testee_passes_its_cells(database_url: str, tmp_path: Path) -> None:
    status, found, output, _ = run_suite(
        [],
        tmp_path / "results",
        impls="python",
        select="testee1 and (test_enqueue or test_retries)",
        database_url=database_url,
        testees=[f"{sys.executable} {HERE / 'frozen' / 'protocol2_minimal.py'}"],
    )
    assert status == 0, output[-3000:]
    cells = outcomes(found)
    passed = [cell for cell, (outcome, _) in cells.items() if outcome == "passed" and "testee1" in cell]
    assert len(passed) >= 10, json.dumps(sorted(cells), indent=1)
    assert not [cell for cell, (outcome, _) in cells.items() if outcome in ("failed", "stale")]


def test_a_start_in_a_dialect_the_testee_does_not_speak_is_not_applicable(database_url: str) -> None:
    testee = Testee(QUE2_ONLY, label="testee1")
    with pytest.raises(NotSpoken) as raised:
        testee.start(database_url, results.TABLE, dialect="0.14")
    testee.kill()
    assert raised.value.spoken == ["2"]
    assert str(raised.value) == "testee1 speaks the Que dialect 2, not 0.14"


def test_a_que2_only_port_smokes_green_in_every_dialect_asked(database_url: str, tmp_path: Path) -> None:
    done = que_conformance(
        tmp_path, database_url, "--smoke", "--dialect", "all", "--impl", "none", f"--testee={QUE2_ONLY}"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "smoke: testee1 not applicable (dialect 0.14)" in done.stdout
    assert "smoke: testee1 not applicable (dialect 1)" in done.stdout
    assert "smoke: testee1 passed (dialect 2)" in done.stdout
    runs = json.loads((tmp_path / "smoke.json").read_text())
    assert [(run["dialect"], run["passed"], bool(run["not_spoken"])) for run in runs] == [
        ("0.14", True, True),
        ("1", True, True),
        ("2", True, False),
    ]


def test_a_que2_only_port_asked_only_for_a_dialect_it_does_not_speak_is_not_green(
    database_url: str, tmp_path: Path
) -> None:
    done = que_conformance(
        tmp_path, database_url, "--smoke", "--dialect", "0.14", "--impl", "none", f"--testee={QUE2_ONLY}"
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no dialect asked for that the testee speaks" in done.stderr


def test_a_green_que2_only_port_exits_0_from_its_dialects_cells(database_url: str, tmp_path: Path) -> None:
    done = que_conformance(
        tmp_path,
        database_url,
        "--dialect",
        "all",
        "--impl",
        "none",
        f"--testee={QUE2_ONLY}",
        "--",
        "-k",
        "test_que2_enqueue or test_que2_retries or test_enqueue",
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    ran = json.loads((tmp_path / "que2" / "results.json").read_text())
    passed = [c for c in ran["cells"] if c["outcome"] == "passed"]
    assert passed and all(c["outcome"] in ("passed", "not_applicable") for c in ran["cells"]), output[-3000:]
    zero = json.loads((tmp_path / "results.json").read_text())
    assert (
        zero["implementations"]["testee1"]["not_spoken"]
        == "testee1 speaks the Que dialect 2, not 0.14 (its start said so)"
    )
    assert {c["outcome"] for c in zero["cells"]} == {"not_applicable"}
