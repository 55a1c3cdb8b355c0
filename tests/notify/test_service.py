"""notify end to end: real NATS, PostgreSQL and an SMTP server (aiosmtpd) in this process.

Identity and survey are stood in for by request-reply responders on their real subjects, so
what is tested is notify's side of the contract: who gets which e-mail, once, with what in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import text

from contracts import subjects
from contracts.campaign import Campaign
from contracts.events import (
    CampaignDefined,
    DeadlineReached,
    RespondentRegistered,
    RespondentWithdrawn,
    WaveOpened,
    make,
)
from parindex.bus.publish import publish_event
from parindex.clock import AcceleratedClock
from parindex.settings import Settings
from parindex.web.auth import COOKIE, Principal, issue_token, public_pem
from parindex.web.service import create_app
from services.notify.config import NotifyConfig
from services.notify.service import make_service
from tests.waiting import eventually

NAMES = [
    "Nguyễn Văn Anh",
    "Trần Thị Bích Ngọc",
    "Lê Hoàng Dũng",
    "Phạm Thị Hồng Nhung",
    "Huỳnh Quốc Việt",
    "Võ Thị Thu Hương",
    "Đặng Minh Khôi",
    "Bùi Thị Ánh Tuyết",
]


# --- SMTP ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Collector:
    """Keeps every accepted message; mailbox 'flaky@…' gets 451, 'bad@…' gets 550.

    Only the whole mailbox name: a random campaign id inside an address ("t-3bad…") must not
    turn a test's invitations into permanent failures.
    """

    def __init__(self) -> None:
        self.messages: list = []
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        mailbox = address.split("@", 1)[0].lower()
        if mailbox == "flaky":
            return "451 4.3.0 mailbox busy, try later"
        if mailbox == "bad":
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        msg = message_from_bytes(envelope.original_content, policy=default_policy)
        with self.lock:
            self.messages.append(msg)
        return "250 Message accepted for delivery"

    def for_campaign(self, campaign_id: str) -> list:
        with self.lock:
            return [m for m in self.messages if m["X-Parindex-Campaign"] == campaign_id]


class Smtp:
    def __init__(self) -> None:
        self.port = free_port()
        self.collector = Collector()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.collector, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp():
    server = Smtp()
    server.start()
    yield server
    server.stop()


# --- fake identity and survey -------------------------------------------------------------
class Fakes:
    def __init__(self) -> None:
        self.issued: list[dict] = []  # every credential handed out (the test sees the secrets)
        self.nonrespondents: dict[str, list[str]] = {}
        self.key = Ed25519PrivateKey.generate()

    async def credential(self, msg) -> None:
        req = json.loads(msg.data)
        cred = {
            "username": f"u-{req['respondent_id']}",
            "password": f"Mk#{len(self.issued) + 1:04d}-{req['respondent_id']}",
            "full_name": "from identity",
            "email": "ignored@example.vn",
        }
        self.issued.append({**req, **cred})
        await msg.respond(json.dumps(cred).encode())

    async def public_key(self, msg) -> None:
        await msg.respond(json.dumps({"public_key_pem": public_pem(self.key)}).encode())

    async def nonresp(self, msg) -> None:
        req = json.loads(msg.data)
        ids = self.nonrespondents.get(req["campaign_id"], [])
        await msg.respond(json.dumps({"respondent_ids": ids}).encode())

    def admin_cookie(self) -> dict[str, str]:
        return {COOKIE: issue_token(self.key, Principal(subject="admin", role="admin"))}


@pytest.fixture
async def fakes(nc) -> AsyncIterator[Fakes]:
    f = Fakes()
    subs = [
        await nc.subscribe(subjects.RPC_IDENTITY_CREDENTIAL, cb=f.credential),
        await nc.subscribe(subjects.RPC_IDENTITY_PUBLIC_KEY, cb=f.public_key),
        await nc.subscribe(subjects.RPC_SURVEY_NONRESPONDENTS, cb=f.nonresp),
    ]
    await nc.flush()
    yield f
    for s in subs:
        await s.unsubscribe()


# --- campaign and events ------------------------------------------------------------------
def small_campaign(campaign_id: str, deadline: datetime) -> Campaign:
    question = {
        "id": "q1",
        "text": "Mức độ hài lòng?",
        "max_points": "1",
        "options": [
            {"code": "a", "label": "Tốt", "weight": "1"},
            {"code": "b", "label": "Kém", "weight": "0"},
        ],
    }
    form = {
        "rates": "own_unit",
        "criteria": [
            {"code": "c1", "name": "Tiêu chí 1", "max_points": "1", "questions": [question]}
        ],
    }
    return Campaign.model_validate(
        {
            "id": campaign_id,
            "name": "Khảo sát thử nghiệm",
            "province": "Sóc Trăng",
            "year": 2023,
            "units": [
                {"code": "SNV", "name": "Sở Nội vụ", "kind": "department"},
                {"code": "STC", "name": "Sở Tài chính", "kind": "department"},
            ],
            "forms": [
                {"code": "02", "name": "Phiếu 02", "group": "staff", **form},
                {"code": "03", "name": "Phiếu 03", "group": "leaders", **form},
            ],
            "waves": [
                {
                    "id": "w1",
                    "opens_at": (deadline - timedelta(days=12)).isoformat(),
                    "members": [{"form_code": "02"}],
                }
            ],
            "deadline": deadline.isoformat(),
            "reminder_offsets_days": [3, 1],
        }
    )


def deadline_in(days: float) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)


async def emit(js, campaign_id: str, subject: str, payload) -> None:
    await publish_event(js, subject, make(payload, campaign_id=campaign_id, producer="test"))


async def define(
    js, campaign: Campaign, n: int, *, form: str = "02", email=lambda i: None
) -> list[str]:
    c = campaign.id
    await emit(js, c, subjects.campaign(c), CampaignDefined(campaign=campaign))
    ids = []
    for i in range(n):
        rid = f"r{i:03d}"
        ids.append(rid)
        await emit(
            js,
            c,
            subjects.respondent(c, rid),
            RespondentRegistered(
                respondent_id=rid,
                username=f"u-{rid}",
                full_name=NAMES[i % len(NAMES)],
                email=email(i) or f"{rid}.{c}@example.vn",
                unit_code="SNV" if i % 2 == 0 else "STC",
                form_code=form,
            ),
        )
    return ids


async def open_wave(js, campaign: Campaign) -> None:
    c = campaign.id
    await emit(
        js, c, subjects.wave(c, "w1"), WaveOpened(wave_id="w1", opens_at=campaign.waves[0].opens_at)
    )


async def close(js, campaign: Campaign) -> None:
    """Every test ends its campaign so a later test's sender never owes it anything."""
    await emit(
        js, campaign.id, subjects.deadline(campaign.id), DeadlineReached(deadline=campaign.deadline)
    )


