"""The identity service end to end: real NATS and PostgreSQL, the app in-process."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from contracts import subjects
from contracts.events import CampaignDefined, decode, make
from parindex.bus.publish import publish_event
from parindex.settings import Settings
from parindex.web.auth import COOKIE, Principal, issue_token, verify_token
from parindex.web.csrf import NONCE_COOKIE, load_key, token_for
from parindex.web.service import create_app
from services.identity.accounts import add_user
from services.identity.service import SERVICE
from tests.identity.conftest import VN_HEADERS, make_campaign
from tests.waiting import eventually

ROWS = [
    VN_HEADERS,
    [1, "Nguyễn Văn An", "an.nguyen@snv.soctrang.gov.vn", "SNV", "03", "0912345678"],
    [2, "Trần Thị Bình", "binh.tt@cucthue.gov.vn", "CTH", "05", None],
    [3, "Phạm Thị Dung", "dung.dbt@gmail.com", None, "01", None],
]
ADMIN_PASSWORD = "admin-pass-0123"


async def stream_messages(nc, campaign_id: str) -> list:
    """Every stored message of the campaign, read with an ephemeral consumer."""
    js = nc.jetstream()
    sub = await js.pull_subscribe(
        subjects.all_events(campaign_id),
        None,
        stream=subjects.EVENTS_STREAM,
        config=ConsumerConfig(
            ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=30
        ),
    )
    out = []
    try:
        while True:
            try:
                out += await sub.fetch(500, timeout=0.5)
            except (NatsTimeout, TimeoutError):  # nats-py raises either once the stream is dry
                return out
    finally:
        await sub.unsubscribe()


def types_of(msgs: list) -> list[str]:
    return [decode(m.data)[0].type for m in msgs]


@pytest_asyncio.fixture
async def identity(nats_url, pg_url, tmp_path, nc, campaign_id) -> AsyncIterator[dict]:
    """A running identity service with one campaign defined and one admin user."""
    # The service name decides the database (parindex_identity), shared by the session's
    # tests; every row is keyed by the test's own campaign, so tests stay independent.
    settings = Settings(nats_url=nats_url, database_url=pg_url, state_dir=tmp_path)
    campaign = make_campaign().model_copy(update={"id": campaign_id})
    await publish_event(
        nc.jetstream(),
        subjects.campaign(campaign_id),
        make(CampaignDefined(campaign=campaign), campaign_id=campaign_id, producer="test"),
    )
    app = create_app(SERVICE, settings)
    async with app.router.lifespan_context(app):
        rt = app.state.rt
        admin = f"admin-{campaign_id}"
        await add_user(rt.sessions, admin, "admin", ADMIN_PASSWORD)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield {
                "app": app,
                "rt": rt,
                "client": client,
                "admin": admin,
                "nc": nc,
                "campaign_id": campaign_id,
                "transport": transport,
            }


async def login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    page = await client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return await client.post(
        "/login", data={"username": username, "password": password, "csrf": csrf}
    )


def csrf_of(client: httpx.AsyncClient) -> str:
    """The form token a page would draw for this client's session or anonymous nonce."""
    app = client._transport.app  # type: ignore[attr-defined]  # the ASGI app under test
    return token_for(
        load_key(app.state.settings),
        session=client.cookies.get(COOKIE),
        nonce=client.cookies.get(NONCE_COOKIE),
    )


async def import_file(client: httpx.AsyncClient, campaign_id: str, content: bytes):
    return await client.post(
        "/api/respondents/import",
        data={"campaign": campaign_id, "csrf": csrf_of(client)},
        files={"file": ("ds.xlsx", content)},
    )


