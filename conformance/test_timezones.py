"""Area time zones: testees run with a non-UTC local zone (TZ, see conformance.fleet) and
every session's TimeZone is not UTC (ALTER DATABASE, see conftest). run_at given with odd
offsets and around daylight-saving changes is stored as the same instant, exact to the
microsecond, and jobs at such instants are deleted and failed by their exact key."""

from datetime import datetime
from typing import Any

import psycopg
import pytest

from conformance.checks import check_equal
from conformance.fleet import Fleet, require
from conformance.support import ECHO, FAIL, jobs

INSTANTS = [
    "2031-06-15T12:34:56.789012+05:45",
    "2031-06-15T12:34:56.000001-03:30",
    "2031-06-15T12:34:56.123456+14:00",
    "2031-03-30T00:59:59.999999Z",  # a microsecond before Europe's spring change (01:00 UTC)
    "2031-03-30T01:00:00.000001Z",
    "2031-11-02T01:30:00.250000-02:30",  # the hour St. John's repeats in autumn, summer time
    "2031-11-02T01:30:00.250000-03:30",  # ... and standard time: an hour later
]


def require_non_utc(pg: Any) -> None:
    reason = pg.notes.get("timezone")
    if reason:
        pytest.skip(f"not applicable: the sessions' TimeZone could not be set away from UTC: {reason}")


@pytest.mark.covers("insert_job.run_at")
@pytest.mark.parametrize("when", INSTANTS)
def test_run_at_with_any_offset_is_the_same_instant(
    impl: str, when: str, fleet: Fleet, db: psycopg.Connection[Any], pg: Any
) -> None:
    require_non_utc(pg)
    require(fleet.info(impl), "enqueue_run_at")
    fleet.get(impl).enqueue(ECHO, run_at=when)
    expected = datetime.fromisoformat(when.replace("Z", "+00:00"))
    check_equal([j["run_at"] for j in jobs(db)], [expected], "tz-run-at", impl=impl, detail=f"given {when}")


@pytest.mark.covers("args.time", "destroy_job.run_at", "set_error.key_run_at")
@pytest.mark.parametrize("job_class", [ECHO, FAIL], ids=["delete", "error"])
@pytest.mark.parametrize("when", [INSTANTS[0], INSTANTS[5], INSTANTS[6]])
def test_jobs_at_odd_instants_are_finished_by_their_key(
    impl: str, when: str, job_class: str, fleet: Fleet, db: psycopg.Connection[Any], pg: Any
) -> None:
    require_non_utc(pg)
    past = when.replace("2031", "2001")
    row = db.execute(
        "INSERT INTO que_jobs (job_class, args, run_at) VALUES (%s, '[\"x\"]', %s) RETURNING job_id",
        [job_class, datetime.fromisoformat(past)],
    ).fetchone()
    job_id = row[0] if row else None
    check_equal(fleet.get(impl).work_one()["worked"], True, "tz-key", impl=impl, job=job_id, detail="work_one")
    left = [(j["job_id"], j["error_count"]) for j in jobs(db)]
    expected = [] if job_class == ECHO else [(job_id, 1)]
    check_equal(
        left, expected, "tz-key", impl=impl, job=job_id, detail=f"run_at {past}: rows left (job_id, error_count)"
    )
