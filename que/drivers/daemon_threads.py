"""Threads for plain (non-async) handlers of the asyncio API.

A handler that blocks (time.sleep, a slow HTTP call) cannot be stopped, so the asyncio pool
runs plain handlers in threads. concurrent.futures.ThreadPoolExecutor joins its threads when
the interpreter exits: one handler still sleeping after the pool was cut short would then
hold the whole process, long after `que work` decided to exit. These threads are daemon
threads, as the thread pool's workers are: a handler still running at exit dies with the
process, its session ends with it, and its job runs again later (at least once).
"""

import concurrent.futures
import queue
import threading
from collections.abc import Callable
from typing import Any, Final, TypeVar

T = TypeVar("T")

# An idle thread ends after this many seconds; the next handler starts a new one.
IDLE_SECONDS: Final = 30.0

_Item = tuple[concurrent.futures.Future[Any], Callable[..., Any], tuple[Any, ...]]


class DaemonThreads(concurrent.futures.Executor):
    """At most `max_workers` daemon threads running what is submitted, in order."""

    def __init__(self, max_workers: int, name: str = "que-handler") -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self.max_workers = max_workers
        self.name = name
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._idle = 0
        self._shut = False

    @property
    def is_shut_down(self) -> bool:
        return self._shut

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[T]:
        if kwargs:
            raise TypeError("DaemonThreads.submit takes positional arguments only")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._shut:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._queue.put((future, fn, args))
            if self._idle == 0 and len(self._threads) < self.max_workers:
                thread = threading.Thread(target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True)
                self._threads.add(thread)
                thread.start()
            else:
                self._idle = max(0, self._idle - 1)
        return future

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            try:
                item = self._queue.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._threads.discard(me)
                        self._idle = max(0, self._idle - 1)
                        return
                continue
            if item is None:
                with self._lock:
                    self._threads.discard(me)
                return
            future, fn, args = item
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args)
                except BaseException as failure:
                    future.set_exception(failure)
                else:
                    future.set_result(result)
            del future, fn, args, item
            with self._lock:
                self._idle += 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take no more work; the threads end once the work already given is done (their
        handlers are not interrupted). With `wait`, wait for that."""
        with self._lock:
            self._shut = True
            threads = list(self._threads)
            for _ in threads:
                self._queue.put(None)
        if wait:
            for thread in threads:
                thread.join()