async def delivery_events(js, campaign_id: str) -> list[dict]:
    """What the log holds (deduplicated by JetStream), not what was merely published."""
    sub = await js.pull_subscribe(
        f"par.evt.{campaign_id}.delivery.>",
        None,
        stream=subjects.EVENTS_STREAM,
        config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL),
    )
    out: list[dict] = []
    try:
        while True:
            try:
                msgs = await sub.fetch(100, timeout=0.5)
            except (NatsTimeout, TimeoutError):  # nats-py raises either
                return out
            out.extend({"raw": m.data.decode(), **json.loads(m.data)} for m in msgs)
    finally:
        await sub.unsubscribe()


# --- the app ------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def notify_app(
    nats_url: str, pg_url: str, smtp: Smtp, tmp_path: Path, rate: float = 1000, **cfg
) -> AsyncIterator:
    settings = Settings(
        nats_url=nats_url,
        database_url=pg_url,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        state_dir=tmp_path,
        mail_rate_per_s=rate,
    )
    config = NotifyConfig(
        **{
            "poll_s": 0.1,
            "retry_base_s": 0.2,
            "retry_max_s": 0.5,
            "reminder_interval_s": 0.1,
            "survey_url": "https://khaosat.example.vn/",
            **cfg,
        }
    )
    app = create_app(make_service(config), settings)
    async with app.router.lifespan_context(app):
        yield app


