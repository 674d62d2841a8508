"""Operating a queue, against a real PostgreSQL: the queue overview, Prometheus metrics read
from the real client's exposition, `que health` and `que work --metrics-port` probed over
HTTP, and job types that enqueue under the name they are handled by."""

import json
import signal
import socket
import urllib.error
import urllib.request
from typing import Any

import prometheus_client
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

import que
from harness.lab import wait_until
from que.contrib import prometheus
from tests.integration.test_cli import que_cmd, start_worker
from tests.integration.test_hooks import QUEUE, drain
from tests.integration.test_hooks import url as url


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_overview_counts_each_state_and_the_oldest_due_age(url: str) -> None:
    with que.Client(url) as client, psycopg.connect(url, autocommit=True) as conn:
        v7 = client.dialect().name == "2"
        client.enqueue("Ready", queue=QUEUE)
        client.enqueue("Later", queue=QUEUE, run_at=conn.execute("SELECT now() + interval '1 hour'").fetchone()[0])  # type: ignore[index]
        failing = client.enqueue("Failing", queue=QUEUE)
        held = client.enqueue("Held", queue=QUEUE)
        conn.execute("UPDATE que_jobs SET run_at = run_at - interval '90 seconds' WHERE job_class = 'Ready'")
        key = "id" if v7 else "job_id"
        conn.execute(f"UPDATE que_jobs SET error_count = 2 WHERE {key} = %s", [failing.job_id])
        with psycopg.connect(url, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", [held.job_id])
            [row] = client.overview()
    assert {k: row[k] for k in ("queue", "ready", "scheduled", "working", "failing", "dead", "finished")} == {
        "queue": QUEUE,
        "ready": 1,
        "scheduled": 1,
        "working": 1,
        "failing": 1,
        "dead": 0,
        "finished": 0,
    }
    assert 90 <= row["oldest_due_age"] < 150, "the Ready job, 90 s overdue"


def test_prometheus_metrics_count_jobs_and_read_the_queues(url: str) -> None:
    registry = prometheus_client.CollectorRegistry()
    with que.Client(url) as client:
        for job_class in ("Ok", "Ok", "Boom"):
            client.enqueue(job_class, queue=QUEUE)
        hook = prometheus.instrument(client, registry)
        try:
            drain(url, {"Ok": lambda: None, "Boom": lambda: 1 / 0}, "threads", 1)
        finally:
            que.remove_hook(hook)
        found = samples(prometheus_client.generate_latest(registry).decode())
    labels = lambda job_class: (("job_class", job_class), ("queue", QUEUE))  # noqa: E731
    assert found["que_jobs_worked_total", labels("Ok")] == 2
    assert found["que_jobs_failed_total", labels("Boom")] == 1
    assert found["que_jobs_retried_total", labels("Boom")] == 1
    assert found["que_job_duration_seconds_count", labels("Ok")] == 2
    assert found["que_jobs_running", ()] == 0
    assert found["que_queue_jobs", (("queue", QUEUE), ("state", "failing"))] == 1
    assert found["que_queue_jobs", (("queue", QUEUE), ("state", "ready"))] == 0
    assert found["que_queue_oldest_due_age_seconds", (("queue", QUEUE),)] == 0


def test_que_health_passes_and_fails_with_the_reason(url: str) -> None:
    ok = que_cmd(url, "health", "--max-age", "60", "--json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["healthy"] is True
    with que.Client(url) as client, psycopg.connect(url, autocommit=True) as conn:
        version = client.db_version()
        client.enqueue("Late", queue=QUEUE)
        conn.execute("UPDATE que_jobs SET run_at = now() - interval '10 minutes'")
    late = que_cmd(url, "health", "--max-age", "60")
    assert late.returncode == 1
    assert f"FAIL oldest_due: due jobs waiting 60 s or more: '{QUEUE}': 6" in late.stdout, late.stdout
    wrong = que_cmd(url, "health", "--schema-version", str(version - 1))
    assert wrong.returncode == 1 and f"FAIL schema: que_jobs is at version {version}" in wrong.stdout
    gone = que_cmd("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2", "health")
    assert gone.returncode == 1 and "FAIL database: no answer" in gone.stdout, gone.stdout + gone.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


@pytest.mark.parametrize("pool", [[], ["--async"]], ids=["threads", "async"])
def test_que_work_serves_metrics_and_health(database_url: str, conn: psycopg.Connection[Any], pool: list[str]) -> None:
    with que.Client(database_url) as client:
        for _ in range(3):
            client.enqueue("Sleepy", 0)
        later = conn.execute("SELECT now() + interval '1 hour'").fetchone()
        assert later is not None
        client.enqueue("Sleepy", 0, run_at=later[0])
    port = _free_port()
    worker = start_worker(database_url, "--metrics-port", str(port), "--health-max-age", "300", *pool)
    try:
        wait_until(lambda: _get(port, "/health")[0] == 200, 20, "/health to answer 200")
        wait_until(lambda: conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (1,), 20, "the due jobs")
        status, text = _get(port, "/metrics")
        assert status == 200
        found = samples(text)
        assert found["que_jobs_worked_total", (("job_class", "Sleepy"), ("queue", ""))] == 3
        assert found["que_queue_jobs", (("queue", ""), ("state", "scheduled"))] == 1
        assert found["que_queue_jobs", (("queue", ""), ("state", "ready"))] == 0
        health = json.loads(_get(port, "/health")[1])
        assert health["healthy"] is True
        assert [c["name"] for c in health["checks"]] == ["database", "schema", "pool", "oldest_due"]
        assert _get(port, "/nothing")[0] == 404
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err[-2000:]
    assert _get(port, "/health")[0] == 0, "the endpoint closes with the pool"


def test_a_handler_registered_by_decorator_enqueues_under_its_own_name(url: str) -> None:
    handlers = que.Registry()
    seen: list[str] = []

    @handlers.handler("Mail::Send")
    def send(to: str) -> str:
        seen.append(to)
        return to

    assert isinstance(send, que.JobType) and send.job_class == "Mail::Send"
    assert send("direct") == "direct", "it still calls the function"
    with que.Client(url) as client:
        job = send.enqueue(client, "ann@example.com", queue=QUEUE, priority=5)
        client.enqueue_many([send.new("bob@example.com", queue=QUEUE)])
    assert (job.job_class, job.args, job.priority) == ("Mail::Send", ["ann@example.com"], 5)
    drain(url, handlers, "threads", 0)
    assert sorted(seen) == ["ann@example.com", "bob@example.com", "direct"]
