"""Spans are recorded only when something exports them; the trace context travels either way."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from parindex.telemetry.tracing import WhenExported, inject_trace

pytestmark = pytest.mark.unit


def test_without_an_exporter_spans_are_dropped_but_keep_their_ids() -> None:
    sampler = WhenExported()
    provider = TracerProvider(sampler=sampler)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("ballot", context=Context()) as span:
        assert not span.is_recording()
        ctx = span.get_span_context()
        assert ctx.is_valid  # its own trace and span ids, so the bus still carries a trace
        carrier: dict[str, str] = {}
        inject_trace(carrier)
    version, trace_id, span_id, flags = carrier["traceparent"].split("-")
    assert (trace_id, span_id) == (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")
    assert not int(flags, 16) & trace.TraceFlags.SAMPLED  # not sampled: nobody records it


def test_once_an_exporter_is_added_spans_are_recorded_and_exported() -> None:
    sampler = WhenExported()
    provider = TracerProvider(sampler=sampler)
    exporter = InMemorySpanExporter()
    sampler.exporting = True  # what setup_tracing does when it adds a processor
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("ballot", context=Context()) as span:
        assert span.is_recording()
        child = tracer.start_span("publish")
        child.end()
    names = [s.name for s in exporter.get_finished_spans()]
    assert names == ["publish", "ballot"]
    assert exporter.get_finished_spans()[0].parent == span.get_span_context()
    assert span.get_span_context().trace_flags & trace.TraceFlags.SAMPLED
