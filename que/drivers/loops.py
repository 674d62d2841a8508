"""Which event loop a program of its own (`que work --async`) runs the asyncio pool on.

An application that already runs a loop keeps it: AsyncWorkerPool runs on whatever loop
it is started from. Only a process que starts itself picks one, and it picks the way
uvicorn does: uvloop when it is installed (`pip install que-interop[uvloop]`), else the
standard library's loop. uvloop's loop is written in C; every wake-up of a worker costs
less there, and those wake-ups are most of what the asyncio pool adds to a job.
"""

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeVar

T = TypeVar("T")

LOOPS: Final = ("auto", "asyncio", "uvloop")


def _uvloop() -> Any:
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return uvloop


def loop_name(loop: str = "auto") -> str:
    """The loop `loop` stands for here, with its version: "uvloop 0.21.0" or "asyncio"."""
    if loop not in LOOPS:
        raise ValueError(f"loop must be one of {', '.join(LOOPS)}, got {loop!r}")
    found = _uvloop() if loop != "asyncio" else None
    if found is not None:
        return f"uvloop {found.__version__}"
    if loop == "uvloop":
        raise RuntimeError(
            "loop 'uvloop' asked for, but uvloop is not installed: pip install 'que-interop[uvloop]' "
            "(or use loop 'auto', which falls back to asyncio's own loop)"
        )
    return "asyncio"


def loop_factory(loop: str = "auto") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """For asyncio.Runner(loop_factory=...): uvloop's new_event_loop, or None for asyncio's."""
    if loop_name(loop).startswith("uvloop"):
        return _uvloop().new_event_loop  # type: ignore[no-any-return]
    return None


def run(main: Coroutine[Any, Any, T], *, loop: str = "auto") -> T:
    """Run `main` to its end on a new event loop: uvloop's when `loop` is "uvloop", or
    "auto" and uvloop is installed; the standard library's otherwise."""
    try:
        factory = loop_factory(loop)
    except BaseException:
        main.close()
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
