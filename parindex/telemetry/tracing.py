"""OpenTelemetry setup: standard OTEL_* variables choose the exporter (none by default)."""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping, Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

_configured = False

# Only the W3C trace context travels in NATS headers, and only as the services made it: never
# baggage, never what a client sent. A client's traceparent, tracestate or baggage carried
# onto a ballot event would let a vote buyer mark a ballot on the log (decision 45).
_BUS = TraceContextTextMapPropagator()


def inject_trace(carrier: MutableMapping[str, str]) -> None:
    """The current span's traceparent (and the services' own tracestate) into `carrier`."""
    _BUS.inject(carrier)


def extract_trace(carrier: Mapping[str, str]) -> Context:
    """The context a NATS message's headers carry, for a consumer's span."""
    return _BUS.extract(carrier)


class WhenExported(Sampler):
    """Records spans only once something exports them (docs/architecture.md, decision 46).

    With no exporter configured (the default) a recorded span is built, timed, given its
    attributes and thrown away: about a twentieth of a ballot's CPU. A dropped span still has
    its own trace and span ids, so the trace context still travels on the bus; a process that
    exports records as before (parent-based, always on).
    """

    def __init__(self) -> None:
        self.exporting = False
        self._on = ParentBased(ALWAYS_ON)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: trace.SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[trace.Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        if self.exporting:
            return self._on.should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )
        return SamplingResult(Decision.DROP)

    def get_description(self) -> str:
        return "WhenExported"


_SAMPLER = WhenExported()


def _processor(exporter: SpanExporter, simple: bool) -> SpanProcessor:
    _SAMPLER.exporting = True
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
        resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service)}),
        sampler=_SAMPLER,
    )
    if exporter is not None:
        provider.add_span_processor(_processor(exporter, simple))
    elif os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(_processor(OTLPSpanExporter(), simple=False))
    trace.set_tracer_provider(provider)
    _configured = True
    return provider


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)
