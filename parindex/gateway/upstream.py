"""The door's HTTP/1.1 client to the services: keep-alive connections, streamed both ways.

httpx's connection pool walked every pooled connection, asking each socket for its state, on
every request: at 50 clients the door spent more CPU choosing a connection than the service
spent on the ballot (issue #18, docs/architecture.md, decision 44). This client keeps, per
service, a stack of idle connections and parses answers with httptools (uvicorn's own parser).
It knows only what a hop between the door and our own services needs: no redirects, no cookies
(a cookie jar would hand one person's session to the next request), no decompression.

Errors are typed for the door's answers: `ConnectFailed` (503), `UpstreamTimeout` (504),
`UpstreamBroken` (502). An idle connection the service has closed is never reused: one idle for
longer than IDLE_S is dropped (uvicorn closes after 5 s), and a request that finds its reused
connection closed before any byte of the answer is sent again on a fresh one when it had no
body (with a body, the door cannot know how much the service read: 502).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools

IDLE_S = 4.0  # below uvicorn's keep-alive timeout (5 s)
KEEP_IDLE = 64  # idle connections kept per service
MAX_IN_FLIGHT = 1000  # requests holding a connection to one service at once
READ_SIZE = 65536


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    read: float = 120.0
    write: float = 60.0

    @classmethod
    def all(cls, seconds: float) -> Timeouts:
        return cls(seconds, seconds, seconds)


class UpstreamError(Exception):
    """The service could not be reached or did not answer properly."""


class ConnectFailed(UpstreamError):
    """No connection (refused, unreachable, connect timeout): the service is down."""


class UpstreamTimeout(UpstreamError):
    """Connected, but the service did not read or answer in time."""


class UpstreamBroken(UpstreamError):
    """The connection broke or the answer was not HTTP."""


class _Stale(UpstreamError):
    """A reused connection was closed before any byte of the answer: safe to retry bodiless."""


@dataclass
class Answer:
    """The service's status and headers; `body()` streams the (de-chunked) body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: Callable[[], AsyncIterator[bytes]]
    close: Callable[[], Awaitable[None]]


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = field(default_factory=time.monotonic)

    def usable(self) -> bool:
        return (
            not self.reader.at_eof()
            and not self.writer.is_closing()
            and time.monotonic() - self.idle_since < IDLE_S
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class _Parser:
    """httptools callbacks collected into the answer's parts."""

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.chunks: list[bytes] = []
        self.parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.complete = True
        # Asked only now: before the end of a chunked body llhttp cannot tell yet.
        self.keep_alive = bool(self.parser.should_keep_alive())


class Upstream:
    """Connections to one service's base URL (http://host:port)."""

    def __init__(self, base_url: str, source_address: str | None, timeouts: Timeouts) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.source_address = source_address
        self.timeouts = timeouts
        self._idle: list[_Conn] = []
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def _connect(self) -> _Conn:
        local = (self.source_address, 0) if self.source_address else None
        try:
            async with asyncio.timeout(self.timeouts.connect):
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, local_addr=local, limit=READ_SIZE * 4
                )
        except (OSError, TimeoutError) as exc:
            raise ConnectFailed(str(exc) or type(exc).__name__) from exc
        return _Conn(reader, writer)

    def _reuse(self) -> _Conn | None:
        while self._idle:
            conn = self._idle.pop()
            if conn.usable():
                return conn
            conn.close()
        return None

    def _release(self, conn: _Conn) -> None:
        if len(self._idle) < KEEP_IDLE and not conn.reader.at_eof():
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            conn.close()

    async def aclose(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: AsyncIterator[bytes] | None,
    ) -> Answer:
        """Send the request; the answer's headers arrive before its body is read.

        At most MAX_IN_FLIGHT requests per service hold a connection: a flood of clients
        waits here for up to the connect timeout and then gets the door's 503, instead of
        opening a connection each to the service."""
        try:
            async with asyncio.timeout(self.timeouts.connect):
                await self._slots.acquire()
        except TimeoutError:
            raise ConnectFailed("too many requests in flight") from None
        try:
            answer = await self._request(method, target, headers, body)
        except BaseException:
            self._slots.release()
            raise
        close = answer.close

        async def close_and_release() -> None:
            try:
                await close()
            finally:
                self._slots.release()

        answer.close = close_and_release
        return answer

    async def _request(
        self,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: AsyncIterator[bytes] | None,
    ) -> Answer:
        conn = self._reuse()
        if conn is not None:
            try:
                return await self._exchange(conn, method, target, headers, body, reused=True)
            except _Stale:
                if body is not None:
                    raise UpstreamBroken("connection closed by the service") from None
        conn = await self._connect()
        try:
            return await self._exchange(conn, method, target, headers, body, reused=False)
        except _Stale:
            raise UpstreamBroken("connection closed by the service") from None

    async def _exchange(
        self,
        conn: _Conn,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: AsyncIterator[bytes] | None,
        reused: bool,
    ) -> Answer:
        chunked = body is not None and not any(k == b"content-length" for k, _ in headers)
        head = [f"{method} {target} HTTP/1.1".encode("latin-1")]
        head += [k + b": " + v for k, v in headers]
        if chunked:
            head.append(b"transfer-encoding: chunked")
        try:
            conn.writer.write(b"\r\n".join(head) + b"\r\n\r\n")
            if body is not None:
                async for chunk in body:
                    if not chunk:
                        continue
                    if chunked:
                        conn.writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    else:
                        conn.writer.write(chunk)
                    async with asyncio.timeout(self.timeouts.write):
                        await conn.writer.drain()
                if chunked:
                    conn.writer.write(b"0\r\n\r\n")
            async with asyncio.timeout(self.timeouts.write):
                await conn.writer.drain()
        except TimeoutError:
            conn.close()
            raise UpstreamTimeout("writing the request") from None
        except OSError as exc:
            conn.close()
            if reused:
                raise _Stale(str(exc)) from exc
            raise UpstreamBroken(str(exc)) from exc
        except BaseException:  # the client went away or was too slow: this hop is spoilt
            conn.close()
            raise
        p = _Parser()
        received = False
        try:
            while not p.headers_done:
                data = await self._read(conn)
                if not data:
                    raise _Stale("closed") if reused and not received else UpstreamBroken("eof")
                received = True
                p.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            conn.close()
            raise UpstreamBroken(f"not HTTP: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        status = p.parser.get_status_code()
        # Neither length nor chunks: the body ends when the service closes (HTTP/1.1 §6.3).
        until_close = not any(k in (b"content-length", b"transfer-encoding") for k, _ in p.headers)
        done = False

        async def stream() -> AsyncIterator[bytes]:
            nonlocal done, until_close
            try:
                while True:
                    while p.chunks:
                        yield p.chunks.pop(0)
                    if p.complete or method == "HEAD" or status in (204, 304):
                        done = True
                        return
                    data = await self._read(conn)
                    if not data:
                        if until_close:
                            until_close, done = False, True
                            return
                        raise UpstreamBroken("answer cut off")
                    p.parser.feed_data(data)
            except httptools.HttpParserError as exc:
                raise UpstreamBroken(f"not HTTP: {exc}") from exc

        async def close() -> None:
            if done and p.keep_alive:
                self._release(conn)
            else:
                conn.close()

        return Answer(status, p.headers, stream, close)

    async def _read(self, conn: _Conn) -> bytes:
        try:
            async with asyncio.timeout(self.timeouts.read):
                return await conn.reader.read(READ_SIZE)
        except TimeoutError:
            conn.close()
            raise UpstreamTimeout("waiting for the answer") from None
        except OSError as exc:
            conn.close()
            raise UpstreamBroken(str(exc)) from exc
