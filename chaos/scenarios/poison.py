"""Poison jobs among good ones: handlers that raise unprintable exceptions, BaseExceptions
(CancelledError, GeneratorExit, custom ones), rows with a negative error_count or NULLs a
hand-altered table allows. Every good job is done, every poison job is recorded or backed
off, the pool stays alive and no lock is left."""

import asyncio
from collections.abc import Callable

import que
from chaos import pools
from chaos.lab import Lab, Row
from harness.lab import wait_until

GOOD = 2000


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("cannot print")


class Custom(BaseException):
    pass


POISONS: dict[str, BaseException] = {
    "Unprintable": Unprintable(),
    "Cancelled": asyncio.CancelledError(),
    "GeneratorExit": GeneratorExit(),
    "CustomBase": Custom("base"),
}


def _raiser(error: BaseException) -> Callable[..., None]:
    def handler(*args: object) -> None:
        raise error

    return handler


def run(lab: Lab, kind: str = "threads") -> Row:
    row = Row(f"poison jobs among good ones ({kind} pool)", ["python" if kind == "threads" else "python-async"])
    lab.reset()
    lab.sql("ALTER TABLE que_jobs ALTER COLUMN args DROP NOT NULL")
    try:
        return _run(lab, row, kind)
    finally:
        lab.sql("DELETE FROM que_jobs")
        lab.sql("ALTER TABLE que_jobs ALTER COLUMN args SET NOT NULL")


def _run(lab: Lab, row: Row, kind: str) -> Row:
    lab.sql(
        "INSERT INTO que_jobs (job_class, args) SELECT CASE WHEN i %% 50 = 0 "
        "THEN (ARRAY[%s, %s, %s, %s])[1 + i / 50 %% 4] ELSE 'Good' END, json_build_array(i) "
        "FROM generate_series(1, %s) AS i",
        [*POISONS, GOOD + GOOD // 49],
    )
    lab.sql("INSERT INTO que_jobs (job_class, error_count) SELECT 'Good', -1 FROM generate_series(1, 5)")
    lab.sql("INSERT INTO que_jobs (job_class, args) SELECT 'Good', NULL FROM generate_series(1, 5)")
    good = {int(r[0]) for r in lab.sql("SELECT job_id FROM que_jobs WHERE job_class = 'Good' AND args IS NOT NULL")}
    poison = {int(r[0]) for r in lab.sql("SELECT job_id FROM que_jobs")} - good
    done: list[int] = []
    handlers = {"Good": lambda *a: done.append(que.current_job().job_id), **{k: _raiser(v) for k, v in POISONS.items()}}
    with que.Client(lab.url) as client:
        pool = pools.start(kind, lab.url, client, handlers, 4, wake_interval=0.05)
        try:
            wait_until(lambda: set(done) >= good, 120, "every good job")
            wait_until(
                lambda: not lab.sql("SELECT 1 FROM que_jobs WHERE run_at <= now() AND error_count <= 0"),
                30,
                "every poison job recorded or backed off",
            )
            alive = all(w.is_alive() for w in pool.workers)
        finally:
            pool.shutdown(10)
    recorded = lab.sql("SELECT job_id, error_count, run_at > now(), last_error IS NOT NULL FROM que_jobs")
    backed_off = {int(j) for j, _, future, noted in recorded if future and noted}
    row.jobs = len(good) + len(poison)
    row.completed = len(good & set(done)) + len(poison & backed_off)
    row.duplicates = len(done) - len(set(done))
    row.lost = len(good - set(done)) + len(poison - backed_off)
    row.locks_left = lab.locks()
    row.notes.append(
        f"{len(good)} good jobs done, {len(poison & backed_off)}/{len(poison)} poison jobs recorded and backed off "
        f"({', '.join(POISONS)}, error_count -1, NULL args); all 4 workers alive: {alive}"
    )
    row.ok = alive and row.lost == 0 and row.duplicates == 0 and row.locks_left == 0
    return row
