"""OpenTelemetry traces for que (`pip install 'que-interop[otel]'`): a span per job, with the
messaging semantic conventions, on the hooks (que.Hook).

    from que.contrib import otel
    otel.instrument()          # the global tracer provider, unless one is given

Each run of a job is a CONSUMER span named `process <queue>`, current while its handler
runs (spans the handler makes are its children), with messaging.system "que",
messaging.operation.type and .name "process", messaging.destination.name (the queue),
messaging.message.id (the job id), que.job_class, que.error_count, and at its end
que.outcome; a handler that raised sets the span's status to ERROR and records the error.

On a Que 1.x/2.x table the enqueuer's trace context travels in the job's `data` (key
`trace`, W3C traceparent/tracestate: Ruby Que reads only `tags` there and keeps the rest),
so a job enqueued in a web request runs as a child of that request's span, in one trace.
A Que 0.x table has no data column: there each job's span starts a trace of its own.
"""

import contextvars
import json
from collections.abc import Mapping
from typing import Any

try:
    from opentelemetry import context, propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as missing:  # pragma: no cover - the message is the point
    raise ImportError("que.contrib.otel needs OpenTelemetry: pip install 'que-interop[otel]'") from missing

from que.core.hooks import Hook, JobEnd, add_hook
from que.core.job import Job

DATA_KEY = "trace"
_running: contextvars.ContextVar[tuple[Any, object] | None] = contextvars.ContextVar("que_otel_span", default=None)


class TracingHook(Hook):
    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    def job_data(self, job_class: str, queue: str) -> Mapping[str, Any] | None:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return {DATA_KEY: carrier} if carrier else None

    def job_started(self, job: Job) -> None:
        parent = None
        carried = _carried(job)
        if carried:
            parent = propagate.extract(carried)
        span = self.tracer.start_span(
            f"process {job.queue}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "que",
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.destination.name": job.queue,
                "messaging.message.id": str(job.job_id),
                "que.job_class": job.job_class,
                "que.error_count": job.error_count,
            },
        )
        token = context.attach(trace.set_span_in_context(span))
        _running.set((span, token))

    def job_ended(self, job: Job, end: JobEnd) -> None:
        running = _running.get()
        if running is None:
            return
        span, token = running
        _running.set(None)
        span.set_attribute("que.outcome", end.outcome)
        if end.error is not None:
            span.record_exception(end.error)
            span.set_status(Status(StatusCode.ERROR, f"{type(end.error).__name__}: {end.error}"))
        span.end()
        context.detach(token)  # type: ignore[arg-type]


def _carried(job: Job) -> dict[str, str] | None:
    if job.data_json in ("{}", ""):
        return None
    try:
        data = json.loads(job.data_json)
    except ValueError:
        return None
    carried = data.get(DATA_KEY) if isinstance(data, dict) else None
    if not isinstance(carried, dict):
        return None
    return {str(k): str(v) for k, v in carried.items() if isinstance(v, str)}


def instrument(tracer_provider: trace.TracerProvider | None = None) -> TracingHook:
    """Trace every job this process's workers run, and carry the enqueuer's context."""
    tracer = trace.get_tracer("que", tracer_provider=tracer_provider)
    hook = TracingHook(tracer)
    add_hook(hook)
    return hook
