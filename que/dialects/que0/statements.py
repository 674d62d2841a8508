"""The Que 0.x worker's prepared statements on the engine (que.engine.session), made from
que.dialects.que0.sql: their names and binary parameter types, and the catalogue a session
prepares in one round trip. que.dialects.que0.protocol reads them as attributes of this
module at each call, so `make mutate` can put a mutant in place of one."""

from typing import Final

from que.dialects.que0 import sql
from que.engine.session import Statement, statement
from que.engine.wire import BOOL, INT2, INT4, INT8, TEXT, TIMESTAMPTZ

_KEY = (("queue", TEXT), ("priority", INT2), ("run_at", TIMESTAMPTZ), ("job_id", INT8))
_ARRAYS = [("queues", 1009), ("priorities", 1005), ("run_ats", 1185), ("job_ids", 1016)]
_CLAIM_PARAMS = [*_ARRAYS, ("queue", TEXT), ("count", INT4), ("skip", 1016)]
CLAIM_JOBS: Final = statement("que_interop_claim_jobs", sql.CLAIM_JOBS, _CLAIM_PARAMS)
CLAIM_JOBS_AVOIDING: Final = statement("que_interop_claim_jobs_avoiding", sql.CLAIM_JOBS_AVOIDING, _CLAIM_PARAMS)

CHECK_CLAIMED: Final = statement("que_interop_check_claimed", sql.CHECK_CLAIMED, [])
RELEASE_JOBS: Final = statement("que_interop_release_jobs", sql.RELEASE_JOBS, _ARRAYS)
CHECK_JOB: Final = statement("que_check_job", sql.CHECK_JOB, _KEY)
DESTROY_JOB: Final = statement("que_destroy_job", sql.DESTROY_JOB, _KEY)
SET_ERROR: Final = statement("que_set_error", sql.SET_ERROR, [("delay", INT8), ("message", TEXT), *_KEY])
SET_ERROR_DEAD: Final = statement("que_interop_set_error_dead", sql.SET_ERROR_DEAD, [("message", TEXT), *_KEY])
SET_ERROR_UNCOUNTED: Final = statement(
    "que_interop_set_error_uncounted", sql.SET_ERROR_UNCOUNTED, [("dead", BOOL), ("message", TEXT), *_KEY]
)
UNLOCK_JOB: Final = statement("que_unlock_job", sql.UNLOCK_JOB, [("job_id", INT8)])
UNLOCK_JOBS: Final = statement("que_interop_unlock_jobs", sql.UNLOCK_JOBS, [("job_ids", 1016)])
RETAKE_JOBS: Final = statement("que_interop_retake_jobs", sql.RETAKE_JOBS, [("job_ids", 1016)])
CHECK_HELD: Final = statement("que_interop_check_held", sql.CHECK_HELD, _ARRAYS)


def catalog() -> list[Statement]:
    """The named statements of this module as they are now (a mutant replaces one), which a
    session prepares together in one round trip."""
    return [
        CLAIM_JOBS,
        CLAIM_JOBS_AVOIDING,
        CHECK_CLAIMED,
        RELEASE_JOBS,
        CHECK_JOB,
        DESTROY_JOB,
        SET_ERROR,
        SET_ERROR_DEAD,
        SET_ERROR_UNCOUNTED,
        UNLOCK_JOB,
        UNLOCK_JOBS,
        RETAKE_JOBS,
        CHECK_HELD,
    ]
