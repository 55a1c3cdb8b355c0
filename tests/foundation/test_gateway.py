"""The front door of `parindex up` (docs/architecture.md, decision 30).

Three layers: the route table and the port choice (no server); the proxy between a real client
and a real echo server (headers, bodies, limits, a dead or slow upstream); and the real stack,
where every Caddyfile route must reach its service and nothing internal or spoofed gets through.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from parindex.gateway.__main__ import UVICORN_OPTIONS
from parindex.gateway.proxy import Gateway
from parindex.gateway.routes import ROUTES, service_for
from parindex.gateway.upstream import Timeouts
from parindex.runtime.embedded import free_port
from parindex.runtime.ports import PortTaken, choose_ports, read_ports
from parindex.settings import Settings
from parindex.web.edge import Edge
from tests.child_env import child_env

# ---------------------------------------------------------------- the table, no server


@pytest.mark.unit
def test_route_table_matches_like_caddy() -> None:
    assert service_for("/") == "identity"
    assert service_for("/login") == "identity"
    assert service_for("/loginx") is None  # exact unless it ends in *
    assert service_for("/survey") == service_for("/survey/x") == "survey"
    assert service_for("/SURVEY") == "survey"  # Caddy's path matcher ignores case
    assert service_for("/export/results.xlsx") == "scoring"
    assert service_for("/publish") == "scoring"
    assert service_for("/api/deliveries/resend") == "notify"
    for internal in ("/metrics", "/readyz", "/healthz", "/docs", "/openapi.json", "/nope"):
        assert service_for(internal) is None, internal
    every = [p for r in ROUTES for p in r.paths]
    assert len(every) == len(set(every)), "a path is routed twice"


@pytest.mark.unit
def test_ports_are_chosen_once_and_kept(tmp_path: Path) -> None:
    warnings: list[str] = []
    taken: set[int] = set()

    def choose(requested: int | None = None) -> dict[str, int]:
        return choose_ports(
            tmp_path, ["identity", "survey"], requested,
            is_free=lambda p: p not in taken, warn=warnings.append,
        )  # fmt: skip

    first = choose()
    assert first["gateway"] == 8000  # the default, when it is free on the first run
    assert read_ports(tmp_path) == first
    assert choose() == first and not warnings

    # Another program took the front door's port: stop and say which and how, never move.
    taken.add(8000)
    with pytest.raises(PortTaken, match=r"port 8000.*ports\.json.*--port"):
        choose()
    assert read_ports(tmp_path) == first

    # --port moves it on purpose, and says that earlier links still name the old port.
    moved = choose(requested=8123)
    assert moved["gateway"] == 8123 and read_ports(tmp_path)["gateway"] == 8123
    assert any("8000" in w and "8123" in w for w in warnings)
    with pytest.raises(PortTaken, match="--port"):
        choose(requested=8000)

    # An internal port in use moves quietly (it is in no link) and is recorded again.
    taken.add(first["survey"])
    again = choose()
    assert again["gateway"] == 8123 and again["identity"] == first["identity"]
    assert again["survey"] != first["survey"] and read_ports(tmp_path) == again


@pytest.mark.unit
def test_first_run_takes_another_port_when_8000_is_busy(tmp_path: Path) -> None:
    ports = choose_ports(tmp_path, ["identity"], is_free=lambda p: p != 8000)
    assert ports["gateway"] != 8000 and read_ports(tmp_path)["gateway"] == ports["gateway"]


# ---------------------------------------------------------------- proxy against an echo server


class Server:
    """A uvicorn server in a thread, on a free loopback port."""

    def __init__(self, app: Any, **options: Any) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                           lifespan="off", **options)
        )  # fmt: skip
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            assert self.thread.is_alive(), "server thread died"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Echo:
    """Answers with what it received: method, path, query, headers, body length."""

    def __init__(self) -> None:
        self.requests = 0
        self.complete = 0  # requests whose whole body arrived
        self.delay = 0.0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        import asyncio

        self.requests += 1
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        self.complete += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        body = json.dumps(
            {
                "method": scope["method"],
                "path": scope["path"],
                "query": scope["query_string"].decode(),
                "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
                "size": size,
            }
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"x-echo", b"1")]
        if scope["query_string"] == b"login":
            headers.append((b"set-cookie", b"session=person-a; HttpOnly; Path=/"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})  # fmt: skip


@pytest.fixture
def echo_door() -> Iterator[tuple[Echo, Server, str]]:
    echo = Echo()
    with Server(echo) as upstream:
        settings = replace(Settings(), max_body_bytes=1000, max_import_bytes=5000)
        gateway = Gateway(
            {"survey": upstream.url, "identity": upstream.url},
            timeout=Timeouts.all(2.0),
            body_timeout=1.5,
        )
        with Server(Edge(gateway, settings), **UVICORN_OPTIONS) as door:
            yield echo, upstream, door.url


def _headers(answer: httpx.Response) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in answer.json()["headers"]:
        out.setdefault(k, []).append(v)
    return out


def test_forwarded_headers_are_the_gateways_own(echo_door) -> None:
    echo, _, door = echo_door
    spoof = {
        "X-Forwarded-For": "203.0.113.7",
        "X-Real-IP": "203.0.113.8",
        "Forwarded": "for=203.0.113.9",
        "X-Forwarded-Proto": "https",
        "Connection": "keep-alive, X-Secret",
        "X-Secret": "for this hop only",
    }
    r = httpx.get(f"{door}/survey/a%20b?x=1&y=%C3%A9", headers=spoof)
    assert r.status_code == 200 and r.headers["x-echo"] == "1"
    seen = r.json()
    assert (seen["path"], seen["query"]) == ("/survey/a b", "x=1&y=%C3%A9")
    h = _headers(r)
    # Overwritten, not appended to: the one value is the client's own address.
    assert h["x-forwarded-for"] == ["127.0.0.1"]
    assert h["x-forwarded-proto"] == ["http"]
    assert h["host"] == [door.removeprefix("http://")]  # links the service builds name the door
    for dropped in ("x-real-ip", "forwarded", "x-secret"):
        assert dropped not in h, dropped
    # The gateway's answer carries the edge's security headers too.
    assert r.headers["x-frame-options"] == "DENY"


def test_one_persons_cookies_never_reach_anothers_request(echo_door) -> None:
    _, _, door = echo_door
    with httpx.Client() as a:
        r = a.get(f"{door}/login?login")
        assert r.headers["set-cookie"].startswith("session=person-a")  # passed to its owner
        assert ["cookie", "session=person-a"] in a.get(f"{door}/survey").json()["headers"]
    r = httpx.get(f"{door}/survey")  # somebody else, without cookies
    assert "cookie" not in _headers(r)


def test_bodies_stream_through_and_limits_hold(echo_door) -> None:
    echo, _, door = echo_door
    r = httpx.post(f"{door}/api/ballots", content=b"x" * 900)
    assert r.status_code == 200 and r.json()["size"] == 900

    def chunks(n: int) -> Iterator[bytes]:
        for _ in range(n):
            yield b"y" * 100

    r = httpx.post(f"{door}/api/ballots", content=chunks(9))  # chunked, under the limit
    assert r.status_code == 200 and r.json()["size"] == 900
    before = echo.requests
    r = httpx.post(f"{door}/api/ballots", content=b"x" * 1001)  # declared: never sent on
    assert r.status_code == 413
    assert echo.requests == before
    r = httpx.post(f"{door}/api/ballots", content=chunks(30))  # counted while streaming
    assert r.status_code == 413
    # The respondent-list import has the larger limit, as in the services (decision 22).
    r = httpx.post(f"{door}/admin/import", content=b"z" * 4000)
    assert r.status_code == 200 and r.json()["size"] == 4000


def test_a_trickled_body_is_cut_off_in_bounded_time(echo_door) -> None:
    echo, _, door = echo_door
    before = echo.complete
    with socket.create_connection(("127.0.0.1", int(door.rsplit(":", 1)[1])), timeout=10) as raw:
        raw.sendall(b"POST /api/ballots HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        started = time.monotonic()
        answer = raw.recv(200)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert time.monotonic() - started < 8
    assert echo.complete == before  # the service never took half a ballot for a whole one


def test_unrouted_and_internal_paths_are_404_here(echo_door) -> None:
    echo, _, door = echo_door
    before = echo.requests
    for path in ("/metrics", "/readyz", "/healthz", "/nope", "/survey/../metrics", "/mail/"):
        r = httpx.get(f"{door}{path}", headers={"Accept": "text/html"})
        assert r.status_code == 404, path
        assert "Không tìm thấy" in r.text
    raw = socket.create_connection(("127.0.0.1", int(door.rsplit(":", 1)[1])))
    raw.sendall(b"GET /survey/%2e%2e/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.recv(100).startswith(b"HTTP/1.1 404")
    raw.close()
    assert echo.requests == before
    assert httpx.get(f"{door}/nope").json() == {"detail": "Not Found"}


def test_slow_or_stopped_upstream_is_a_page_not_a_traceback(echo_door) -> None:
    echo, upstream, door = echo_door
    echo.delay = 3.0  # beyond the gateway's 2 s read timeout
    r = httpx.get(f"{door}/survey", headers={"Accept": "text/html"}, timeout=10)
    assert r.status_code == 504 and "quá chậm" in r.text
    echo.delay = 0.0
    upstream.__exit__()
    r = httpx.get(f"{door}/survey", headers={"Accept": "text/html"})
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert "tạm thời gián đoạn" in r.text and "Traceback" not in r.text
    r = httpx.get(f"{door}/survey?lang=en", headers={"Accept": "text/html"})
    assert "Temporarily unavailable" in r.text
    r = httpx.post(f"{door}/api/ballots", json={"a": 1})
    assert r.status_code == 503 and r.json()["detail"].startswith("service unavailable")


# ---------------------------------------------------------------- the real stack


# A concrete path for each route pattern, when the pattern itself is not a page.
SAMPLE = {"/export*": "/export/results.csv"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from parindex.runtime.up import Stack

    s = Stack(
        state_dir=tmp_path_factory.mktemp("gateway") / "state",
        port=free_port(),
        extra_env={"PARINDEX_ARGON2_MEMORY_KIB": "4096", "PARINDEX_ARGON2_TIME": "1"},
    )
    try:
        s.start(timeout=90)
        yield s
    finally:
        s.stop()


def test_every_route_reaches_its_service(stack) -> None:
    endpoints = json.loads((stack.state_dir / "endpoints.json").read_text())
    door, internal = endpoints["gateway"], endpoints["internal"]
    assert set(endpoints["services"].values()) == {door}
    with httpx.Client(timeout=30) as http:
        for route in ROUTES:
            for pattern in route.paths:
                path = SAMPLE.get(pattern, pattern.rstrip("*"))
                direct = http.get(internal[route.service] + path)
                assert direct.status_code != 404, f"{pattern}: add a SAMPLE path ({path} is 404)"
                via = http.get(door + path)
                assert via.status_code == direct.status_code, (pattern, via.text[:200])
                # Redirects name the door, never a service's own port.
                inner_port = internal[route.service].rsplit(":", 1)[1]
                door_port = door.rsplit(":", 1)[1]
                where = via.headers.get("location", "")
                assert inner_port not in where, (pattern, where)
                there = direct.headers.get("location", "").replace(inner_port, door_port)
                assert where == there, pattern
                assert via.headers.get("content-type") == direct.headers.get("content-type")
        for path in ("/metrics", "/readyz", "/healthz"):
            assert http.get(internal["scoring"] + path).status_code == 200, path
            assert http.get(door + path).status_code == 404, path
        assert http.get(door + "/mail/api/messages").json() == []


def test_a_spoofed_address_does_not_reach_the_service(stack) -> None:
    """Five failures from one client lock the account for it, whatever X-Forwarded-For says;
    another client (127.0.0.3) is still let in: the service sees the real address."""
    door = f"http://127.0.0.1:{stack.gateway_port}"
    env = child_env()
    env.update(stack.envs["identity"])
    add = subprocess.run(
        [sys.executable, "-m", "parindex.cli", "users", "add", "spoof-test", "--role", "admin",
         "--password", "right-password-1"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert add.returncode == 0, add.stderr

    def login(http: httpx.Client, password: str, spoof: str) -> int:
        page = http.get(f"{door}/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token, page.text[:300]
        r = http.post(
            f"{door}/login",
            data={"username": "spoof-test", "password": password, "csrf": token.group(1)},
            headers={"X-Forwarded-For": spoof},
        )
        return r.status_code

    with httpx.Client(timeout=30) as http:
        for i in range(5):
            assert login(http, "wrong", f"198.51.100.{i}") == 401
        assert login(http, "right-password-1", "198.51.100.99") == 429
    other = httpx.HTTPTransport(local_address="127.0.0.3")
    with httpx.Client(timeout=30, transport=other) as http:
        assert login(http, "right-password-1", "198.51.100.0") == 303
        assert http.get(f"{door}/").status_code == 200  # signed in: the portal
    # Somebody else, without cookies, is not signed in by the door on their behalf.
    r = httpx.get(f"{door}/", timeout=30)
    assert r.status_code == 303 and r.headers["location"].endswith("/login")


def test_over_the_limit_is_413_through_the_door(stack) -> None:
    door = f"http://127.0.0.1:{stack.gateway_port}"
    big = b"{" + b" " * 2_000_001 + b"}"
    r = httpx.post(f"{door}/api/ballots", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_a_stopped_service_is_a_503_page(stack) -> None:
    door = f"http://127.0.0.1:{stack.gateway_port}"
    proc = stack.procs["notify"]
    proc.kill()
    proc.wait(15)
    try:
        r = httpx.get(f"{door}/deliveries", headers={"Accept": "text/html"}, timeout=15)
        assert r.status_code == 503
        assert "Hệ thống tạm thời gián đoạn" in r.text and "Traceback" not in r.text
        r = httpx.get(f"{door}/api/deliveries", timeout=15)
        assert r.status_code == 503 and "detail" in r.json()
        assert httpx.get(f"{door}/login", timeout=15).status_code == 200  # the rest still works
    finally:
        stack.restart_child("notify")
        stack.wait_ready(60)
