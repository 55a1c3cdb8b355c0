"""The door's own HTTP/1.1 client (docs/architecture.md, decision 44) against raw sockets that
misbehave the ways a service can: closing a kept-alive connection, answering with no length,
answering garbage, not answering, not listening."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from parindex.gateway.upstream import (
    ConnectFailed,
    Timeouts,
    Upstream,
    UpstreamBroken,
    UpstreamTimeout,
)
from parindex.runtime.embedded import free_port
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(30)
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(handler: Handler) -> tuple[asyncio.Server, str, list[int]]:
    connections: list[int] = []

    async def counted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    port = free_port()
    server = await asyncio.start_server(counted, "127.0.0.1", port)
    return server, f"http://127.0.0.1:{port}", connections


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return head


async def _body(answer_body: Callable[[], AsyncIterator[bytes]]) -> bytes:
    return b"".join([chunk async for chunk in answer_body()])


async def test_a_connection_the_service_closed_is_not_an_error_for_a_get() -> None:
    async def once_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)  # answers as keep-alive, then closes anyway
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()

    server, url, connections = await _serve(once_then_close)
    client = Upstream(url, None, Timeouts.all(5))
    try:
        for _ in range(3):
            answer = await client.request("GET", "/x", [(b"host", b"door")], None)
            assert answer.status == 200 and await _body(answer.body) == b"ok"
            await answer.close()
        assert len(connections) == 3  # each on a fresh connection, none failed
    finally:
        await client.aclose()
        server.close()


async def test_bodies_stream_both_ways_and_connections_are_kept() -> None:
    seen: list[bytes] = []

    async def echo_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            assert b"transfer-encoding: chunked" in head.lower()
            body = b""
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                data = await reader.readexactly(size + 2)
                if size == 0:
                    break
                body += data[:-2]
            seen.append(body)
            writer.write(b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n")
            for part in (body[:3], body[3:]):
                writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    async def parts() -> AsyncIterator[bytes]:
        for part in (b"Phi", b"\xe1\xba\xbfu ", b"01"):
            yield part

    server, url, connections = await _serve(echo_chunked)
    client = Upstream(url, None, Timeouts.all(5))
    try:
        for _ in range(2):
            answer = await client.request("POST", "/b", [(b"host", b"d")], parts())
            assert answer.status == 201
            assert await _body(answer.body) == "Phiếu 01".encode()
            await answer.close()
        assert seen == ["Phiếu 01".encode()] * 2 and len(connections) == 1
    finally:
        await client.aclose()
        server.close()


async def test_an_answer_without_length_ends_when_the_service_closes() -> None:
    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
        await writer.drain()

    server, url, _ = await _serve(until_close)
    client = Upstream(url, None, Timeouts.all(5))
    try:
        answer = await client.request("GET", "/", [(b"host", b"d")], None)
        assert await _body(answer.body) == b"all of it"
        await answer.close()
    finally:
        server.close()


async def test_garbage_silence_and_nobody_are_told_apart() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"SMTP READY\r\n\r\n")
        await writer.drain()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(10)

    g_server, g_url, _ = await _serve(garbage)
    s_server, s_url, _ = await _serve(silent)
    try:
        with pytest.raises(UpstreamBroken):
            await Upstream(g_url, None, Timeouts.all(5)).request("GET", "/", [], None)
        with pytest.raises(UpstreamTimeout):
            await Upstream(s_url, None, Timeouts.all(0.5)).request("GET", "/", [], None)
        nobody = f"http://127.0.0.1:{free_port()}"
        with pytest.raises(ConnectFailed):
            await Upstream(nobody, None, Timeouts.all(2)).request("GET", "/", [], None)
    finally:
        g_server.close()
        s_server.close()


async def test_a_flood_waits_for_a_slot_then_is_told_the_service_is_busy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from parindex.gateway import upstream

    monkeypatch.setattr(upstream, "MAX_IN_FLIGHT", 2)
    release = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await release.wait()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()

    server, url, connections = await _serve(slow)
    client = Upstream(url, None, Timeouts(connect=0.5, read=10, write=10))
    try:
        held = [asyncio.create_task(client.request("GET", "/", [], None)) for _ in range(2)]
        await eventually(client._slots.locked, timeout=5)  # both hold their slot
        with pytest.raises(ConnectFailed, match="in flight"):
            await client.request("GET", "/", [], None)
        assert len(connections) <= 2  # the third never opened a connection
        release.set()
        for task in held:
            answer = await task
            assert await _body(answer.body) == b"ok"
            await answer.close()
        answer = await client.request("GET", "/", [], None)  # slots are given back
        assert answer.status == 200
        await answer.close()
    finally:
        await client.aclose()
        server.close()
