"""What one round trip costs each way que waits for the server, measured apart from jobs.

A worker's job is a chain: the server's work, then the client's. At one worker nothing
overlaps, so whatever a wait adds to a round trip is added to every job. This part runs a
prepared `SELECT 1` through que's own session code (que.engine.session) and each driver que
has: select() in a thread (que.Worker), and the event loop (que.aio) on asyncio's loop
and on uvloop's. Wall and CPU time per round trip, median of the runs; the differences
are what the asyncio worker pays per wake-up on this machine.
"""

import resource
import time
from typing import Any

import psycopg

from que import aio
from que.dialects.que0.statements import catalog as que0_catalog
from que.drivers.aio import Channel
from que.drivers.threads import run as wait
from que.engine.session import Session, Statement, execute

# Made directly, not with que.engine.session.statement(), which would add it to the statements
# every que session in this process prepares: it is prepared on first use here.
SELECT_ONE = Statement(b"que_bench_select_one", b"SELECT 1", ())


def _thread_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime + usage.ru_stime


def _select(url: str, count: int) -> tuple[float, float]:
    with psycopg.connect(url, autocommit=True) as conn:
        session, fileno = Session(conn.pgconn, que0_catalog()), conn.pgconn.socket
        wait(execute(session, (SELECT_ONE, ())), fileno)  # prepares it (and que's own statements) once
        cpu, begun = _thread_cpu(), time.perf_counter()
        for _ in range(count):
            wait(execute(session, (SELECT_ONE, ())), fileno)
        return time.perf_counter() - begun, _thread_cpu() - cpu


async def _loop(url: str, count: int) -> tuple[float, float]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        session = Session(conn.pgconn, que0_catalog())
        channel = Channel(conn.pgconn.socket)
        channel.attach(conn.pgconn.consume_input)
        try:
            await channel.run(execute(session, (SELECT_ONE, ())))
            cpu, begun = _thread_cpu(), time.perf_counter()
            for _ in range(count):
                await channel.run(execute(session, (SELECT_ONE, ())))
            return time.perf_counter() - begun, _thread_cpu() - cpu
        finally:
            channel.close()


def measure(url: str, count: int, runs: int) -> dict[str, Any]:
    """{driver: {"wall_us": median, "cpu_us": median, "runs": [...]}} per round trip; needs
    que's schema (every named statement is prepared on first use)."""
    drivers: dict[str, Any] = {"select() in a thread": lambda: _select(url, count)}
    drivers["asyncio loop"] = lambda: aio.run(_loop(url, count), loop="asyncio")
    try:
        name = aio.loop_name("uvloop")
    except RuntimeError:
        pass  # not installed: that row is left out
    else:
        drivers[f"{name} loop"] = lambda: aio.run(_loop(url, count), loop="uvloop")
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in drivers}
    for _ in range(runs):  # interleaved, so a noisy moment hits every driver alike
        for name, once in drivers.items():
            samples[name].append(once())
    report = {}
    for name, measured in samples.items():
        walls = sorted(wall / count * 1e6 for wall, _ in measured)
        cpus = sorted(cpu / count * 1e6 for _, cpu in measured)
        report[name] = {
            "wall_us": round(walls[len(walls) // 2], 1),
            "cpu_us": round(cpus[len(cpus) // 2], 1),
            "runs": len(measured),
        }
    return report
