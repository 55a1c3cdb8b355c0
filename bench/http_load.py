"""A lean HTTP/1.1 load generator: keep-alive connections, requests encoded before the clock starts.

httpx costs several milliseconds of CPU per request; on a 2-core machine the load generator
then takes the cores the system under test needs and its own queueing shows up as latency.
Here each client is one connection that writes a prepared request and reads one response
(status line, headers, Content-Length body), so the generator's cost per request is a few
tens of microseconds and the latency measured is the server's.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes


def request_bytes(
    method: str, url: str, path: str, headers: Mapping[str, str], body: Any = None
) -> bytes:
    """One request, ready to write: JSON body when `body` is not None."""
    host = urlsplit(url).netloc
    data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data


class Connection:
    """One keep-alive connection; `send` writes a prepared request and reads its reply."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str) -> Connection:
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        return cls(reader, writer)

    async def send(self, request: bytes) -> Reply:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, _, rest = head.partition(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        chunked = False
        for line in rest.split(b"\r\n"):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            return Reply(status, await self._chunked())
        return Reply(status, await self.reader.readexactly(length) if length else b"")

    async def _chunked(self) -> bytes:
        out = bytearray()
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return bytes(out)
            out += await self.reader.readexactly(size)
            await self.reader.readexactly(2)

    def close(self) -> None:
        self.writer.close()


async def burst(
    url: str,
    requests: Sequence[bytes],
    concurrency: int,
    expect: int,
    done_at: list[float] | None = None,
) -> tuple[list[float], float]:
    """Send every request with `concurrency` connections; (latencies in s, elapsed s).
    `done_at` receives the perf_counter() of each expected reply, in order of arrival.

    A reply other than `expect` stops the burst with its status and body: a benchmark that
    counted refusals as throughput would measure nothing.
    """
    conns = [await Connection.open(url) for _ in range(concurrency)]
    latencies: list[float] = []
    next_index = 0

    async def client(conn: Connection) -> None:
        nonlocal next_index
        while next_index < len(requests):
            request = requests[next_index]
            next_index += 1
            t0 = time.perf_counter()
            reply = await conn.send(request)
            now = time.perf_counter()
            latencies.append(now - t0)
            if reply.status != expect:
                raise RuntimeError(f"HTTP {reply.status}: {reply.body[:200]!r}")
            if done_at is not None:
                done_at.append(now)

    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(client(c) for c in conns))
    finally:
        for c in conns:
            c.close()
    return latencies, time.perf_counter() - t0
