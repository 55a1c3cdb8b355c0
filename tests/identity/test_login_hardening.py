"""Logins that hold under attack (docs/architecture.md, decision 19); real NATS and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid

import httpx
import uvicorn
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from contracts import subjects
from parindex.runtime.serve import uvicorn_options
from parindex.settings import Settings
from services.identity.accounts import MAX_PAIR_FAILURES, WINDOW_MIN
from tests.identity import test_service as base
from tests.identity.test_service import ADMIN_PASSWORD, ROWS, csrf_of, import_file, login
from tests.waiting import eventually

identity = base.identity  # the running identity service fixture, shared with test_service


async def _respondent(identity: dict, write_xlsx) -> dict:
    client, c, nc = identity["client"], identity["campaign_id"], identity["nc"]
    await login(client, identity["admin"], ADMIN_PASSWORD)
    body = (await import_file(client, c, write_xlsx(ROWS))).json()
    rid = body["respondents"][0]["respondent_id"]
    req = json.dumps({"campaign_id": c, "respondent_id": rid, "purpose": "invitation"}).encode()
    return json.loads((await nc.request(subjects.RPC_IDENTITY_CREDENTIAL, req, timeout=10)).data)


def _client(identity: dict, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=identity["app"], client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_parallel_guesses_cannot_exceed_the_limit(identity, write_xlsx) -> None:
    cred = await _respondent(identity, write_xlsx)
    guesses = [f"guess-{uuid.uuid4().hex[:8]}" for _ in range(39)] + [cred["password"]]
    clients = [_client(identity, "10.9.0.1") for _ in guesses]
    try:
        pages = await asyncio.gather(*(c.get("/login") for c in clients))
        assert all(p.status_code == 200 for p in pages)

        async def attempt(client: httpx.AsyncClient, password: str) -> int:
            r = await client.post(
                "/login",
                data={
                    "username": cred["username"],
                    "password": password,
                    "csrf": csrf_of(client),
                },
            )
            return r.status_code

        codes = await asyncio.gather(
            *(attempt(c, g) for c, g in zip(clients, guesses, strict=True))
        )
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    checked = [c for c in codes if c in (303, 401)]
    assert len(checked) == MAX_PAIR_FAILURES, codes  # the rest were refused unchecked
    assert codes.count(429) == len(guesses) - MAX_PAIR_FAILURES


async def test_failures_from_one_address_do_not_lock_out_others_behind_it(
    identity, write_xlsx
) -> None:
    cred = await _respondent(identity, write_xlsx)
    shared_ip = "10.9.0.2"  # an office behind one NAT, or every request behind a proxy
    async with _client(identity, shared_ip) as sprayer:
        for i in range(40):
            r = await login(sprayer, f"nobody-{i}-{uuid.uuid4().hex[:4]}", "wrong-password-1")
            assert r.status_code == 401
    async with _client(identity, shared_ip) as colleague:
        assert (await login(colleague, cred["username"], cred["password"])).status_code == 303
    # One account guessed from one address is locked for that address, not for its owner.
    async with _client(identity, "10.9.0.3") as attacker:
        for _ in range(MAX_PAIR_FAILURES + 1):
            last = await login(attacker, cred["username"], "wrong-password-2")
        assert last.status_code == 429
    async with _client(identity, "10.9.0.4") as owner:
        assert (await login(owner, cred["username"], cred["password"])).status_code == 303


async def test_nothing_typed_into_the_login_form_is_stored(identity) -> None:
    typed = f"Pa55-{uuid.uuid4().hex}"
    async with _client(identity, "10.9.0.5") as person:
        assert (await login(person, typed, "whatever-1234")).status_code == 401
        assert (await login(person, identity["admin"], typed)).status_code == 401
    async with identity["rt"].sessions() as s:
        rows = (await s.execute(text("SELECT * FROM identity_login_attempts"))).all()
    dump = repr(rows)
    assert rows and typed not in dump and typed.lower() not in dump
    assert identity["admin"] not in dump


async def test_attempts_expire_after_the_lockout_window(identity) -> None:
    """Login times would link people to ballot times: kept only while the lockout needs them."""
    old, recent = f"old-{uuid.uuid4().hex}", f"recent-{uuid.uuid4().hex}"
    async with identity["rt"].sessions.begin() as s:
        for account, minutes in ((old, WINDOW_MIN + 1), (recent, WINDOW_MIN - 5)):
            await s.execute(
                text(
                    "INSERT INTO identity_login_attempts (account, ip, outcome, at) VALUES "
                    "(:a, '10.9.0.6', 'ok', now() - make_interval(mins => :m))"
                ),
                {"a": account, "m": minutes},
            )
    async with _client(identity, "10.9.0.6") as person:
        assert (await login(person, "nobody", "whatever-1234")).status_code == 401
    async with identity["rt"].sessions() as s:
        left = set((await s.execute(text("SELECT account FROM identity_login_attempts"))).scalars())
    assert old not in left and recent in left


async def test_forwarded_for_is_believed_only_from_configured_proxies() -> None:
    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.client.host if request.client else "")

    app = Starlette(routes=[Route("/", echo)])

    async def client_seen(trusted: str) -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        options = uvicorn_options(Settings(trusted_proxies=trusted))
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **options)
        )
        task = asyncio.create_task(server.serve())
        try:
            await eventually(lambda: server.started, timeout=15)
            async with httpx.AsyncClient() as http:
                r = await http.get(
                    f"http://127.0.0.1:{port}/", headers={"X-Forwarded-For": "203.0.113.7"}
                )
            return r.text
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 15)

    assert await client_seen("") == "127.0.0.1"  # any local process could forge the header
    assert await client_seen("127.0.0.1") == "203.0.113.7"
