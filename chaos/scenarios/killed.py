"""A worker process killed with SIGKILL mid-job: its locks end with its sessions, another
implementation finishes the queue, and only the jobs in flight may run twice."""

import threading
from typing import Any

from chaos.lab import SLEEP, Lab, Row, account, attempt, timed
from harness.lab import advisory_locks, wait_until


def run(lab: Lab, name: str, rescuer: str) -> Row:
    row = Row(f"worker killed mid-job ({name})", [name, rescuer])
    lab.reset()
    job_ids = lab.fill(300, SLEEP, "json_build_array(20)")
    victim = lab.start(name)
    box: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: box.update(r=attempt(lambda: victim.work(workers=2, deadline_ms=60_000))))
    thread.start()
    wait_until(lambda: len(lab.runs()) >= 40, 30, "40 jobs done before the kill")
    with lab.conn() as conn:
        in_flight = {lock.key for lock in advisory_locks(conn)}
    victim.kill()
    thread.join(30)
    row.recovery_s = timed(lambda: lab.locks() == 0, 30, "the killed worker's locks to go")
    row.notes.append(
        f"killed {name} (pid {victim.pid}) holding {len(in_flight)} job locks; locks gone after {row.recovery_s}s"
    )
    other = lab.start(rescuer)
    other.work(workers=2, deadline_ms=60_000)
    other.stop()
    account(lab, row, job_ids, allowed_duplicates=in_flight)
    return row