async def test_import_publishes_once_and_reimport_nothing(identity, write_xlsx):
    client, c = identity["client"], identity["campaign_id"]
    assert (await login(client, identity["admin"], ADMIN_PASSWORD)).status_code == 303
    content = write_xlsx(ROWS)
    r = await import_file(client, c, content)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["counts"] == {"new": 3, "updated": 0, "unchanged": 0, "missing": 0}
    assert len(body["respondents"]) == 3  # already in the registry when the call returns
    msgs = await stream_messages(identity["nc"], c)
    assert types_of(msgs).count("RespondentRegistered") == 3

    again = await import_file(client, c, content)
    assert again.status_code == 200
    assert again.json()["counts"]["unchanged"] == 3 and again.json()["published"] == 0
    assert len(await stream_messages(identity["nc"], c)) == len(msgs)

    changed = [list(row) for row in ROWS]
    changed[1][1] = "Nguyễn Văn Ân"
    upd = await import_file(client, c, write_xlsx(changed, name="v2.xlsx"))
    assert upd.json()["counts"]["updated"] == 1
    assert types_of(await stream_messages(identity["nc"], c)).count("RespondentUpdated") == 1

    listing = await client.get("/api/respondents", params={"campaign": c, "unit": "SNV"})
    assert [p["full_name"] for p in listing.json()["respondents"]] == ["Nguyễn Văn Ân"]
    assert "password" not in listing.text and "hash" not in listing.text


async def test_problems_refuse_the_whole_file(identity, write_xlsx):
    client, c = identity["client"], identity["campaign_id"]
    await login(client, identity["admin"], ADMIN_PASSWORD)
    bad = [list(row) for row in ROWS]
    bad[2][2] = "not-an-email"
    r = await import_file(client, c, write_xlsx(bad))
    assert r.status_code == 422
    problems = r.json()["problems"]
    assert [(p["row"], p["code"]) for p in problems] == [(3, "bad_email")]
    assert await stream_messages(identity["nc"], c) != []  # the campaign only
    assert "RespondentRegistered" not in types_of(await stream_messages(identity["nc"], c))


async def test_import_requires_admin_and_csrf(identity, write_xlsx):
    client, c = identity["client"], identity["campaign_id"]
    r = await client.post(
        "/api/respondents/import", data={"campaign": c}, files={"file": ("a.xlsx", b"x")}
    )
    assert r.status_code == 401
    await login(client, identity["admin"], ADMIN_PASSWORD)
    r = await client.post(
        "/api/respondents/import", data={"campaign": c}, files={"file": ("a.xlsx", b"x")}
    )
    assert r.status_code == 403


async def test_credential_login_lockout_and_no_secret_leaks(identity, write_xlsx, caplog):
    caplog.set_level(logging.DEBUG)
    client, c, nc = identity["client"], identity["campaign_id"], identity["nc"]
    await login(client, identity["admin"], ADMIN_PASSWORD)
    body = (await import_file(client, c, write_xlsx(ROWS))).json()
    an = next(p for p in body["respondents"] if p["unit_code"] == "SNV")

    reply = await nc.request(
        subjects.RPC_IDENTITY_CREDENTIAL,
        json.dumps(
            {"campaign_id": c, "respondent_id": an["respondent_id"], "purpose": "invitation"}
        ).encode(),
        timeout=10,
    )
    cred = json.loads(reply.data)
    assert cred["username"] == an["username"] and cred["email"] == an["email"]
    password = cred["password"]
    assert len(password) == 12

    pem = json.loads((await nc.request(subjects.RPC_IDENTITY_PUBLIC_KEY, b"{}", timeout=5)).data)[
        "public_key_pem"
    ]

    async with httpx.AsyncClient(
        transport=identity["transport"], base_url="http://testserver"
    ) as person:
        assert (await login(person, cred["username"], "wrong-password")).status_code == 401
        ok = await login(person, cred["username"], password)
        assert ok.status_code == 303
        assert "httponly" in ok.headers["set-cookie"].lower()
        assert "samesite=lax" in ok.headers["set-cookie"].lower()
        principal = verify_token(pem, person.cookies[COOKIE])
        assert (principal.role, principal.subject, principal.campaign_id) == (
            "respondent",
            an["respondent_id"],
            c,
        )
        assert (principal.unit_code, principal.form_code) == ("SNV", "03")
        portal = await person.get("/")
        assert portal.status_code == 200 and "Nguyễn Văn An" in portal.text

    async with httpx.AsyncClient(
        transport=identity["transport"], base_url="http://testserver"
    ) as attacker:
        for _ in range(6):
            r = await login(attacker, cred["username"], "guess-" + uuid.uuid4().hex[:6])
        assert r.status_code == 429
        locked = await login(attacker, cred["username"], password)
        assert locked.status_code == 429 and "Tài khoản tạm khóa" in locked.text

    listing = await nc.request(
        subjects.RPC_IDENTITY_RESPONDENTS,
        json.dumps({"campaign_id": c, "wave_form_units": [{"form_code": "01"}]}).encode(),
        timeout=5,
    )
    people = json.loads(listing.data)["respondents"]
    assert [p["form_code"] for p in people] == ["01"]

    msgs = await stream_messages(nc, c)
    assert "CredentialsIssued" in types_of(msgs)
    for m in msgs:
        assert password.encode() not in m.data
        assert password not in json.dumps(dict(m.headers or {}))
    assert password not in caplog.text
    assert password not in listing.data.decode()


