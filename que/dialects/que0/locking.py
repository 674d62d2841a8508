"""A Que 0.x locker's round trip: the books' plan (que.engine.books) as Que 0.14's statements.

One session claims and holds the jobs of all the pool's workers. Ruby and Go workers on the
same table see what they always see: one `pg_try_advisory_lock(job_id)` per job, taken in
Que's walk order, check_job in a new snapshot, the delete or error committed before the
unlock, by the whole key (protocol.claim):

    finish(each finished job) | SYNC | unlock(untouched) | SYNC |
    release(finished) + claim(places), check [+ check(waiting)] | SYNC
"""

from collections.abc import Sequence

from que.dialects.que0 import protocol, statements
from que.dialects.que0.finishes import Finish
from que.engine import wire
from que.engine.rounds import Held, Round, Settled
from que.engine.session import PQGen, Session, execute


def _retake(session: Session, ids: Sequence[int]) -> PQGen[set[int]]:
    """Lock again the jobs whose locks died with an earlier session; those now held."""
    result = yield from execute(session, (statements.RETAKE_JOBS, (wire.int8_array(ids),)))
    return {wire.read_int(result.get_value(row, 0) or b"") for row in range(result.ntuples)}


def round_trip(session: Session, queue: str, planned: Round, max_retries: int | None) -> PQGen[Settled]:
    settled = Settled()
    finished = list(planned.finished)
    retaking = [h.job_id for h in planned.relock] + [o.held.job_id for o in planned.orphans]
    if retaking:
        taken = yield from _retake(session, retaking)
        settled.relocked = {job_id for job_id in retaking if job_id in taken}
        finished += [o for o in planned.orphans if o.held.job_id in taken]
    if not (finished or planned.abandoned or planned.want or planned.recheck):
        return settled
    still_there: set[int] = set()
    claimed: list[Held] = yield from protocol.claim(
        session,
        queue,
        planned.want,
        done=[Finish.of(f, max_retries) for f in finished],
        skip=planned.skip,
        untouched=planned.abandoned,
        recheck=planned.recheck,
        still_there=still_there,
        checked_at=planned.started,
    )
    settled.written = finished
    settled.locked = claimed
    settled.still_there = still_there
    return settled
