"""The locked-down bus of `parindex up`, attacked on a real nats-server with the real config.

The server runs exactly what `Stack.start` gives it (parindex.bus.permissions.render_accounts,
the same text as deploy/nats/accounts.conf). Each service user and the auditor try what an
outside tester did on the open bus (issue #14): shorten the log's max_age, delete or purge
it, delete a message, create a stream, read another user's replies (the credential above
all), answer as identity (plant a token-verification key), publish another service's events.
Every attempt must fail and the log must be untouched; the legitimate traffic must still flow.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig

from contracts import subjects
from parindex.bus import permissions
from parindex.bus.connection import (
    StreamsMissing,
    ensure_streams,
    stream_configs,
    wait_for_streams,
)
from parindex.bus.credentials import new_nats_password
from parindex.runtime.embedded import NatsServer
from tests.waiting import eventually

ATTACKERS = (*permissions.SERVICES, "auditor")
# One event subject each service owns (contracts/subjects.py).
OWN_EVENT = {
    "identity": "par.evt.c1.respondent.r1",
    "survey": "par.evt.c1.ballot.p1",
    "scoring": "par.evt.c1.results",
    "notify": "par.evt.c1.delivery.r1",
}
SURVEY_ALSO = ["par.evt.c1.campaign", "par.evt.c1.wave.w1", "par.evt.c1.deadline"]
FORGED_EVENTS = [*OWN_EVENT.values(), *SURVEY_ALSO]
OWNED = {name: {subject} for name, subject in OWN_EVENT.items()}
OWNED["survey"] |= set(SURVEY_ALSO)


@dataclass
class Bus:
    url: str
    passwords: dict[str, str]

    async def connect(self, user: str, errors: list[Exception] | None = None) -> Client:
        async def on_error(exc: Exception) -> None:
            if errors is not None:
                errors.append(exc)

        return await nats.connect(
            self.url,
            user=user,
            password=self.passwords[user],
            inbox_prefix=f"_INBOX_{user}",
            error_cb=on_error,
            allow_reconnect=False,
        )


@pytest.fixture
def locked_server(tmp_path: Path) -> Iterator[Bus]:
    users = ["sys", *(u.name for u in permissions.USERS)]
    passwords = {u: new_nats_password() for u in users}
    server = NatsServer(
        tmp_path / "nats",
        accounts=permissions.render_accounts(),
        passwords={f"NATS_{u.upper()}_PASSWORD": p for u, p in passwords.items()},
    ).start()
    try:
        yield Bus(server.url, passwords)
    finally:
        server.stop()


@pytest_asyncio.fixture
async def bus(locked_server: Bus) -> AsyncIterator[Bus]:
    """Provisioned by the provisioner, with one message per service on the log."""
    prov = await locked_server.connect("provisioner")
    await ensure_streams(prov.jetstream())
    await prov.close()
    for name, subject in OWN_EVENT.items():
        nc = await locked_server.connect(name)
        ack = await nc.jetstream().publish(subject, b"{}")
        assert ack.stream == subjects.EVENTS_STREAM
        await nc.close()
    yield locked_server


async def _log_state(bus: Bus) -> tuple[int, float, bool, bool]:
    nc = await bus.connect("provisioner")
    info = await nc.jetstream().stream_info(subjects.EVENTS_STREAM)
    await nc.close()
    cfg = info.config
    return info.state.messages, cfg.max_age or 0, bool(cfg.deny_delete), bool(cfg.deny_purge)


async def test_anonymous_and_wrong_passwords_are_refused(locked_server: Bus) -> None:
    with pytest.raises(Exception, match="(?i)authorization"):
        await nats.connect(locked_server.url, allow_reconnect=False, connect_timeout=3)
    with pytest.raises(Exception, match="(?i)authorization"):
        await nats.connect(
            locked_server.url, user="survey", password="guess", allow_reconnect=False
        )


async def test_only_the_provisioner_creates_streams(locked_server: Bus) -> None:
    nc = await locked_server.connect("survey")
    with pytest.raises(StreamsMissing):  # a service waits, it never creates
        await wait_for_streams(nc.jetstream(timeout=1), timeout=1.5)
    with pytest.raises((nats.errors.Error, asyncio.TimeoutError)):
        await ensure_streams(nc.jetstream(timeout=1))
    await nc.close()
    prov = await locked_server.connect("provisioner")
    await ensure_streams(prov.jetstream())
    await ensure_streams(prov.jetstream())  # idempotent: an update to the same config
    nc = await locked_server.connect("survey")
    await wait_for_streams(nc.jetstream(), timeout=5)
    await nc.close()
    # the provisioner itself can neither delete nor purge, nor publish events
    js = prov.jetstream(timeout=1)
    for attack in (js.delete_stream(subjects.EVENTS_STREAM), js.purge_stream(subjects.DLQ_STREAM)):
        with pytest.raises((nats.errors.Error, asyncio.TimeoutError)):
            await attack
    with pytest.raises((nats.errors.Error, asyncio.TimeoutError)):
        await js.publish("par.evt.c1.ballot.p9", b"{}")
    await prov.close()


@pytest.mark.parametrize("user", ATTACKERS)
async def test_no_service_user_can_edit_delete_or_purge_the_log(bus: Bus, user: str) -> None:
    before = await _log_state(bus)
    assert before == (len(OWN_EVENT), 0, True, True)
    nc = await bus.connect(user)
    js = nc.jetstream(timeout=1)
    # The tester's attack: the log's own config with only max_age changed (2 s). On an open
    # server this succeeds; so does "create" and "delete".
    log_config = stream_configs(1)[0]
    shortened = dataclasses.replace(log_config, max_age=2.0, duplicate_window=1.0)
    attacks = {
        "update max_age": js.update_stream(shortened),
        "update subjects": js.update_stream(dataclasses.replace(log_config, subjects=["par.>"])),
        "update limits": js.update_stream(dataclasses.replace(log_config, max_msgs=1)),
        "create": js.add_stream(StreamConfig(name="EVIL", subjects=["evil.>"])),
        "delete": js.delete_stream(subjects.EVENTS_STREAM),
        "delete dlq": js.delete_stream(subjects.DLQ_STREAM),
        "purge": js.purge_stream(subjects.EVENTS_STREAM),
        "delete message": js.delete_msg(subjects.EVENTS_STREAM, 1),
    }
    results = await asyncio.gather(*attacks.values(), return_exceptions=True)
    succeeded = [
        name for name, r in zip(attacks, results, strict=True) if not isinstance(r, Exception)
    ]
    assert not succeeded, f"{user} could {succeeded}"
    await nc.close()
    assert await _log_state(bus) == before


@pytest.mark.parametrize("user", ATTACKERS)
async def test_each_user_publishes_only_its_own_events(bus: Bus, user: str) -> None:
    errors: list[Exception] = []
    nc = await bus.connect(user, errors)
    js = nc.jetstream(timeout=1)
    forged = [s for s in FORGED_EVENTS if s not in OWNED.get(user, set())]
    forged = [s.replace("c1", "forged") for s in forged]
    results = await asyncio.gather(*(js.publish(s, b"{}") for s in forged), return_exceptions=True)
    accepted = [s for s, r in zip(forged, results, strict=True) if not isinstance(r, Exception)]
    assert not accepted, f"{user} published {accepted}"
    for subject in forged:  # nor as a plain publish, without waiting for an ack
        await nc.publish(subject, b"{}")
    await nc.flush()
    await eventually(lambda: any("permissions violation" in str(e).lower() for e in errors))
    if user in OWN_EVENT:  # its own subject still works
        ack = await js.publish(OWN_EVENT[user].replace("c1", "c2"), b"{}")
        assert ack.seq > len(OWN_EVENT)
    await nc.close()
    prov = await bus.connect("provisioner")
    info = await prov.jetstream().stream_info(
        subjects.EVENTS_STREAM, subjects_filter="par.evt.forged.>"
    )
    assert not info.state.subjects, f"forged events reached the log: {info.state.subjects}"
    await prov.close()


async def test_the_credential_reaches_only_its_requester(bus: Bus) -> None:
    identity = await bus.connect("identity")

    async def answer(msg) -> None:
        await msg.respond(b"new-password-of-r1")

    await identity.subscribe(subjects.RPC_IDENTITY_CREDENTIAL, cb=answer)
    await identity.flush()

    snoopers: dict[str, tuple[Client, list[Exception], list[bytes]]] = {}
    for user in ("survey", "scoring", "auditor", "provisioner"):
        errors: list[Exception] = []
        seen: list[bytes] = []
        nc = await bus.connect(user, errors)

        async def grab(msg, seen=seen) -> None:
            seen.append(msg.data)

        for pattern in ("_INBOX_notify.>", "_INBOX.>", ">", subjects.RPC_IDENTITY_CREDENTIAL):
            await nc.subscribe(pattern, cb=grab)
        await nc.flush()
        snoopers[user] = (nc, errors, seen)

    notify = await bus.connect("notify")
    reply = await notify.request(subjects.RPC_IDENTITY_CREDENTIAL, b"{}", timeout=5)
    assert reply.data == b"new-password-of-r1"
    assert reply.subject.startswith("_INBOX_notify.")
    await notify.flush()
    for user, (nc, errors, seen) in snoopers.items():
        await eventually(lambda errors=errors: len(errors) >= 4)
        assert all("permissions violation" in str(e).lower() for e in errors), (user, errors)
        assert seen == [], f"{user} read {seen}"
        # nor may it ask for a credential itself
        with pytest.raises((nats.errors.Error, asyncio.TimeoutError)):
            await nc.request(subjects.RPC_IDENTITY_CREDENTIAL, b"{}", timeout=1)
        await nc.close()
    await notify.close()
    await identity.close()


@pytest.mark.parametrize("user", ["survey", "scoring", "notify", "auditor"])
async def test_nobody_but_identity_answers_for_the_token_key(bus: Bus, user: str) -> None:
    """A planted verification key would make a self-signed admin token valid."""
    errors: list[Exception] = []
    attacker = await bus.connect(user, errors)

    async def plant(msg) -> None:
        await msg.respond(b'{"public_key_pem": "attacker"}')

    await attacker.subscribe(subjects.RPC_IDENTITY_PUBLIC_KEY, cb=plant)
    await attacker.subscribe("par.rpc.identity.>", cb=plant)
    await attacker.flush()
    await eventually(lambda: len(errors) >= 2)
    identity = await bus.connect("identity")

    async def real(msg) -> None:
        await msg.respond(b'{"public_key_pem": "identity"}')

    await identity.subscribe(subjects.RPC_IDENTITY_PUBLIC_KEY, cb=real)
    await identity.flush()
    asker = await bus.connect("scoring" if user != "scoring" else "survey")
    for _ in range(10):
        reply = await asker.request(subjects.RPC_IDENTITY_PUBLIC_KEY, b"", timeout=5)
        assert reply.data == b'{"public_key_pem": "identity"}'
    for nc in (attacker, identity, asker):
        await nc.close()


async def test_services_still_work_under_the_lockdown(bus: Bus) -> None:
    """What the services do every day: publish, read back, consume, ask identity."""
    for user in (*permissions.SERVICES, "auditor"):
        nc = await bus.connect(user)
        js = nc.jetstream()
        await wait_for_streams(js, timeout=5)
        info = await js.stream_info(subjects.EVENTS_STREAM)
        assert info.state.messages >= len(OWN_EVENT)
        msg = await js.get_last_msg(subjects.EVENTS_STREAM, "par.evt.c1.results")
        assert msg.seq == 3
        sub = await js.pull_subscribe(
            "par.evt.>",
            None,
            stream=subjects.EVENTS_STREAM,
            config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL),
        )
        got = await sub.fetch(len(OWN_EVENT), timeout=5)
        assert [m.subject for m in got] == list(OWN_EVENT.values())
        await sub.unsubscribe()
        if user != "auditor":  # dead letters go to their own stream
            ack = await js.publish(subjects.dead_letter(f"{user}-test"), b"{}")
            assert ack.stream == subjects.DLQ_STREAM
        await nc.close()


@pytest.mark.timeout(90)
async def test_the_auditor_audits_a_log_holding_poison(
    bus: Bus, pg_url: str, tmp_path: Path
) -> None:
    """The auditor may publish nothing, dead letters included: the replay names what it refuses
    instead of failing on a refused publish (decision 47)."""
    from parindex.settings import Settings
    from services.scoring.audit import audit

    survey = await bus.connect("survey")
    await survey.jetstream().publish("par.evt.c2.ballot.p1", b"{}")
    await survey.close()
    settings = Settings(database_url=pg_url, state_dir=tmp_path)
    nc = await bus.connect("auditor")
    try:
        clean = await audit(nc, settings, "c2", compare_live=False)
        # c1's results subject holds each service's `{}` of the fixture: named, and FAILED
        forged = await audit(nc, settings, "c1", compare_live=False)
    finally:
        await nc.close()
    assert clean.ok, clean.render()
    assert len(clean.refused) == 1 and " on par.evt.c2.ballot.p1: " in clean.refused[0]
    refused = "\n".join(forged.refused)
    for subject in OWN_EVENT.values():
        assert f" on {subject}: " in refused, refused
    assert "par.evt.c1.results holds an unreadable event" in forged.differences[0]
    assert not forged.ok