def parts(msg) -> tuple[str, str]:
    return (msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content())


# --- tests --------------------------------------------------------------------------------
async def test_wave_opened_sends_each_invitation_once(
    nc, nats_url, pg_url, smtp, fakes, campaign_id, tmp_path
) -> None:
    js = nc.jetstream()
    campaign = small_campaign(campaign_id, deadline_in(10))
    async with notify_app(nats_url, pg_url, smtp, tmp_path) as app:
        try:
            ids = await define(js, campaign, 6)
            # not invited: form 03 is in no wave; r900 withdrew before the wave opened
            await emit(
                js,
                campaign_id,
                subjects.respondent(campaign_id, "r800"),
                RespondentRegistered(
                    respondent_id="r800",
                    username="u8",
                    full_name="X",
                    email="x@example.vn",
                    unit_code="SNV",
                    form_code="03",
                ),
            )
            await emit(
                js,
                campaign_id,
                subjects.respondent(campaign_id, "r900"),
                RespondentRegistered(
                    respondent_id="r900",
                    username="u9",
                    full_name="Y",
                    email="y@example.vn",
                    unit_code="SNV",
                    form_code="02",
                ),
            )
            await emit(
                js,
                campaign_id,
                subjects.respondent(campaign_id, "r900"),
                RespondentWithdrawn(respondent_id="r900"),
            )
            await open_wave(js, campaign)

            await eventually(lambda: len(smtp.collector.for_campaign(campaign_id)) >= 6)
            events = await eventually(lambda: _sent_events(js, campaign_id, 6), timeout=15)
            await asyncio.sleep(0.5)  # nothing more may arrive
            mails = smtp.collector.for_campaign(campaign_id)
            assert len(mails) == 6
            local_deadline = campaign.deadline.astimezone(ZoneInfo("Asia/Ho_Chi_Minh")).strftime(
                "%d/%m/%Y %H:%M"
            )
            rcpts = Counter(str(m["To"].addresses[0].addr_spec) for m in mails)
            assert set(rcpts) == {f"{rid}.{campaign_id}@example.vn" for rid in ids}
            assert set(rcpts.values()) == {1}

            passwords = {
                c["respondent_id"]: c["password"]
                for c in fakes.issued
                if c["campaign_id"] == campaign_id
            }
            for m in mails:
                rid = m["To"].addresses[0].addr_spec.split(".")[0]
                assert str(m["Subject"]) == (
                    "Mời tham gia khảo sát Chỉ số cải cách hành chính (PAR Index) năm 2023"
                )
                assert m["Message-ID"].endswith("@parindex.notify>")
                assert m["X-Parindex-Purpose"] == "invitation:w1"
                plain, html = parts(m)
                name = NAMES[int(rid[1:]) % len(NAMES)]
                for body in (plain, html):
                    assert f"Kính gửi Ông/Bà {name}" in body.replace("<strong>", "").replace(
                        "</strong>", ""
                    )
                    assert "Sở Nội vụ tỉnh Sóc Trăng" in body
                    assert f"u-{rid}" in body
                    assert passwords[rid] in body
                    assert "https://khaosat.example.vn/" in body
                    assert local_deadline in body
            assert {e["data"]["message_id"] for e in events} == {m["Message-ID"] for m in mails}
            for e in events:
                assert e["type"] == "InvitationSent" and e["data"]["wave_id"] == "w1"
                assert not any(p in e["raw"] for p in passwords.values())

            # admin API: counts, then a resend with a fresh credential
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://notify", cookies=fakes.admin_cookie()
            ) as http:
                anon = await httpx.AsyncClient(transport=transport, base_url="http://notify").get(
                    "/api/deliveries", params={"campaign": campaign_id}
                )
                assert anon.status_code == 401
                r = await http.get("/api/deliveries", params={"campaign": campaign_id})
                assert r.status_code == 200, r.text
                counts = {
                    (c["unit_code"], c["purpose"]): c["by_status"] for c in r.json()["counts"]
                }
                assert counts == {
                    ("SNV", "invitation:w1"): {"sent": 3},
                    ("STC", "invitation:w1"): {"sent": 3},
                }
                assert r.json()["failed"] == []
                r = await http.post(
                    "/api/deliveries/resend",
                    json={"campaign_id": campaign_id, "respondent_id": "r001"},
                    headers={"X-Requested-With": "parindex"},
                )
                assert r.status_code == 202, r.text
                assert r.json()["purpose"] == "invitation:resend:1"
                r = await http.post(
                    "/api/deliveries/resend",
                    json={"campaign_id": campaign_id, "respondent_id": "r900"},
                    headers={"X-Requested-With": "parindex"},
                )
                assert r.status_code == 409
            await eventually(lambda: len(smtp.collector.for_campaign(campaign_id)) == 7)
            resent = smtp.collector.for_campaign(campaign_id)[-1]
            assert resent["X-Parindex-Purpose"] == "invitation:resend:1"
            first = next(m for m in mails if m["To"].addresses[0].addr_spec.startswith("r001"))
            assert resent["Message-ID"] != first["Message-ID"]
            new_pw = [
                c["password"]
                for c in fakes.issued
                if c["campaign_id"] == campaign_id and c["respondent_id"] == "r001"
            ]
            assert len(new_pw) == 2 and new_pw[1] in parts(resent)[0]
        finally:
            await close(js, campaign)


