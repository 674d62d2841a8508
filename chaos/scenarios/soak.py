"""A soak: tens of thousands of jobs, some failing a known number of times, some slow, over
every implementation in rounds. Exact error counts, nothing lost, and the Python testee's
memory flat."""

import threading
import time
from pathlib import Path

from chaos.lab import ECHO, FLAKY, SLEEP, Lab, Row, account, attempt
from harness import results


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def run(lab: Lab, names: list[str], jobs: int) -> Row:
    row = Row(f"soak ({jobs} jobs, failures and long jobs)", names)
    lab.reset()
    flaky_every, sleep_every = 12, 50
    lab.sql(
        "INSERT INTO que_jobs (job_class, args) SELECT "
        f"CASE WHEN i %% {flaky_every} = 0 THEN %s WHEN i %% {sleep_every} = 0 THEN %s ELSE %s END, "
        f"CASE WHEN i %% {flaky_every} = 0 THEN json_build_array(1 + i %% 2) "
        f"WHEN i %% {sleep_every} = 0 THEN json_build_array(100) ELSE json_build_array(i) END "
        "FROM generate_series(1, %s) i",
        [FLAKY, SLEEP, ECHO, jobs],
    )
    kinds = dict(lab.sql("SELECT job_id, job_class FROM que_jobs"))
    injected = {int(j): 1 + int(j) % 2 for j, c in kinds.items() if c == FLAKY}
    testees = {name: lab.start(name) for name in names}
    python_pid = testees["python"].pid if "python" in testees else None
    memory: list[int] = []
    stop = threading.Event()

    def make_due() -> None:
        while not stop.wait(0.2):
            lab.sql("UPDATE que_jobs SET run_at = now() WHERE error_count > 0 AND run_at > now()")

    helper = threading.Thread(target=make_due)
    helper.start()
    started = time.monotonic()
    try:
        for _round in range(20):
            threads = [
                threading.Thread(target=lambda t=t: attempt(lambda: t.work(workers=3, deadline_ms=300_000)))
                for t in testees.values()
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            if python_pid:
                memory.append(rss_kb(python_pid))
            if not lab.sql("SELECT 1 FROM que_jobs LIMIT 1"):
                break
            time.sleep(0.25)  # pacing between rounds, not a wait for a condition
    finally:
        stop.set()
        helper.join()
    elapsed = time.monotonic() - started
    account(lab, row, set(int(j) for j in kinds), allowed_duplicates=set())
    counts = dict(lab.sql(f"SELECT job_id, received FROM {results.TABLE} WHERE job_class = %s", [FLAKY]))
    wrong = [j for j, n in injected.items() if counts.get(j) != f"[{n}]"]
    if wrong:
        row.ok = False
        row.notes.append(f"error counts differ from the failures injected for jobs {wrong[:10]}")
    per_impl = dict(lab.sql(f"SELECT impl, count(*) FROM {results.TABLE} GROUP BY impl ORDER BY impl"))
    row.notes.append(f"{elapsed:.1f}s; runs per implementation {per_impl}; {sum(injected.values())} failures injected")
    if memory:
        growth = memory[-1] - memory[0]
        row.notes.append(
            f"python testee RSS {memory[0] // 1024} MiB -> {memory[-1] // 1024} MiB over {len(memory)} rounds"
        )
        if growth > 50 * 1024:
            row.ok = False
            row.notes.append(f"python memory grew by {growth // 1024} MiB")
    return row
