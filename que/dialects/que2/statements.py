"""The Que 1.x/2.x dialects' statements on the engine (que.engine.session): one table
variant's named statements with their binary parameter types, made from the SQL text of
que.dialects.que2.sql when first needed, so a mutant of that text made before is what runs."""

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any, Final

from que.engine import wire
from que.engine.session import Statement, statement

_INT8: Final = wire.INT8
_ID = [("id", _INT8)]
_IDS = [("ids", wire.INT8_ARRAY)]


class Statements:
    """One table variant's statements on the engine, built once from their SQL text (read
    when first needed, so a mutant of que.dialects.que2.sql made before that is what runs).

    `job_schema_version` is the version its rows carry and its poll asks for (None: a v4
    table, which has no such column); `kwargs` whether the table has the kwargs column."""

    def __init__(self, prefix: str, job_schema_version: int | None, kwargs: bool, texts: Callable[[], Any]) -> None:
        self.prefix = prefix
        self.job_schema_version = job_schema_version
        self.kwargs = kwargs
        self._texts = texts

    def _named(self, name: str, text: str, params: Sequence[tuple[str, int]]) -> Statement:
        return statement(f"{self.prefix}_{name}", text, params)

    @cached_property
    def made(self) -> dict[str, Statement]:
        t = self._texts()
        insert = [("queue", wire.TEXT), ("priority", wire.INT2), ("run_at", wire.TIMESTAMPTZ)]
        insert += [("job_class", wire.TEXT), ("args", wire.TEXT)]
        insert += [("kwargs", wire.TEXT)] if self.kwargs else []
        insert += [("data", wire.TEXT)]
        register = [("worker_count", wire.INT4), ("worker_priorities", wire.INT4_ARRAY), ("process_id", wire.INT4)]
        register += [("hostname", wire.TEXT), ("listening", wire.BOOL), ("queues", wire.TEXT_ARRAY)]
        register += [("job_schema_version", wire.INT4)] if self.job_schema_version is not None else []
        poll = [("queue", wire.TEXT), ("held", wire.INT8_ARRAY), ("ceiling", wire.INT4)]
        poll += [("thresholds", wire.INT4_ARRAY), ("counts", wire.INT4_ARRAY)]
        error = [("delay", wire.FLOAT8), ("message", wire.TEXT), ("backtrace", wire.TEXT), *_ID]
        return {
            "insert_job": self._named("insert_job", t.INSERT_JOB, insert),
            "insert_jobs": self._named("insert_jobs", t.INSERT_JOBS, [("jobs", wire.TEXT)]),
            "skip_notify": statement("", t.SKIP_NOTIFY, []),
            "clean_lockers": statement("", t.CLEAN_LOCKERS, []),
            "register_locker": statement("", t.REGISTER_LOCKER, register),
            "poll_jobs": self._named("poll_jobs", t.POLL_JOBS, poll),
            "lock_notified": self._named("lock_jobs", t.LOCK_NOTIFIED, [*_IDS, ("held", wire.INT8_ARRAY)]),
            "verify_jobs": self._named("verify_jobs", t.VERIFY_JOBS, []),
            "check_job": self._named("check_job", t.CHECK_JOB, _IDS),
            "unlock_jobs": self._named("unlock_jobs", t.UNLOCK_JOBS, _IDS),
            "release_jobs": self._named("release_jobs", t.RELEASE_JOBS, [*_IDS, ("error_counts", wire.INT4_ARRAY)]),
            "destroy_job": self._named("destroy_job", t.DESTROY_JOB, _ID),
            "finish_job": self._named("finish_job", t.FINISH_JOB, _ID),
            "expire_job": self._named("expire_job", t.EXPIRE_JOB, _ID),
            "set_error": self._named("set_error", t.SET_ERROR, error),
            "set_error_uncounted": self._named("set_error_uncounted", t.SET_ERROR_UNCOUNTED, error[1:]),
            "retake_jobs": self._named("retake_jobs", t.RETAKE_JOBS, _IDS),
        }

    def catalog(self) -> list[Statement]:
        return [made for made in self.made.values() if made.name]

    def __getitem__(self, name: str) -> Statement:
        return self.made[name]