async def _sent_events(js, campaign_id: str, n: int):
    events = [e for e in await delivery_events(js, campaign_id) if e["type"] == "InvitationSent"]
    return events if len(events) == n else None


async def test_smtp_outage_is_retried_and_everything_arrives_once(
    nc, nats_url, pg_url, smtp, fakes, campaign_id, tmp_path
) -> None:
    js = nc.jetstream()
    campaign = small_campaign(campaign_id, deadline_in(10))
    smtp.stop()
    async with notify_app(nats_url, pg_url, smtp, tmp_path, max_attempts=100) as app:
        try:
            await define(js, campaign, 8)
            await open_wave(js, campaign)
            rt = app.state.rt

            async def all_retried() -> bool:
                async with rt.sessions() as s:
                    n = await s.scalar(
                        text(
                            "SELECT count(*) FROM notify_outbox WHERE campaign_id = :c "
                            "AND attempts >= 2 AND status = 'pending'"
                        ),
                        {"c": campaign_id},
                    )
                return n == 8

            await eventually(all_retried)
            smtp.start()
            await eventually(lambda: len(smtp.collector.for_campaign(campaign_id)) >= 8)
            await eventually(lambda: _sent_events(js, campaign_id, 8))
            await asyncio.sleep(0.5)
            rcpts = Counter(
                m["To"].addresses[0].addr_spec for m in smtp.collector.for_campaign(campaign_id)
            )
            assert len(rcpts) == 8 and set(rcpts.values()) == {1}
        finally:
            await close(js, campaign)


