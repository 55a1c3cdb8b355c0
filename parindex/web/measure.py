"""Per request: a server span and the latency histogram, as a pure ASGI middleware.

Starlette's `@app.middleware("http")` (BaseHTTPMiddleware) runs every request in a task with a
memory stream between the two halves, which cost more CPU than a ballot's own work (issue #18,
docs/architecture.md, decision 44). Here the response passes straight through; the status is
read off the response start. PostgreSQL text cannot hold U+0000, so a NUL in the path or the
query is refused here, not deep in a query.
"""

from __future__ import annotations

import time

from opentelemetry import trace
from opentelemetry.context import Context
from starlette.requests import Request

from parindex.telemetry import metrics
from parindex.web.edge import ASGIApp, Message, Receive, Scope, Send

tracer = trace.get_tracer("parindex.http")


class Measure:
    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if b"%00" in scope.get("query_string", b"") or "\x00" in scope.get("path", ""):
            from parindex.web.errors import answer

            await answer(Request(scope), 400, "NUL characters are not allowed")(
                scope, receive, send
            )
            return
        status = 500  # until the response says otherwise: an exception is a 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        method = scope.get("method", "GET")
        started = time.perf_counter()
        # A root span: whatever trace context a client sends is not continued. Services talk
        # to each other over NATS only (decision 5), so every HTTP caller is outside, and a
        # continued client trace reached the ballot on the log (decision 45).
        with tracer.start_as_current_span(
            f"{method} {scope.get('path', '')}", context=Context(), kind=trace.SpanKind.SERVER
        ) as span:
            span.set_attribute("service.name", self.service)
            try:
                await self.app(scope, receive, send_status)
            finally:
                span.set_attribute("http.response.status_code", status)
                route = scope.get("route")
                metrics.http_latency.labels(
                    self.service, method, getattr(route, "path", "?"), str(status)
                ).observe(time.perf_counter() - started)
