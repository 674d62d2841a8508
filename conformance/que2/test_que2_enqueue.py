"""Area 2.x enqueue: Ruby Que 2's defaults, and the table's limits refused whole."""

from datetime import datetime
from typing import Any

import psycopg
import pytest

from conformance.checks import check, check_equal
from conformance.fleet import Fleet, require
from conformance.que2.witness import HAS_KWARGS, VERSION, jobs
from conformance.support import ECHO
from harness.testee import TesteeError


@pytest.mark.covers("que2.insert_job.version", "que2.insert_job.run_at")
def test_defaults(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    before = db.execute("SELECT now()").fetchone()
    job_id = fleet.get(impl).enqueue(ECHO)
    [row] = jobs(db)
    if job_id is not None:
        check_equal(job_id, row["id"], "que2-enqueue-defaults", impl=impl, detail="the id returned")
    seen = (row["queue"], row["priority"], row["args"], row["kwargs"], row["data"], row["job_schema_version"])
    kwargs = "{}" if HAS_KWARGS else None
    check_equal(seen, ("default", 100, "[]", kwargs, "{}", VERSION), "que2-enqueue-defaults", impl=impl)
    check_equal((row["error_count"], row["finished_at"], row["expired_at"]), (0, None, None), "que2-enqueue-defaults")
    assert before is not None
    check(before[0] <= row["run_at"], "que2-enqueue-defaults", impl=impl, detail="run_at is now()")


def _refused(testee: Any, **options: Any) -> bool:
    try:
        testee.enqueue(ECHO, **options)
    except TesteeError:
        return True
    return False


def test_tags_past_the_tables_limits_are_refused_and_nothing_is_written(
    impl: str, fleet: Fleet, db: psycopg.Connection[Any]
) -> None:
    """valid_data allows 5 tags, each at most 100 characters as jsonb writes it (quotes
    included): a tag of 99 plain characters is refused, as Ruby Que 2.4.1's is."""
    testee = fleet.get(impl)
    check(_refused(testee, tags=list("abcdef")), "que2-enqueue-constraints", impl=impl, detail="6 tags accepted")
    check(_refused(testee, tags=["a" * 99]), "que2-enqueue-constraints", impl=impl, detail="a 99-character tag")
    check_equal(jobs(db), [], "que2-enqueue-constraints", impl=impl, detail="rows written")
    testee.enqueue(ECHO, tags=["a" * 98] * 5)
    tags = '{"tags": [' + ", ".join(['"' + "a" * 98 + '"'] * 5) + "]}"
    check_equal([r["data"] for r in jobs(db)], [tags], "que2-enqueue-constraints", impl=impl, detail="5 tags of 98")


# Instants a port's time library may round: the sixth fractional digit, the last and first
# microsecond of a second, and an offset far from UTC.
RUN_ATS = ["2031-06-15T12:34:56.123456Z", "2031-03-30T00:59:59.999999Z", "2031-06-15T12:34:56.000001-03:30"]


@pytest.mark.covers("que2.insert_job.run_at")
@pytest.mark.parametrize("run_at", RUN_ATS)
def test_run_at_is_stored_to_the_microsecond(impl: str, run_at: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    info = fleet.info(impl)
    require(info, "enqueue_run_at")
    fleet.get(impl).enqueue(ECHO, run_at=run_at)
    [row] = jobs(db)
    wanted = datetime.fromisoformat(run_at.replace("Z", "+00:00"))
    check_equal(row["run_at"], wanted, "que2-enqueue-defaults", impl=impl, detail=f"run_at given as {run_at}")
