"""The gateway itself: a streaming reverse proxy in one pure ASGI app.

Routes by ROUTES (parindex/gateway/routes.py), as Caddy does in compose. What it guarantees
(docs/architecture.md, decision 30):
- internal endpoints (/healthz, /readyz, /metrics), dot segments and unknown paths are 404 here;
- the client's address reaches the service only as the X-Forwarded-For the gateway writes
  itself: whatever a client sent in X-Forwarded-*/Forwarded is dropped, never appended to;
- bodies are streamed both ways; the edge middleware wrapped around this app applies the
  services' own body limits (decision 22), so an oversized upload is 413 before it is sent on;
- a service that does not answer is a 503 page (Vietnamese first) or JSON, never a traceback;
  every upstream operation has a timeout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import parse_qs

from parindex.gateway.routes import MAIL_PREFIX, service_for
from parindex.gateway.upstream import (
    ConnectFailed,
    Timeouts,
    Upstream,
    UpstreamBroken,
    UpstreamError,
    UpstreamTimeout,
)
from parindex.web.edge import Message, Receive, Scope, Send

log = logging.getLogger("parindex.gateway")

# Connection-scoped headers (RFC 9110 §7.6.1) and everything a client could use to pose as
# another address or scheme.
HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
}
SPOOFABLE = {
    b"forwarded",
    b"x-forwarded-for",
    b"x-forwarded-host",
    b"x-forwarded-proto",
    b"x-forwarded-port",
    b"x-real-ip",
}
RETRY_AFTER_S = 5
TIMEOUT = Timeouts(connect=5.0, read=120.0, write=60.0)
# A client that trickles its body holds a connection to a service: it gets this long in all.
BODY_TIMEOUT_S = 120.0

PAGES = {
    (404, "vi"): ("Không tìm thấy trang", "Địa chỉ này không có trong hệ thống khảo sát."),
    (404, "en"): ("Page not found", "This address is not part of the survey system."),
    (408, "vi"): (
        "Gửi dữ liệu quá chậm",
        "Máy chủ không nhận đủ dữ liệu kịp thời. Vui lòng gửi lại.",
    ),
    (408, "en"): (
        "Sending took too long",
        "The server did not receive your data in time. Please send it again.",
    ),
    (502, "vi"): (
        "Dịch vụ trả lời không hợp lệ",
        "Một dịch vụ của hệ thống vừa ngắt kết nối. Vui lòng thử lại sau ít giây.",
    ),
    (502, "en"): (
        "Bad answer from a service",
        "A part of the system dropped the connection. Please try again in a few seconds.",
    ),
    (503, "vi"): (
        "Hệ thống tạm thời gián đoạn",
        "Dịch vụ này đang khởi động lại. Những gì bạn đã gửi không bị mất. "
        "Vui lòng thử lại sau ít giây.",
    ),
    (503, "en"): (
        "Temporarily unavailable",
        "This part of the system is restarting. Nothing you submitted was lost. "
        "Please try again in a few seconds.",
    ),
    (504, "vi"): (
        "Hệ thống phản hồi quá chậm",
        "Dịch vụ không trả lời kịp. Vui lòng thử lại sau ít phút.",
    ),
    (504, "en"): (
        "The system is too slow to answer",
        "A part of the system did not answer in time. Please try again in a few minutes.",
    ),
}
DETAIL = {
    404: "Not Found",
    408: "request body not received in time",
    502: "bad gateway",
    503: "service unavailable; retry shortly",
    504: "gateway timeout",
}


class ClientGone(Exception):
    """The client disconnected while its request body was being forwarded."""


class ClientTooSlow(Exception):
    """The client's body did not arrive within BODY_TIMEOUT_S."""


def _headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    return list(scope.get("headers", []))


def _header(scope: Scope, name: bytes) -> str:
    for k, v in _headers(scope):
        if k == name:
            return str(v.decode("latin-1"))
    return ""


def _language(scope: Scope) -> str:
    """?lang= wins, then the language cookie, then Vietnamese (as parindex/web/i18n.py)."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    lang = (query.get("lang") or [""])[0]
    if not lang:
        for part in _header(scope, b"cookie").split(";"):
            name, _, value = part.strip().partition("=")
            if name == "lang":
                lang = value
    return lang if lang in ("vi", "en") else "vi"


# The door's own pages look like the services' (readable width, visible focus: decision 40).
_STYLE = (
    "body{margin:0;font:16px/1.5 system-ui,sans-serif;color:#1f2933;background:#fff}"
    "main{padding:1rem;max-width:40rem;margin:0 auto}a{color:#0b4f8a}"
    "a:focus{outline:3px solid #f1c232;outline-offset:2px}"
)


def _page(status: int, lang: str) -> bytes:
    title, text = PAGES[(status, lang)]
    other = "en" if lang == "vi" else "vi"
    label = "English" if lang == "vi" else "Tiếng Việt"
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{title}</h1><p>{text}</p>"
        f'<p><a href="/">{"Trang chủ" if lang == "vi" else "Home"}</a> · '
        f'<a href="?lang={other}" lang="{other}" hreflang="{other}">{label}</a></p>'
        "</main></body></html>"
    ).encode()


async def answer(scope: Scope, send: Send, status: int) -> None:
    """The gateway's own answer: an HTML page for browsers, JSON for everything else."""
    headers = [(b"cache-control", b"no-store")]
    if status in (503, 504):
        headers.append((b"retry-after", str(RETRY_AFTER_S).encode()))
    if "text/html" in _header(scope, b"accept"):
        body = _page(status, _language(scope))
        headers.append((b"content-type", b"text/html; charset=utf-8"))
    else:
        body = json.dumps({"detail": DETAIL[status]}).encode()
        headers.append((b"content-type", b"application/json"))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    if scope.get("method") != "HEAD":
        await send({"type": "http.response.body", "body": body})
    else:
        await send({"type": "http.response.body", "body": b""})