async def test_permanent_and_repeated_failures_become_delivery_failed(
    nc, nats_url, pg_url, smtp, fakes, campaign_id, tmp_path
) -> None:
    js = nc.jetstream()
    campaign = small_campaign(campaign_id, deadline_in(10))
    emails = {0: "flaky@example.vn", 1: "bad@example.vn"}
    async with notify_app(nats_url, pg_url, smtp, tmp_path, max_attempts=3) as app:
        try:
            await define(js, campaign, 4, email=lambda i: emails.get(i))
            await open_wave(js, campaign)

            async def failed_events():
                evs = [
                    e
                    for e in await delivery_events(js, campaign_id)
                    if e["type"] == "DeliveryFailed"
                ]
                return evs if len(evs) == 2 else None

            evs = {e["data"]["respondent_id"]: e["data"] for e in await eventually(failed_events)}
            assert evs["r000"]["attempts"] == 3 and "451" in evs["r000"]["error"]
            assert evs["r001"]["attempts"] == 1 and "550" in evs["r001"]["error"]
            await eventually(lambda: len(smtp.collector.for_campaign(campaign_id)) == 2)
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://notify",
                cookies=fakes.admin_cookie(),
            ) as http:
                body = (await http.get("/api/deliveries", params={"campaign": campaign_id})).json()
            assert {(f["respondent_id"], f["attempts"]) for f in body["failed"]} == {
                ("r000", 3),
                ("r001", 1),
            }
            assert all(f["error"] for f in body["failed"])
        finally:
            await close(js, campaign)


async def test_restart_mid_batch_sends_none_twice_and_none_missing(
    nc, nats_url, pg_url, smtp, fakes, campaign_id, tmp_path
) -> None:
    js = nc.jetstream()
    campaign = small_campaign(campaign_id, deadline_in(10))
    n = 30
    try:
        async with notify_app(nats_url, pg_url, smtp, tmp_path, rate=15):
            await define(js, campaign, n)
            await open_wave(js, campaign)
            await eventually(lambda: len(smtp.collector.for_campaign(campaign_id)) >= 5)
        first_run = len(smtp.collector.for_campaign(campaign_id))
        assert first_run < n, "the batch should have been interrupted"
        async with notify_app(nats_url, pg_url, smtp, tmp_path, rate=15):
            await eventually(lambda: len(smtp.collector.for_campaign(campaign_id)) >= n)
            await eventually(lambda: _sent_events(js, campaign_id, n))
            await asyncio.sleep(0.5)
        rcpts = Counter(
            m["To"].addresses[0].addr_spec for m in smtp.collector.for_campaign(campaign_id)
        )
        assert len(rcpts) == n and set(rcpts.values()) == {1}
    finally:
        await close(js, campaign)


async def test_reminder_reaches_only_nonrespondents_once(
    nc, nats_url, pg_url, smtp, fakes, campaign_id, tmp_path
) -> None:
    js = nc.jetstream()
    campaign = small_campaign(campaign_id, deadline_in(10))
    clock = AcceleratedClock(datetime.now(UTC), speed=0)  # stands still until set
    async with notify_app(nats_url, pg_url, smtp, tmp_path, clock=clock):
        try:
            await define(js, campaign, 4)
            await open_wave(js, campaign)
            await eventually(lambda: len(smtp.collector.for_campaign(campaign_id)) == 4)
            fakes.nonrespondents[campaign_id] = ["r001", "r003", "r999"]  # r999: not ours
            clock.set(campaign.deadline - timedelta(days=2, hours=12))  # d-3 due, d-1 not yet
            await eventually(lambda: len(smtp.collector.for_campaign(campaign_id)) == 6)
            await asyncio.sleep(0.6)  # several scheduler ticks: still one reminder each
            reminders = [
                m
                for m in smtp.collector.for_campaign(campaign_id)
                if m["X-Parindex-Purpose"] == "reminder:d-3"
            ]
            assert sorted(m["To"].addresses[0].addr_spec.split(".")[0] for m in reminders) == [
                "r001",
                "r003",
            ]
            assert len(smtp.collector.for_campaign(campaign_id)) == 6
            assert str(reminders[0]["Subject"]).startswith("Nhắc nhở: còn 3 ngày")
            assert "chưa nhận được phiếu khảo sát" in parts(reminders[0])[0]

            async def reminder_events():
                evs = [
                    e for e in await delivery_events(js, campaign_id) if e["type"] == "ReminderSent"
                ]
                return evs if len(evs) == 2 else None

            assert {e["data"]["reminder"] for e in await eventually(reminder_events)} == {"d-3"}
            await close(js, campaign)
            clock.set(campaign.deadline - timedelta(hours=12))  # d-1 due, but the log says closed
            await asyncio.sleep(0.6)
            assert len(smtp.collector.for_campaign(campaign_id)) == 6
        finally:
            await close(js, campaign)


