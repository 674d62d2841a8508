"""A transaction pooler (pgbouncer, pool_mode = transaction) between que and the server:
enqueueing through it works, a worker and lock_job refuse it (session locks cannot work
there), and the job is left untouched for a direct worker."""

import que
from chaos.lab import Lab, Row
from harness import pgbouncer


def run(lab: Lab) -> Row:
    row = Row("transaction pooling is refused", ["python"])
    if pgbouncer.find() is None:
        row.notes.append("pgbouncer is not installed; scenario not run")
        return row
    lab.reset()
    with pgbouncer.transaction_pooler(lab.url) as url, que.Client(url) as client:
        client.enqueue("Echo", 1)  # enqueueing through the pooler is fine
        errors = []
        try:
            que.Worker(client, {"Echo": lambda *a: None}).work_one()
        except que.TransactionPoolingError as error:
            errors.append(("worker", str(error)))
        try:
            client.lock_job()
        except que.TransactionPoolingError as error:
            errors.append(("lock_job", str(error)))
    row.jobs = 1
    row.locks_left = lab.locks()
    remaining = lab.sql("SELECT error_count FROM que_jobs")
    row.notes.append(f"refused by: {[w for w, _ in errors]}; message: {errors[0][1][:160] if errors else '-'}")
    row.ok = len(errors) == 2 and remaining == [(0,)] and row.locks_left == 0
    row.completed = 1 if row.ok else 0  # the job is left untouched for a direct worker
    return row
