"""The projection runner on real NATS and PostgreSQL: batches, offsets, exactly-once, DLQ."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import subjects
from contracts.events import CampaignClosed, make
from parindex.bus.projection import Event, ProjectionRunner, Rejected
from parindex.bus.publish import publish_event
from parindex.db.engine import prepare, sessionmaker
from tests.waiting import eventually

VERSIONS = Path(__file__).parents[2] / "services" / "scoring" / "storage" / "versions"


class Counting:
    """Stores one row per event; a duplicate application would violate the primary key."""

    name = "counting"

    def __init__(self, campaign_id: str, fail_after_batches: int | None = None) -> None:
        self.campaign_id = campaign_id
        self.batches = 0
        self.fail_after_batches = fail_after_batches

    async def apply(self, session: AsyncSession, events: Sequence[Event]) -> None:
        await session.execute(
            text("CREATE TABLE IF NOT EXISTS seen (seq bigint PRIMARY KEY, reason text)")
        )
        for e in events:
            if e.envelope.campaign_id != self.campaign_id:
                continue
            if e.payload.reason == "poison":  # type: ignore[attr-defined]  # only CampaignClosed
                raise Rejected(e.seq, "poison pill")
            await session.execute(
                text("INSERT INTO seen (seq, reason) VALUES (:s, :r)"),
                {"s": e.seq, "r": e.payload.reason},  # type: ignore[attr-defined]  # as above
            )
        self.batches += 1
        if self.fail_after_batches is not None and self.batches >= self.fail_after_batches:
            raise RuntimeError("killed mid-run")  # rolls back this batch with its offset

    async def reset(self, session: AsyncSession) -> None:
        await session.execute(text("DROP TABLE IF EXISTS seen"))


async def _publish(js, campaign_id: str, n: int, reason: str = "ok") -> None:
    await asyncio.gather(
        *(
            publish_event(
                js,
                subjects.campaign(campaign_id),
                make(CampaignClosed(reason=reason), campaign_id=campaign_id, producer="t"),
            )
            for _ in range(n)
        )
    )


async def _count(sessions) -> int:
    async with sessions() as s:
        return int(await s.scalar(text("SELECT count(*) FROM seen")))


async def test_exactly_once_when_killed_between_batches(nc, db_url, campaign_id) -> None:
    js = nc.jetstream()
    await _publish(js, campaign_id, 1000)
    engine = await prepare(db_url, VERSIONS)
    sessions = sessionmaker(engine)
    subject = subjects.all_events(campaign_id)

    crashing = ProjectionRunner(
        nc,
        sessions,
        Counting(campaign_id, fail_after_batches=3),
        filter_subject=subject,
        batch_size=100,
        catch_up_batch=100,  # catch-up batches are larger by default (issue #18)
    )
    with pytest.raises(RuntimeError, match="killed"):
        await crashing._consume(
            until_seq=(await js.stream_info(subjects.EVENTS_STREAM)).state.last_seq
        )
    assert await _count(sessions) == 200  # two committed batches; the third rolled back

    fresh = ProjectionRunner(
        nc, sessions, Counting(campaign_id), filter_subject=subject, batch_size=100
    )
    await fresh.catch_up()
    assert await _count(sessions) == 1000

    # rebuild from sequence 1 gives the same rows
    await fresh.reset()
    await fresh.catch_up()
    assert await _count(sessions) == 1000
    await engine.dispose()


async def test_malformed_and_rejected_messages_go_to_the_dead_letter_subject(
    nc, db_url, campaign_id
) -> None:
    js = nc.jetstream()
    engine = await prepare(db_url, VERSIONS)
    sessions = sessionmaker(engine)
    subject = subjects.all_events(campaign_id)
    runner = ProjectionRunner(
        nc, sessions, Counting(campaign_id), filter_subject=subject, batch_size=50
    )
    task = asyncio.create_task(runner.run())
    try:
        await _publish(js, campaign_id, 3)
        await js.publish(
            subjects.campaign(campaign_id), b"{not json", stream=subjects.EVENTS_STREAM
        )
        await _publish(js, campaign_id, 1, reason="poison")
        await _publish(js, campaign_id, 2)
        await eventually(lambda: _count_is(sessions, 5), timeout=20)
        dlq = await js.pull_subscribe(
            subjects.dead_letter("counting"), None, stream=subjects.DLQ_STREAM
        )
        msgs = await dlq.fetch(10, timeout=5)
        reasons = {
            m.headers["Parindex-Dlq-Reason"]
            for m in msgs
            if campaign_id in m.headers["Parindex-Dlq-Subject"]
        }
        assert any("invalid envelope" in r for r in reasons)
        assert "poison pill" in reasons
    finally:
        runner.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await engine.dispose()


async def _count_is(sessions, n: int) -> bool:
    try:
        return await _count(sessions) == n
    except Exception:
        return False