async def test_a_new_credential_replaces_the_old_one_only_once_used(identity, write_xlsx):
    """A reset or a reminder never silently breaks the invitation's password (decision 19)."""
    client, c, nc = identity["client"], identity["campaign_id"], identity["nc"]
    await login(client, identity["admin"], ADMIN_PASSWORD)
    body = (await import_file(client, c, write_xlsx(ROWS))).json()
    rid = body["respondents"][0]["respondent_id"]

    async def issue(purpose: str) -> dict:
        req = json.dumps({"campaign_id": c, "respondent_id": rid, "purpose": purpose}).encode()
        reply = await nc.request(subjects.RPC_IDENTITY_CREDENTIAL, req, timeout=10)
        return json.loads(reply.data)

    invitation = await issue("invitation")
    reset = await issue("reset")
    async with httpx.AsyncClient(
        transport=identity["transport"], base_url="http://testserver"
    ) as person:
        user = invitation["username"]
        assert (await login(person, user, invitation["password"])).status_code == 303
        assert (await login(person, user, reset["password"])).status_code == 303
        # The new one was used: from now on it alone works.
        assert (await login(person, user, invitation["password"])).status_code == 401
        assert (await login(person, user, reset["password"])).status_code == 303
    unknown = json.dumps({"campaign_id": c, "respondent_id": "r-nobody"}).encode()
    assert "error" in json.loads(
        (await nc.request(subjects.RPC_IDENTITY_CREDENTIAL, unknown, timeout=10)).data
    )


async def test_login_without_csrf_is_refused(identity):
    client = identity["client"]
    r = await client.post(
        "/login", data={"username": identity["admin"], "password": ADMIN_PASSWORD}
    )
    assert r.status_code == 403
    assert "Phiên làm việc" in r.text
    assert COOKIE not in client.cookies


async def test_english_switch_is_remembered(identity):
    client = identity["client"]
    assert "Đăng nhập" in (await client.get("/login")).text
    assert "Log in" in (await client.get("/login?lang=en")).text
    assert "Log in" in (await client.get("/login")).text


async def test_forged_and_expired_tokens_are_refused(identity, nc):
    pem = json.loads((await nc.request(subjects.RPC_IDENTITY_PUBLIC_KEY, b"{}", timeout=5)).data)[
        "public_key_pem"
    ]
    p = Principal(subject="x", role="admin")
    forged = issue_token(Ed25519PrivateKey.generate(), p)
    with pytest.raises(jwt.InvalidTokenError):
        verify_token(pem, forged)
    key = identity["rt"].extras["private_key"]
    expired = issue_token(key, p, ttl_s=-10)
    with pytest.raises(jwt.ExpiredSignatureError):
        verify_token(pem, expired)
    assert verify_token(pem, issue_token(key, p)).role == "admin"
    client = identity["client"]
    client.cookies.set(COOKIE, forged)
    assert (await client.get("/api/respondents", params={"campaign": "x"})).status_code == 401
    assert time.time() > 0


