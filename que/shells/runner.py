# This file is generated from que/shells/runner_async.py by tools/async_to_sync.py: do not edit it.
# Edit the asyncio source and run `make generate` (make lint checks that the two agree).
"""Runner: one worker of a locker pool (que.shells.locker), a thread that runs the jobs
its locker hands it and reports each outcome to the locker, which writes it.

Generated from que.shells.runner_async (AsyncRunner).
"""

import functools
import logging
import time
from typing import Self

from que.core import hooks as _hooks
from que.core.handlers import INTERRUPTS, Run
from que.drivers import threads as io
from que.shells.locker import Locker

log = logging.getLogger("que")


class Runner:
    """One worker of a locker pool: runs the jobs its locker hands it, one at a time, and
    reports each outcome to the locker, which writes it. Its `priority` is the highest job
    priority it takes (None: any), as Que 2's worker_priorities."""

    def __init__(
        self,
        locker: Locker,
        handlers: io.Handlers,
        priority: int | None = None,
        max_retries: int | None = None,
    ) -> None:
        self.locker = locker
        self.handlers = handlers
        self.priority = priority
        self.max_retries = locker.max_retries if max_retries is None else max_retries
        self.fatal: BaseException | None = None
        self.jobs_worked = 0
        self.jobs_errored = 0
        self._handle: io.Handle | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self.locker!r}>"

    def is_alive(self) -> bool:
        return self._handle is not None and self._handle.is_alive()

    @property
    def backend_pid(self) -> int | None:
        """The server process whose session holds this worker's jobs: the locker's."""
        return self.locker.backend_pid

    def start(self) -> Self:
        if self.is_alive():
            raise RuntimeError("runner already started")
        self.fatal = None
        self._handle = io.spawn(self._main, f"que-runner-{id(self):x}")
        return self

    def _main(self) -> None:
        try:
            self._work()
        except BaseException as error:
            if self.fatal is None:
                self.fatal = error
                log.exception("runner_died", extra={"event": "runner_died"})

    def _work(self) -> None:
        locker = self.locker
        dialect = locker.dialect
        while True:
            held = locker.take(self.priority)
            if held is None:
                if locker.stopping or not locker.is_alive():
                    return
                continue
            job = held.job
            _hooks.started(job)
            started = time.monotonic()
            run = Run(job, dialect.keeps_rows)
            cut_short = functools.partial(locker.still_running, held, self.priority)
            try:
                failure = self.handlers.call(run, cut_short)
            except INTERRUPTS as stop:
                locker.interrupted(held, self.priority)  # the row is left as Ruby leaves it
                self.fatal = stop
                return
            outcome = dialect.outcome(job, failure, run.asked, self.max_retries)
            _hooks.ended(job, outcome, time.monotonic() - started, failure)
            if failure is None:
                self.jobs_worked += 1
            else:
                self.jobs_errored += 1
            locker.done(held, self.priority, outcome)

    def request_stop(self) -> None:
        self.locker.request_stop()

    def shutdown(self, timeout: float | None = None) -> bool:
        self.request_stop()
        if self._handle is None:
            return True
        return self._handle.join(timeout)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
