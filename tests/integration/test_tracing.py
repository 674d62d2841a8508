"""OpenTelemetry spans from que.contrib.otel, read back from the SDK's in-memory exporter, on
a real PostgreSQL: a job enqueued inside a span runs as that span's child on a Que 2 table
(the context travels in the job's data), a failed job's span records the error, and on a
Que 0.x table each job starts a trace of its own."""

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import que
from que.contrib import otel
from tests.integration.test_hooks import QUEUE, drain
from tests.integration.test_hooks import url as url


@pytest.fixture
def traced() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    hook = otel.instrument(provider)
    try:
        yield provider, exporter
    finally:
        que.remove_hook(hook)


@pytest.mark.parametrize("kind", ["threads", "asyncio"])
def test_a_job_runs_in_the_trace_it_was_enqueued_in(
    url: str, kind: str, traced: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = traced
    tracer = provider.get_tracer("web")
    inner: list[Any] = []

    def ok() -> None:
        with tracer.start_as_current_span("inside the job") as span:
            inner.append(span.get_span_context())

    def boom() -> None:
        raise ValueError("boom")

    with que.Client(url) as client:
        v7 = client.dialect().name == "2"
        with tracer.start_as_current_span("POST /signup") as request:
            client.enqueue("Ok", queue=QUEUE)
            client.enqueue("Boom", queue=QUEUE)
        with psycopg.connect(url) as conn:
            datas = [json.loads(r[0]) for r in conn.execute("SELECT data::text FROM que_jobs")] if v7 else []
    for data in datas:
        assert set(data) == {"trace"} and data["trace"]["traceparent"].startswith("00-")
    drain(url, {"Ok": ok, "Boom": boom}, kind, 1)
    spans = {
        span.name + ":" + str(span.attributes.get("que.job_class")): span for span in exporter.get_finished_spans()
    }
    job = spans[f"process {QUEUE}:Ok"]
    failed = spans[f"process {QUEUE}:Boom"]
    assert job.kind == SpanKind.CONSUMER
    assert dict(job.attributes or {}) == {
        "messaging.system": "que",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": QUEUE,
        "messaging.message.id": str(job.attributes["messaging.message.id"]),  # type: ignore[index]
        "que.job_class": "Ok",
        "que.error_count": 0,
        "que.outcome": "worked",
    }
    assert failed.status.status_code == StatusCode.ERROR and "ValueError: boom" in (failed.status.description or "")
    assert [event.name for event in failed.events] == ["exception"]
    assert failed.attributes["que.outcome"] == "retry"  # type: ignore[index]
    # The handler's own span is the job span's child.
    assert inner[0].trace_id == job.context.trace_id
    assert spans["inside the job:None"].parent.span_id == job.context.span_id  # type: ignore[union-attr]
    request_context = request.get_span_context()
    if v7:  # the context crossed in data: one trace from the request to the job
        assert job.context.trace_id == request_context.trace_id
        assert job.parent is not None and job.parent.span_id == request_context.span_id
    else:  # Que 0.x: no data column, a trace of its own
        assert job.context.trace_id != request_context.trace_id and job.parent is None
