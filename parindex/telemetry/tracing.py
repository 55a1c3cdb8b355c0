"""OpenTelemetry setup: standard OTEL_* variables choose the exporter (none by default)."""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

_configured = False


def _processor(exporter: SpanExporter, simple: bool) -> SpanProcessor:
    return SimpleSpanProcessor(exporter) if simple else BatchSpanProcessor(exporter)


def setup_tracing(
    service: str, exporter: SpanExporter | None = None, *, simple: bool = False
) -> TracerProvider:
    """One tracer provider per process; OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set.

    The global provider can be set only once per process, so a later call (another service
    in the same process, a test) adds its exporter to the provider already installed.
    `simple=True` exports each span synchronously as it ends (tests, in-memory exporters).
    """
    global _configured
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):  # ours, or an SDK provider somebody installed
        _configured = True
        if exporter is not None:
            provider.add_span_processor(_processor(exporter, simple))
        return provider
    provider = TracerProvider(
        resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service)})
    )
    if exporter is not None:
        provider.add_span_processor(_processor(exporter, simple))
    elif os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _configured = True
    return provider


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)