def test_cli_import_and_users_add(nats_url, pg_url, tmp_path, monkeypatch, write_xlsx, capsys):
    """The CLI publishes on its own (no service running) and refuses a file with problems."""
    import asyncio

    import nats

    from parindex.cli import main

    c = f"t-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("PARINDEX_NATS_URL", nats_url)
    monkeypatch.setenv("PARINDEX_DATABASE_URL", pg_url)
    monkeypatch.setenv("PARINDEX_STATE_DIR", str(tmp_path))

    async def define() -> None:
        client = await nats.connect(nats_url)
        campaign = make_campaign().model_copy(update={"id": c})
        await publish_event(
            client.jetstream(),
            subjects.campaign(c),
            make(CampaignDefined(campaign=campaign), campaign_id=c, producer="test"),
        )
        await client.drain()

    asyncio.run(define())
    bad = [list(row) for row in ROWS]
    bad[1][3] = "XYZ"
    (tmp_path / "bad.xlsx").write_bytes(write_xlsx(bad, name="bad.xlsx"))
    assert main(["respondents", "import", str(tmp_path / "bad.xlsx"), "--campaign", c]) == 1
    assert "dòng 2" in capsys.readouterr().out
    (tmp_path / "ok.xlsx").write_bytes(write_xlsx(ROWS, name="ok.xlsx"))
    assert main(["respondents", "import", str(tmp_path / "ok.xlsx"), "--campaign", c]) == 0
    assert re.search(r"mới / new:\s+3", capsys.readouterr().out)
    assert main(["respondents", "import", str(tmp_path / "ok.xlsx"), "--campaign", c]) == 0
    assert re.search(r"không đổi / unchanged: 3", capsys.readouterr().out)
    user = f"fp-{c}"
    args = ["users", "add", user, "--role", "focal_point", "--unit", "SNV"]
    assert main([*args, "--password", "focal-point-pw-1"]) == 0
    assert main([*args, "--password", "focal-point-pw-1"]) == 1  # exists


async def test_reset_request_is_forwarded_to_notify_and_rate_limited(identity, write_xlsx):
    """'Forgot my password': the same answer for any address; notify is asked at most 3×/day."""
    import json

    client, c, nc = identity["client"], identity["campaign_id"], identity["nc"]
    assert (await login(client, identity["admin"], ADMIN_PASSWORD)).status_code == 303
    assert (await import_file(client, c, write_xlsx(ROWS))).status_code == 200
    email = ROWS[1][2]
    forwarded: list[dict] = []

    async def collect(msg):
        forwarded.append(json.loads(msg.data))

    sub = await nc.subscribe(subjects.RPC_NOTIFY_RESET, cb=collect)
    await nc.flush()
    answers = set()
    for address in (email, email.upper(), email, email, "nobody@example.vn"):
        page = await client.get("/reset")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        r = await client.post("/reset", data={"email": address, "csrf": csrf})
        assert r.status_code == 200
        answers.add(r.text.replace(address, ""))
    mine = lambda: [f for f in forwarded if f["campaign_id"] == c]  # noqa: E731
    await eventually(lambda: len(mine()) == 3, timeout=10)
    await nc.flush()
    assert len(mine()) == 3  # the fourth request of the day was not forwarded
    assert {f["respondent_id"] for f in mine()} == {
        r["respondent_id"]
        for r in (await client.get("/api/respondents", params={"campaign": c})).json()[
            "respondents"
        ]
        if r["email"] == email.lower()
    }
    assert len(answers) == 1  # known or unknown address: the same page
    await sub.unsubscribe()