def _dot_segments(path: str) -> bool:
    """`/survey/../metrics` must not reach /metrics by way of a URL normaliser."""
    return any(seg in (".", "..") for seg in path.split("/")) or "\\" in path


class Gateway:
    """ASGI app: `upstreams` maps a service name (and "mail") to its base URL."""

    def __init__(
        self,
        upstreams: Mapping[str, str],
        source_address: str | None = None,
        timeout: Timeouts = TIMEOUT,
        body_timeout: float = BODY_TIMEOUT_S,
    ) -> None:
        self.body_timeout = body_timeout
        self.upstreams = {k: v.rstrip("/") for k, v in upstreams.items()}
        self.source_address = source_address
        self.timeout = timeout
        # One client per service, no cookie jar: a jar would hand one person's session
        # cookie to the next request that came without cookies (docs/architecture.md, 44).
        self._clients = {
            name: Upstream(url, source_address, timeout) for name, url in self.upstreams.items()
        }

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":  # no websockets behind this door
            await send({"type": "websocket.close", "code": 1008})
            return
        path: str = scope.get("path", "")
        if path == MAIL_PREFIX and "mail" in self.upstreams:  # as Caddy's `redir /mail /mail/`
            await send(
                {
                    "type": "http.response.start",
                    "status": 308,
                    "headers": [
                        (b"location", f"{MAIL_PREFIX}/".encode()),
                        (b"content-length", b"0"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        target = self._target(path)
        if target is None:
            await answer(scope, send, 404)
            return
        await self._forward(scope, receive, send, *target)

    def _target(self, path: str) -> tuple[str, str] | None:
        """(service, path) or None: not ours."""
        if _dot_segments(path):
            return None
        if "mail" in self.upstreams and path.startswith(MAIL_PREFIX + "/"):
            return "mail", path[len(MAIL_PREFIX) :]
        service = service_for(path)
        if service is None or service not in self.upstreams:
            return None
        return service, path

    def _request_headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        # Headers the client's Connection header names are for this hop only, too.
        named = {n.strip().lower().encode() for n in _header(scope, b"connection").split(",")}
        # Expect: 100-continue was answered to the client by our own server already.
        drop = HOP_BY_HOP | SPOOFABLE | named | {b"expect"}
        out = [(k, v) for k, v in _headers(scope) if k not in drop]
        client = scope.get("client")
        # Overwritten, never appended to: the service trusts this hop only (decision 19).
        out.append((b"x-forwarded-for", (client[0] if client else "unknown").encode()))
        out.append((b"x-forwarded-proto", str(scope.get("scheme", "http")).encode()))
        host = _header(scope, b"host")
        if host:
            out.append((b"x-forwarded-host", host.encode("latin-1")))
        return out

    async def _forward(
        self, scope: Scope, receive: Receive, send: Send, service: str, path: str
    ) -> None:
        raw = scope.get("raw_path") or path.encode()
        if service == "mail":
            raw = raw[len(MAIL_PREFIX) :] or b"/"
        target = raw.decode("latin-1")
        query = scope.get("query_string", b"")
        if query:
            target += "?" + query.decode("latin-1")
        has_body = bool(_header(scope, b"content-length") or _header(scope, b"transfer-encoding"))

        deadline = time.monotonic() + self.body_timeout

        async def body() -> AsyncIterator[bytes]:
            while True:
                try:
                    async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                        message: Message = await receive()
                except TimeoutError:
                    raise ClientTooSlow from None
                if message["type"] == "http.disconnect":
                    raise ClientGone
                chunk = message.get("body", b"")
                if chunk:
                    yield chunk
                if not message.get("more_body", False):
                    return

        headers = self._request_headers(scope)
        try:
            response = await self._clients[service].request(
                scope["method"], target, headers, body() if has_body else None
            )
        except ClientGone:
            return
        except ClientTooSlow:
            await answer(scope, send, 408)
            return
        except ConnectFailed:
            log.warning("%s does not answer", service)
            await answer(scope, send, 503)
            return
        except UpstreamTimeout:
            log.warning("%s timed out: %s", service, scope["method"])
            await answer(scope, send, 504)
            return
        except UpstreamBroken as exc:
            log.warning("%s: %s", service, exc)
            await answer(scope, send, 502)
            return
        try:
            out = [(k, v) for k, v in response.headers if k not in HOP_BY_HOP]
            await send({"type": "http.response.start", "status": response.status, "headers": out})
            try:
                async for chunk in response.body():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except UpstreamError as exc:  # the answer was cut off half-way: nothing to mend
                log.warning("%s: answer cut off (%s)", service, exc)
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.close()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def build(upstreams: Mapping[str, str], source_address: str | None = None) -> Any:
    """The gateway inside the services' own edge (security headers, body limits, decision 22)."""
    from parindex.settings import get_settings
    from parindex.web.edge import Edge

    return Edge(Gateway(upstreams, source_address), get_settings())
