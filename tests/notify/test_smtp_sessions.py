"""Persistent SMTP sessions (docs/architecture.md, decision 29): reused, never trusted blindly.

The pool against a real aiosmtpd server, then notify's sender end to end: a wave goes out
over a few sessions, and a server restart between waves loses and doubles nothing.
"""

from __future__ import annotations

import threading
from collections import Counter
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller

from contracts import subjects
from contracts.events import RespondentRegistered
from parindex.settings import Settings
from services.notify.mail import DeliveryError, SmtpPool
from tests.notify import test_service as base
from tests.notify.test_service import (
    Smtp,
    _sent_events,
    close,
    deadline_in,
    define,
    emit,
    free_port,
    notify_app,
    open_wave,
    small_campaign,
)
from tests.waiting import eventually

smtp, fakes = base.smtp, base.fakes  # the SMTP server and fake identity fixtures, shared


class Sessions:
    """aiosmtpd handler: which SMTP session carried each accepted message."""

    def __init__(self) -> None:
        self.by_message: list[tuple[int, str]] = []
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address.split("@", 1)[0] == "bad":
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        with self.lock:
            self.by_message.append((id(session), envelope.rcpt_tos[0]))
        return "250 Message accepted for delivery"

    def sessions(self) -> set[int]:
        with self.lock:
            return {s for s, _ in self.by_message}


class Server:
    def __init__(self) -> None:
        self.port = free_port()
        self.handler = Sessions()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def server():
    s = Server()
    s.start()
    yield s
    s.stop()


def message(to: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "khaosat@parindex.local"
    msg["To"] = to
    msg["Subject"] = "Thư mời"
    msg.set_content("Nội dung")
    return msg


def pool(server: Server, *, max_messages: int = 100, check_after_s: float = 2.0) -> SmtpPool:
    settings = Settings(smtp_host="127.0.0.1", smtp_port=server.port)
    return SmtpPool(
        settings, timeout=5, size=2, max_messages=max_messages, check_after_s=check_after_s
    )


@pytest.mark.unit
def test_one_session_carries_many_messages_until_its_limit(server: Server) -> None:
    p = pool(server, max_messages=4)
    try:
        for i in range(10):
            p.send(message(f"r{i}@example.vn"))
    finally:
        p.close()
    assert len(server.handler.by_message) == 10
    assert p.opened == 3  # 4 + 4 + 2: a session is retired after max_messages
    assert len(server.handler.sessions()) == 3


@pytest.mark.unit
def test_a_refused_recipient_fails_once_and_its_session_is_dropped(server: Server) -> None:
    p = pool(server)
    try:
        p.send(message("a@example.vn"))
        with pytest.raises(DeliveryError) as refused:
            p.send(message("bad@example.vn"))
        assert refused.value.permanent and refused.value.reason.startswith("SMTP 550")
        p.send(message("b@example.vn"))
    finally:
        p.close()
    assert [to for _, to in server.handler.by_message] == ["a@example.vn", "b@example.vn"]
    assert p.opened == 2


@pytest.mark.unit
def test_a_session_the_server_dropped_is_not_used_blindly(server: Server) -> None:
    checked = pool(server, check_after_s=0)  # always NOOP first
    fresh = pool(server)  # reuse a session idle for less than 2 s without asking
    try:
        checked.send(message("a@example.vn"))
        fresh.send(message("b@example.vn"))
        server.stop()
        server.start()  # every open session is gone
        checked.send(message("c@example.vn"))  # NOOP failed: a new session, no error
        with pytest.raises(DeliveryError) as lost:
            fresh.send(message("d@example.vn"))
        assert not lost.value.permanent  # the outbox retries it later
        fresh.send(message("d@example.vn"))  # the broken session was dropped
    finally:
        checked.close()
        fresh.close()
    delivered = Counter(to for _, to in server.handler.by_message)
    assert delivered == Counter(["a@example.vn", "b@example.vn", "c@example.vn", "d@example.vn"])


async def test_a_wave_reuses_sessions_and_a_server_restart_loses_nothing(
    nc, nats_url, pg_url, smtp: Smtp, fakes, campaign_id, tmp_path
) -> None:
    js = nc.jetstream()
    campaign = small_campaign(campaign_id, deadline_in(10))
    sessions: list[int] = []
    original = smtp.collector.handle_DATA

    async def counting(server, session, envelope):
        if envelope.rcpt_tos[0].endswith(f"{campaign_id}@example.vn"):
            sessions.append(id(session))
        return await original(server, session, envelope)

    smtp.collector.handle_DATA = counting  # observe which session carried each message
    async with notify_app(nats_url, pg_url, smtp, tmp_path, workers=4, max_attempts=100):
        try:
            await define(js, campaign, 24)
            await open_wave(js, campaign)
            await eventually(lambda: len(smtp.collector.for_campaign(campaign_id)) >= 24, 60)
            assert len(set(sessions)) <= 4, Counter(sessions)  # at most one per worker
            # The server restarts: the sender's idle sessions are dead. Late registrations
            # are still invited, each once.
            smtp.stop()
            smtp.start()
            for i in range(24, 30):
                rid = f"r{i:03d}"
                await emit(
                    js,
                    campaign_id,
                    subjects.respondent(campaign_id, rid),
                    RespondentRegistered(
                        respondent_id=rid,
                        username=f"u-{rid}",
                        full_name="Lê Văn Muộn",
                        email=f"{rid}.{campaign_id}@example.vn",
                        unit_code="SNV",
                        form_code="02",
                    ),
                )
            await eventually(lambda: len(smtp.collector.for_campaign(campaign_id)) >= 30, 60)
            # Each event follows its mail: once all 30 are on the log, a duplicate would show.
            await eventually(lambda: _sent_events(js, campaign_id, 30), 30)
            rcpts = Counter(
                m["To"].addresses[0].addr_spec for m in smtp.collector.for_campaign(campaign_id)
            )
            assert len(rcpts) == 30 and set(rcpts.values()) == {1}
        finally:
            await close(js, campaign)
