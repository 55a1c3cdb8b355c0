"""Scoring's catch-up leaves results to its last batch, and never leaves them stale.

docs/architecture.md, decision 43: a catch-up batch with more to follow marks the campaign in
scoring_stale_results instead of recomputing its results; the last batch, or any live batch
after an interrupted catch-up, recomputes every marked campaign.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text

from contracts import subjects
from contracts.events import make
from parindex.bus.projection import ProjectionRunner
from parindex.bus.publish import publish_event
from parindex.db.engine import prepare, sessionmaker
from parindex.settings import database_url_for
from services.scoring.method import compute_results, digest, result_rows
from services.scoring.projection import ScoringProjection, load_campaign, load_rows, load_tally
from services.scoring.service import VERSIONS
from tests.scoring.test_method import WORKED_DIGEST, ballot
from tests.scoring.test_service import _publish_campaign_with_late_ballot
from tests.waiting import eventually


async def _stale(sessions) -> list[str]:
    async with sessions() as session:
        return list(await session.scalars(text("SELECT campaign_id FROM scoring_stale_results")))


async def _consistent(sessions, cid: str) -> bool:
    """The stored results are those of the stored counters."""
    async with sessions() as session:
        campaign = await load_campaign(session, cid)
        assert campaign is not None
        expected = result_rows(compute_results(campaign, await load_tally(session, cid)))
        return digest(await load_rows(session, cid)) == digest(expected)


@pytest.fixture
async def sessions(pg_url: str):
    engine = await prepare(database_url_for(pg_url, f"t_{uuid.uuid4().hex[:10]}"), VERSIONS, 2)
    yield sessionmaker(engine)
    await engine.dispose()


async def test_a_catch_up_in_small_batches_defers_results_to_its_last_batch(
    nc, sessions, campaign_id
) -> None:
    await _publish_campaign_with_late_ballot(nc.jetstream(), campaign_id)
    marked: list[list[str]] = []

    async def after(_seq: int) -> None:
        marked.append(await _stale(sessions))

    runner = ProjectionRunner(
        nc,
        sessions,
        ScoringProjection(),
        filter_subject=subjects.all_events(campaign_id),
        batch_size=1,
        catch_up_batch=1,
        on_batch=after,
    )
    await runner.catch_up()
    assert [campaign_id] in marked  # some ballot batches left their results for later
    assert await _stale(sessions) == []
    async with sessions() as session:
        assert digest(await load_rows(session, campaign_id)) == WORKED_DIGEST


async def test_an_interrupted_catch_up_is_settled_by_the_next_live_batch(
    nc, sessions, campaign_id
) -> None:
    js = nc.jetstream()
    await _publish_campaign_with_late_ballot(js, campaign_id)

    class Crash(Exception):
        pass

    async def crash_once_deferred(_seq: int) -> None:
        if await _stale(sessions):
            raise Crash  # a kill -9 after the commit of a batch that deferred its results

    interrupted = ProjectionRunner(
        nc,
        sessions,
        ScoringProjection(),
        filter_subject=subjects.all_events(campaign_id),
        batch_size=1,
        catch_up_batch=1,
        on_batch=crash_once_deferred,
    )
    with pytest.raises(Crash):
        await interrupted.catch_up()
    assert await _stale(sessions) == [campaign_id]
    assert not await _consistent(sessions, campaign_id)  # stale: the marker says so

    live = ProjectionRunner(
        nc, sessions, ScoringProjection(), filter_subject=subjects.all_events(campaign_id)
    )
    task = asyncio.ensure_future(live.run())
    try:
        extra = ballot("b9", "S01", {"Q1": "T", "Q2": "T", "Q3": "T"})
        await publish_event(
            js,
            subjects.ballot(campaign_id, "b9"),
            make(extra, campaign_id=campaign_id, producer="survey"),
        )
        await eventually(lambda: _settled(sessions), timeout=30)
    finally:
        live.stop()
        await task
    assert await _consistent(sessions, campaign_id)
    async with sessions() as session:  # b9 came after the deadline: the worked results hold
        assert digest(await load_rows(session, campaign_id)) == WORKED_DIGEST


async def _settled(sessions) -> bool:
    return await _stale(sessions) == []
