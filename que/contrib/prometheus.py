"""Prometheus metrics for que, with the official client (`pip install 'que-interop[metrics]'`).

    from que.contrib import prometheus
    prometheus.instrument(client)          # the job hook, and the queue gauges read from `client`
    prometheus_client.start_http_server(9100)

or `que work --metrics-port 9100`. Per job, from a que.Hook in the workers of this process:
- que_jobs_worked_total, que_jobs_failed_total, que_jobs_retried_total, que_jobs_expired_total
  (counters by job_class and queue; expired counts Que 1.x/2.x's expired and Que 0.x's dead);
- que_job_duration_seconds (a histogram by job_class and queue);
- que_jobs_running (a gauge: handlers running now in this process).
Per queue, read from the database at each scrape (the whole table: every process's jobs):
- que_queue_jobs{queue, state} with state ready, scheduled, working, failing, dead, finished;
- que_queue_oldest_due_age_seconds{queue} (0 when none is due);
- que_lockers and que_locker_workers (Que 1.x/2.x: que_lockers' rows and their workers).
"""

from collections.abc import Iterator
from typing import Any

try:
    import prometheus_client
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.registry import Collector
except ImportError as missing:  # pragma: no cover - the message is the point
    raise ImportError(
        "que.contrib.prometheus needs the Prometheus client: pip install 'que-interop[metrics]'"
    ) from missing

from que.core.hooks import DEAD, EXPIRED, RETRY, Hook, JobEnd, add_hook
from que.core.job import Job

STATES = ("ready", "scheduled", "working", "failing", "dead", "finished")
LABELS = ("job_class", "queue")


class MetricsHook(Hook):
    """The per-job metrics, counted in the workers of this process."""

    def __init__(self, registry: prometheus_client.CollectorRegistry) -> None:
        self.worked = prometheus_client.Counter(
            "que_jobs_worked", "Jobs whose handler returned", LABELS, registry=registry
        )
        self.failed = prometheus_client.Counter(
            "que_jobs_failed", "Jobs whose handler raised", LABELS, registry=registry
        )
        self.retried = prometheus_client.Counter(
            "que_jobs_retried", "Failed jobs scheduled to run again", LABELS, registry=registry
        )
        self.expired = prometheus_client.Counter(
            "que_jobs_expired",
            "Jobs set aside for good (expired, or dead past the retry limit)",
            LABELS,
            registry=registry,
        )
        self.duration = prometheus_client.Histogram(
            "que_job_duration_seconds", "Seconds in the job's handler", LABELS, registry=registry
        )
        self.running = prometheus_client.Gauge("que_jobs_running", "Handlers running now", registry=registry)

    def job_started(self, job: Job) -> None:
        self.running.inc()

    def job_ended(self, job: Job, end: JobEnd) -> None:
        self.running.dec()
        labels = (job.job_class, job.queue)
        self.duration.labels(*labels).observe(end.duration)
        if end.error is None:
            self.worked.labels(*labels).inc()
        else:
            self.failed.labels(*labels).inc()
        if end.outcome == RETRY:
            self.retried.labels(*labels).inc()
        elif end.outcome in (EXPIRED, DEAD):
            self.expired.labels(*labels).inc()


class QueueCollector(Collector):
    """The per-queue gauges, read with `client` (a que.Client) at each scrape."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily("que_queue_jobs", "Jobs by queue and state", labels=["queue", "state"])
        age = GaugeMetricFamily(
            "que_queue_oldest_due_age_seconds", "Seconds the oldest due job of the queue has waited", labels=["queue"]
        )
        for row in self.client.overview():
            for state in STATES:
                jobs.add_metric([row["queue"], state], row[state])
            age.add_metric([row["queue"]], row["oldest_due_age"] or 0.0)
        yield jobs
        yield age
        if self.client.dialect().keeps_rows:
            with self.client.connection() as conn:
                row = conn.execute("SELECT count(*), coalesce(sum(worker_count), 0) FROM public.que_lockers").fetchone()
            lockers = GaugeMetricFamily("que_lockers", "Lockers registered in que_lockers")
            lockers.add_metric([], row[0] if row else 0)
            workers = GaugeMetricFamily("que_locker_workers", "Workers of the registered lockers")
            workers.add_metric([], row[1] if row else 0)
            yield lockers
            yield workers


def instrument(client: Any = None, registry: prometheus_client.CollectorRegistry | None = None) -> MetricsHook:
    """Count every job this process's workers run (a que hook) in `registry` (the client
    library's default one unless given), and, with a que.Client, read the queue gauges."""
    registry = prometheus_client.REGISTRY if registry is None else registry
    hook = MetricsHook(registry)
    add_hook(hook)
    if client is not None:
        registry.register(QueueCollector(client))
    return hook