async def test_admin_deliveries_page_lists_counts_and_needs_admin(nats_url, pg_url, tmp_path):
    """The HTML admin view answers admins, redirects the anonymous, refuses other roles."""
    import httpx

    from parindex.web.auth import COOKIE, Principal, issue_token, load_or_create_private_key
    from parindex.web.service import create_app
    from services.notify.service import SERVICE

    key = load_or_create_private_key(tmp_path / "k.pem")
    settings = Settings(nats_url=nats_url, database_url=pg_url, state_dir=tmp_path)
    app = create_app(SERVICE, settings)
    async with app.router.lifespan_context(app):
        nc = app.state.rt.nc
        from parindex.web.auth import public_pem

        async def reply(msg):
            await msg.respond(json.dumps({"public_key_pem": public_pem(key)}).encode())

        sub = await nc.subscribe(subjects.RPC_IDENTITY_PUBLIC_KEY, cb=reply)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            anon = await http.get("/deliveries", params={"campaign": "x"})
            # to identity's login, coming back here (docs/architecture.md, decision 25)
            assert anon.status_code == 303
            assert anon.headers["location"] == "/login?next=%2Fdeliveries%3Fcampaign%3Dx"
            for role, status in (("respondent", 403), ("admin", 200)):
                token = issue_token(key, Principal(subject="u", role=role))
                r = await http.get("/deliveries", params={"campaign": "x"}, cookies={COOKIE: token})
                assert r.status_code == status
            assert "Thư mời và nhắc nhở" in r.text
        await sub.unsubscribe()


async def test_reset_request_sends_a_fresh_credential(
    nc, nats_url, pg_url, smtp, fakes, campaign_id, tmp_path
) -> None:
    """A respondent's 'new password' request (identity → notify) is e-mailed once, fresh."""
    js = nc.jetstream()
    campaign = small_campaign(campaign_id, deadline_in(10))
    async with notify_app(nats_url, pg_url, smtp, tmp_path) as app:
        try:
            ids = await define(js, campaign, 1)
            rid = ids[0]
            reply = await eventually(
                lambda: _reset(nc, campaign_id, rid), timeout=15
            )  # the projection must know the respondent first
            assert reply["queued"] == "invitation:reset:1"
            mails = await eventually(lambda: smtp.collector.for_campaign(campaign_id), timeout=15)
            assert len(mails) == 1 and mails[0]["X-Parindex-Purpose"] == "invitation:reset:1"
            issued = [c for c in fakes.issued if c["respondent_id"] == rid]
            assert issued and issued[-1]["password"] in parts(mails[0])[0]
        finally:
            await close(js, campaign)
        unknown = await nc.request(
            subjects.RPC_NOTIFY_RESET,
            json.dumps({"campaign_id": campaign_id, "respondent_id": "nobody"}).encode(),
            timeout=5,
        )
        assert "error" in json.loads(unknown.data)
        del app


async def _reset(nc, campaign_id: str, rid: str):
    body = json.dumps({"campaign_id": campaign_id, "respondent_id": rid}).encode()
    reply = json.loads((await nc.request(subjects.RPC_NOTIFY_RESET, body, timeout=5)).data)
    return reply if "queued" in reply else None
