"""The mutants of `make mutate` are real: each one can be made from que as it is, changes
what que does, and leaves que itself alone in every other process."""

import json
import subprocess
import sys
from pathlib import Path

from mutation import mutants as mutation

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = json.loads((ROOT / "fixtures" / "catalogue.json").read_text(encoding="utf-8"))
CATALOGUE2 = json.loads((ROOT / "fixtures" / "catalogue2.json").read_text(encoding="utf-8"))
# ActiveJob's terms are judged by the ActiveJob cells, which run in every dialect.
CATALOGUE_AJ = json.loads((ROOT / "fixtures" / "catalogue_activejob.json").read_text(encoding="utf-8"))


def run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_every_mutant_can_be_made_and_names_a_term_of_its_dialects_catalogue() -> None:
    terms = {
        "0.14": {term["id"] for term in [*CATALOGUE["terms"], *CATALOGUE_AJ["terms"]]},
        "2": {term["id"] for term in CATALOGUE2["terms"]},
    }
    found = mutation.mutants()
    assert len([m for m in found if m.dialect == "0.14"]) > 200
    assert len([m for m in found if m.dialect == "2"]) > 100
    problems = [(m.id, mutation.problem(m)) for m in found if mutation.problem(m)]
    assert problems == []
    assert sorted(m.id for m in found if m.term not in terms[m.dialect]) == []


def test_a_que_2_statement_mutant_changes_the_statement_the_locker_sends() -> None:
    code = (
        "from mutation import mutants; mutants.apply('que2.poll_jobs.due:POLL_JOBS:flip-le-to-lt'); "
        "import que.dialects.que2.sql as s; "
        "print('j.run_at < now()' in s.POLL_JOBS, 'j.run_at <= now()' in s.POLL_JOBS)"
    )
    assert run(code) == "True False"


def test_every_equivalent_listed_is_the_mutant_it_was_judged_as_with_a_reason() -> None:
    assert mutation.equivalent_problems() == []
    for mutant_id, listed in mutation.equivalents().items():
        assert listed.kind in mutation.KINDS, mutant_id
        assert len(listed.reason.split()) >= 5, f"{mutant_id}: the reason must say why no cell can tell it apart"


def test_a_statement_mutant_changes_the_statement_que_sends() -> None:
    code = (
        "from mutation import mutants; mutants.apply('lock_job.due:CLAIM_JOBS:flip-le-to-lt'); "
        "import que.dialects.que0.statements as p; text = p.CLAIM_JOBS.text; "
        "print(b'run_at < now()' in text, b'run_at <= now()' in text)"
    )
    assert run(code) == "True False"


def test_a_function_mutant_changes_the_value_que_computes_everywhere_it_is_used() -> None:
    [mutant] = [m for m in mutation.mutants() if m.term == "backoff.formula" and "Pow" in m.description][:1]
    code = (
        f"from mutation import mutants; mutants.apply({mutant.id!r}); "
        "import que.core.retry, que.dialects.que0.finishes as p; "
        "print(que.core.retry.retry_delay(2), p.retry_delay(2))"
    )
    changed = run(code).split()
    assert changed[0] == changed[1] != "19", (mutant.description, changed)
    assert run("import que.core.retry; print(que.core.retry.retry_delay(2))") == "19"
