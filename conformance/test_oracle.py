"""Area oracle: whole scenarios through Ruby Que 0.14.3 and through the port, compared.

Hypothesis writes a table of jobs with edge values (queues that differ in case or
whitespace, the ends of priority, run_at a microsecond either side of now(), error counts up
to 999) and a list of steps (enqueue, work, lock and hold, release, crash). The scenario runs
through the oracle and through the port on the same database, one after the other; after
every step the rows, the locks and the claimed job must agree (conformance/oracle.py).

The oracle is the real Ruby Que where the `ruby` row runs; otherwise the catalogue's model,
and the cell says so (its `oracle` property, shown in the report). The `ruby` row is itself
compared with the model.
"""

from typing import Any

import psycopg
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from conformance import oracle
from conformance.checks import check
from conformance.fleet import Fleet, require, require_worker
from harness.lab import reset

ORACLE = "ruby"

rows = st.builds(
    oracle.Job,
    job_class=st.sampled_from(oracle.CLASSES),
    queue=st.sampled_from(oracle.QUEUES),
    priority=st.sampled_from(oracle.PRIORITIES),
    offset_s=st.sampled_from(oracle.OFFSETS_S),
    error_count=st.sampled_from(oracle.ERROR_COUNTS),
)


def _steps(queues: st.SearchStrategy[str]) -> st.SearchStrategy[oracle.Step]:
    work = st.builds(oracle.Step, op=st.just("work"), queue=queues)
    return st.one_of(
        # Work weighs three times as much as each other step: it is where most terms act.
        work,
        work,
        work,
        st.builds(
            oracle.Step,
            op=st.just("enqueue"),
            queue=queues,
            job_class=st.sampled_from(oracle.CLASSES),
            priority=st.sampled_from(oracle.PRIORITIES),
        ),
        st.builds(oracle.Step, op=st.just("lock"), queue=queues),
        st.builds(oracle.Step, op=st.just("release"), index=st.integers(0, 3)),
        st.just(oracle.Step("crash")),
    )


def _one_crash(found: list[oracle.Step]) -> tuple[oracle.Step, ...]:
    """At most one crash a scenario (each one starts the testee again, which takes a while)."""
    crashes = [i for i, s in enumerate(found) if s.op == "crash"]
    return tuple(s for i, s in enumerate(found) if s.op != "crash" or i == (crashes or [-1])[0])


@st.composite
def scenarios(draw: st.DrawFn) -> oracle.Scenario:
    """A table, then steps whose queues are half the time one the table uses (a step on a
    queue with no jobs shows little)."""
    jobs = tuple(draw(st.lists(rows, max_size=6)))
    used = sorted({job.queue for job in jobs})
    queues = (
        st.one_of(st.sampled_from(used), st.sampled_from(oracle.QUEUES)) if used else st.sampled_from(oracle.QUEUES)
    )
    steps = draw(st.lists(_steps(queues), min_size=1, max_size=8))
    return oracle.Scenario(jobs, _one_crash(steps))


@pytest.mark.covers(
    "lock_job.queue",
    "lock_job.due",
    "lock_job.order.priority",
    "lock_job.order.run_at",
    "lock_job.order.job_id",
    "lock_job.lock",
    "set_error.count",
    "set_error.run_at",
    "backoff.formula",
    "backoff.count",
    "work.run_then_destroy",
    "work.unlock_always",
    "insert_job.queue",
    "insert_job.priority",
    "unlock.key",
)
@settings(max_examples=30)
@given(scenario=scenarios())
def test_scenarios_agree_with_the_oracle(
    impl: str, fleet: Fleet, db: psycopg.Connection[Any], scenario: oracle.Scenario, request: pytest.FixtureRequest
) -> None:
    require_worker(fleet.info(impl))
    for capability in sorted(scenario.needs()):
        require(fleet.info(impl), capability, "the scenario locks and holds jobs")
    note(scenario.describe())
    reset(db)
    if impl != ORACLE and ORACLE in fleet.names() and fleet.available(ORACLE):
        used = f"Ruby Que ({fleet.info(ORACLE).version})"
        expected = oracle.run_testee(db, scenario, lambda: fleet.get(ORACLE))
        reset(db)
    else:
        why = "the ruby row itself" if impl == ORACLE else fleet.why_unavailable(ORACLE)
        used = f"the catalogue's model ({why})"
        expected = oracle.Model().run(scenario)
    request.node.user_properties.append(("oracle", used))
    seen = oracle.run_testee(db, scenario, lambda: fleet.get(impl))
    difference = oracle.first_difference(expected, seen)
    if difference is None:
        return
    index, want, got = difference
    where = "the written table" if index == 0 else f"step {index}: {scenario.steps[index - 1].describe()}"
    check(
        False,
        "oracle",
        impl=impl,
        detail=f"after {where}, against {used}\n{scenario.describe()}",
        expected=want,
        seen=got,
    )
