"""Lock hygiene: an application's advisory lock on a job's key blocks the job (job_stats
shows it working), a row changed while locked is run by nobody else meanwhile, and no code
path leaves a job lock on a pooled connection, whatever fails."""

import contextlib

import psycopg

import que
from chaos.lab import Lab, Row


def run(lab: Lab, names: list[str]) -> Row:
    row = Row("lock hygiene", ["python", *[n for n in names if n != "python"]])
    lab.reset()
    notes = row.notes
    checks = []
    with que.Client(lab.url) as client, lab.conn() as app:
        # a. an application advisory lock on the same key blocks the job, job_stats shows it
        blocked = client.enqueue("Echo").job_id
        app.execute("SELECT pg_advisory_lock(%s)", [blocked])
        stats = {s["job_class"]: s for s in client.job_stats()}
        ran: list[int] = []
        worker = que.Worker(client, {"Echo": lambda *a: ran.append(que.current_job().job_id)})
        worker.work_one()
        checks.append(blocked not in ran and stats["Echo"]["count_working"] == 1)
        notes.append(
            f"app lock on key {blocked}: job skipped {blocked not in ran}, job_stats count_working "
            f"{stats['Echo']['count_working']}"
        )
        app.execute("SELECT pg_advisory_unlock(%s)", [blocked])
        worker.work_one()
        checks.append(ran == [blocked])
        # b. a row changed while locked is not run by anyone else meanwhile
        lab.reset()
        held = client.enqueue("Echo", 1).job_id
        locked = client.lock_job()
        assert locked is not None
        app.execute("UPDATE que_jobs SET priority = 5, run_at = now() - interval '1 minute' WHERE job_id = %s", [held])
        others = []
        for name in names:
            testee = lab.start(name)
            others.append((name, testee.work_one()["worked"]))
            testee.stop()
        locked.delete()
        locked.release()
        remaining = lab.sql("SELECT job_id FROM que_jobs")
        checks.append(not any(w for _, w in others))
        notes.append(
            f"row changed while locked: other workers ran it meanwhile: {dict(others)}; after release the row "
            f"{'stays' if remaining else 'is gone'} (delete matches the full key read at lock time, as upstream)"
        )
        # c. no code path leaves a job lock on a pooled connection
        lab.reset()
        for i in range(30):
            client.enqueue("Echo", i)
        for i in range(30):
            job = client.lock_job()
            assert job is not None
            if i % 3 == 0:
                try:
                    with job:
                        raise RuntimeError("handler failed")
                except RuntimeError:
                    pass
            elif i % 3 == 1:
                lab.sql("SELECT pg_terminate_backend(%s)", [job.backend_pid])
                with contextlib.suppress(psycopg.Error):
                    job.delete()
                job.release()
            else:
                with job:
                    job.delete()
        pool_locks = lab.locks()
        checks.append(pool_locks == 0)
        notes.append(f"30 lock_job cycles with exceptions and killed connections: advisory locks left {pool_locks}")
    row.jobs = 32
    row.completed = 32 if all(checks) else 0
    row.locks_left = lab.locks()
    row.ok = all(checks) and row.locks_left == 0
    return row
