"""The HTTP edge every service shares: security headers, body limits, internal endpoints.

One pure ASGI middleware, so it also covers static files, error answers and responses that
other middlewares build (docs/architecture.md, decision 22).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from parindex.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
]
API_DOCS = ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect")
# Routes that take a respondent list (Excel) get the larger limit.
IMPORT_PATHS = ("/api/respondents/import", "/admin/import")


class BodyTooLarge(Exception):
    """Raised inside the app when a streamed body passes the limit; answered with 413."""


def client_allowed(host: str | None, allow: str) -> bool:
    """Loopback or inside one of the comma-separated addresses/networks in `allow`."""
    if not host:
        return False
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    if addr.is_loopback:
        return True
    for item in (a.strip() for a in allow.split(",")):
        if item:
            try:
                if addr in ipaddress.ip_network(item, strict=False):
                    return True
            except ValueError:
                continue
    return False


class Edge:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", []) if k not in _HEADER_NAMES]
                message["headers"] = headers + SECURITY_HEADERS
            await send(message)

        path: str = scope.get("path", "")
        if self._hidden(scope, path):
            await _answer(send_with_headers, 404, {"detail": "Not Found"})
            return
        limit = self._limit(path)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _answer(send_with_headers, 413, {"detail": "request body too large"})
            return
        seen = 0

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge
            return message

        try:
            await self.app(scope, counted_receive, send_with_headers)
        except BaseException as exc:
            # The HTTP middlewares' task groups wrap it in an ExceptionGroup.
            if started or not _is_too_large(exc):
                raise
            await _answer(send_with_headers, 413, {"detail": "request body too large"})

    def _hidden(self, scope: Scope, path: str) -> bool:
        if path in API_DOCS:
            return not self.settings.api_docs
        if path == "/metrics":
            client = scope.get("client")
            return not client_allowed(client[0] if client else None, self.settings.metrics_allow)
        return False

    def _limit(self, path: str) -> int:
        if path in IMPORT_PATHS:
            return max(self.settings.max_import_bytes, self.settings.max_body_bytes)
        return self.settings.max_body_bytes


_HEADER_NAMES = {k for k, _ in SECURITY_HEADERS}


def _is_too_large(exc: BaseException) -> bool:
    if isinstance(exc, BodyTooLarge):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_too_large(e) for e in exc.exceptions)
    return False


def _content_length(scope: Scope) -> int | None:
    for k, v in scope.get("headers", []):
        if k == b"content-length":
            try:
                return int(v)
            except ValueError:
                return None
    return None


async def _answer(send: Send, status: int, body: dict[str, str]) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
