"""Poison on the log never stops a projection (docs/architecture.md, decision 17).

Every kind of bad event is published straight onto the events stream with nats-py, bypassing
the contracts, and followed by a valid one. All four services start; each of their
projections applies the valid event and each poison event sits in the dead-letter stream with
its reason.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from contextlib import AsyncExitStack
from typing import Any

from sqlalchemy import text

from contracts import subjects
from contracts.events import CampaignDefined, DeliveryFailed, encode, make
from parindex.bus.deadletter import dead_letter_count, dead_letters
from parindex.bus.projection import ProjectionRunner
from parindex.db.engine import make_engine, prepare, sessionmaker
from parindex.settings import Settings
from parindex.telemetry import metrics
from parindex.web.service import create_app
from services.identity.service import SERVICE as IDENTITY
from services.notify.service import SERVICE as NOTIFY
from services.scoring.service import SERVICE as SCORING
from services.survey.service import SERVICE as SURVEY
from tests.foundation.test_projection import VERSIONS
from tests.scoring.test_method import worked_campaign
from tests.waiting import eventually

SERVICES = {"identity": IDENTITY, "survey": SURVEY, "scoring": SCORING, "notify": NOTIFY}
CAMPAIGN_TABLE = {  # each projection's table of campaigns and its key column
    "identity": ("identity_campaigns", "id"),
    "survey": ("survey_campaigns", "id"),
    "scoring": ("scoring_campaigns", "campaign_id"),
    "notify": ("notify_campaigns", "campaign_id"),
}
TOO_BIG = 2**40  # beyond the contracts' bounds (docs/architecture.md, decision 27)
REFUSED = "-refused"  # a campaign id suffix each service's table refuses (a CHECK added below)


def _defined(cid: str, **changes: Any) -> bytes:
    camp = worked_campaign().model_copy(update={"id": cid, **changes})
    return encode(make(CampaignDefined(campaign=camp), campaign_id=cid, producer="t"))


def poison(cid: str) -> dict[str, tuple[bytes, set[str], str]]:
    """name -> (raw message, consumers that must dead-letter it, the subject it is put on)."""
    everyone = set(SERVICES)
    good = _defined(cid)
    name = worked_campaign().name.encode()
    envelope = json.loads(good)
    unknown = {**envelope, "type": "CampaignExploded", "event_id": "e-unknown"}
    invalid = {**envelope, "type": "BallotSubmitted", "event_id": "e-invalid", "data": {}}
    # Built without validation: a producer that bypassed the contracts.
    failed = DeliveryFailed.model_construct(
        respondent_id="r1", purpose="invitation", attempts=TOO_BIG, error="x"
    )
    on = subjects.campaign(cid)
    return {
        "nul in the campaign name": (good.replace(name, b"A\\u0000B", 1), everyone, on),
        "escaped lone surrogate": (good.replace(name, b"A\\ud800B", 1), everyone, on),
        "lone surrogate as raw bytes": (good.replace(name, b"A\xed\xa0\x80B", 1), everyone, on),
        "control character": (good.replace(name, b"A\\u001bB", 1), everyone, on),
        "undecodable json": (b'{"event_id": "x", "type": ', everyone, on),
        "unknown type": (json.dumps(unknown).encode(), everyone, on),
        "payload fails validation": (json.dumps(invalid).encode(), everyone, on),
        # Out of the contracts' bounds: refused on decode by every consumer.
        "version out of range": (_defined(f"{cid}-big", version=TOO_BIG), everyone, on),
        "attempts out of range": (
            encode(make(failed, campaign_id=cid, producer="t")),
            everyone,
            subjects.delivery(cid, "r1"),
        ),
        # Valid, but on another type's subject (docs/architecture.md, decision 47).
        "on another type's subject": (_defined(cid), everyone, subjects.delivery(cid, "r1")),
        # Valid for the contracts, refused by PostgreSQL: the apply fails, not the decode.
        "refused by a table constraint": (
            _defined(cid + REFUSED),
            everyone,
            subjects.campaign(cid + REFUSED),
        ),
    }


async def _refuse_in_every_table(settings: Settings, cid: str) -> None:
    """Migrate each service's database and add a CHECK that refuses one campaign id, so the
    apply of a valid event fails with a constraint violation (deterministic: dead-lettered)."""
    for service, spec in SERVICES.items():
        engine = await prepare(settings.service_database_url(service), spec.versions_dir)
        table, key = CAMPAIGN_TABLE[service]
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        f"ALTER TABLE {table} ADD CONSTRAINT poison_refused "
                        f"CHECK ({key} <> '{cid}{REFUSED}')"
                    )
                )
        finally:
            await engine.dispose()


async def _offset_and_row(settings: Settings, service: str, cid: str) -> tuple[int, bool]:
    engine = make_engine(settings.service_database_url(service))
    table, key = CAMPAIGN_TABLE[service]
    try:
        async with engine.connect() as conn:
            seq = await conn.scalar(
                text("SELECT seq FROM projection_offsets WHERE name = :n"), {"n": service}
            )
            row = await conn.scalar(text(f"SELECT 1 FROM {table} WHERE {key} = :c"), {"c": cid})
        return int(seq or 0), row is not None
    finally:
        await engine.dispose()


async def test_every_projection_dead_letters_poison_and_applies_what_follows(
    nc, nats_url, pg_url, campaign_id, tmp_path
) -> None:
    js = nc.jetstream()
    published: dict[int, tuple[str, set[str], str]] = {}
    for what, (raw, consumers, subject) in poison(campaign_id).items():
        ack = await js.publish(subject, raw, stream=subjects.EVENTS_STREAM)
        published[ack.seq] = (what, consumers, subject)
    valid = await js.publish(
        subjects.campaign(campaign_id), _defined(campaign_id), stream=subjects.EVENTS_STREAM
    )
    failed_before = {s: metrics.events_failed.labels(s)._value.get() for s in SERVICES}

    settings = Settings(nats_url=nats_url, database_url=pg_url, state_dir=tmp_path)
    await _refuse_in_every_table(settings, campaign_id)
    async with AsyncExitStack() as stack:
        for spec in SERVICES.values():
            app = create_app(spec, settings)
            await stack.enter_async_context(app.router.lifespan_context(app))
        for service in SERVICES:

            async def applied(service: str = service) -> bool:
                seq, row = await _offset_and_row(settings, service, campaign_id)
                return seq >= valid.seq and row

            await eventually(applied, timeout=60)

    letters = await dead_letters(js, limit=10_000)
    for seq, (what, consumers, subject) in published.items():
        got = {d.consumer: d for d in letters if d.stream_seq == seq}
        assert set(got) >= consumers, f"{what}: dead-lettered only by {sorted(got)}"
        for consumer in consumers:
            letter = got[consumer]
            assert letter.reason, f"{what}: no reason"
            assert letter.subject == subject
    reasons = {d.reason for d in letters if d.stream_seq in published}
    assert any("U+0000" in r for r in reasons)
    assert any("unknown event type 'CampaignExploded'" in r for r in reasons)
    assert any("less than or equal" in r for r in reasons), reasons
    assert any("poison_refused" in r for r in reasons), reasons
    assert any("CampaignDefined on par.evt." in r and "travels only on" in r for r in reasons)
    for service in SERVICES:  # the valid event was not dead-lettered by anyone
        assert not [d for d in letters if d.stream_seq == valid.seq]
        assert metrics.events_failed.labels(service)._value.get() > failed_before[service]


class _Nothing:
    name = "cli-check"

    async def apply(self, session, events) -> None:
        return None

    async def reset(self, session) -> None:
        return None


async def test_operators_see_dead_letters_in_the_cli(nc, nats_url, db_url, campaign_id) -> None:
    js = nc.jetstream()
    ack = await js.publish(
        subjects.campaign(campaign_id), b"{broken", stream=subjects.EVENTS_STREAM
    )
    engine = await prepare(db_url, VERSIONS)
    try:
        runner = ProjectionRunner(nc, sessionmaker(engine), _Nothing(), batch_size=1000)
        await runner.catch_up()
    finally:
        await engine.dispose()
    letter = next(
        d for d in await dead_letters(js, consumer="cli-check") if d.stream_seq == ack.seq
    )
    assert await dead_letter_count(js) >= 1
    env = {**os.environ, "PARINDEX_NATS_URL": nats_url}

    async def cli(*args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "parindex.cli",
            "deadletters",
            *args,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        out, _ = await proc.communicate()
        assert proc.returncode == 0
        return out.decode()

    listing = await cli("list", "--consumer", "cli-check")
    assert subjects.campaign(campaign_id) in listing and "invalid envelope" in listing
    shown = await cli("show", str(letter.seq))
    assert "consumer:  cli-check" in shown and f"sequence:  {ack.seq}" in shown
    assert "reason:    invalid envelope" in shown and "{broken" in shown
