"""Publishing on a real JetStream: ack, dedupe, decide-once, and the log's protections."""

from __future__ import annotations

import asyncio

import pytest
from nats.js.errors import APIError, ServerError

from contracts import subjects
from contracts.events import CampaignClosed, DeadlineReached, make
from parindex.bus.publish import ConcurrencyConflict, last_on_subject, publish_event


def _closed(campaign_id: str, reason: str = "x"):
    return make(CampaignClosed(reason=reason), campaign_id=campaign_id, producer="test")


async def test_publish_waits_for_ack_and_dedupes_by_event_id(nc, campaign_id) -> None:
    js = nc.jetstream()
    env = _closed(campaign_id)
    first = await publish_event(js, subjects.campaign(campaign_id), env)
    again = await publish_event(js, subjects.campaign(campaign_id), env)
    assert first.seq > 0 and not first.duplicate
    assert again.duplicate and again.seq == first.seq
    info = await js.stream_info(
        subjects.EVENTS_STREAM, subjects_filter=subjects.all_events(campaign_id)
    )
    assert info.state.subjects == {subjects.campaign(campaign_id): 1}


async def test_second_decision_on_an_aggregate_is_a_conflict(nc, campaign_id) -> None:
    js = nc.jetstream()
    subject = subjects.deadline(campaign_id)
    from datetime import UTC, datetime

    one = make(DeadlineReached(deadline=datetime.now(UTC)), campaign_id=campaign_id, producer="a")
    two = make(DeadlineReached(deadline=datetime.now(UTC)), campaign_id=campaign_id, producer="b")
    await publish_event(js, subject, one, expected_last_subject_seq=0)
    with pytest.raises(ConcurrencyConflict) as info:
        await publish_event(js, subject, two, expected_last_subject_seq=0)
    assert info.value.existing_event_id == one.event_id


async def test_retry_of_a_decided_publish_is_not_a_conflict(nc, campaign_id) -> None:
    """A retry may get 'wrong last sequence', not 'duplicate' (docs/architecture.md, decision 2)."""
    js = nc.jetstream()
    subject = subjects.deadline(campaign_id)
    from datetime import UTC, datetime

    env = make(DeadlineReached(deadline=datetime.now(UTC)), campaign_id=campaign_id, producer="a")
    first = await publish_event(js, subject, env, expected_last_subject_seq=0)
    retry = await publish_event(js, subject, env, expected_last_subject_seq=0)
    assert retry.duplicate and retry.seq == first.seq
    assert await last_on_subject(js, subject) == (first.seq, env.event_id)


async def test_concurrent_deciders_produce_exactly_one_event(nc, campaign_id) -> None:
    js = nc.jetstream()
    subject = subjects.deadline(campaign_id)
    from datetime import UTC, datetime

    envs = [
        make(DeadlineReached(deadline=datetime.now(UTC)), campaign_id=campaign_id, producer=str(i))
        for i in range(20)
    ]
    results = await asyncio.gather(
        *(publish_event(js, subject, e, expected_last_subject_seq=0) for e in envs),
        return_exceptions=True,
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, ConcurrencyConflict)]
    assert len(won) == 1 and len(lost) == 19


async def test_the_log_refuses_delete_and_purge(nc, campaign_id) -> None:
    js = nc.jetstream()
    ack = await publish_event(js, subjects.campaign(campaign_id), _closed(campaign_id))
    with pytest.raises((APIError, ServerError)):
        await js.purge_stream(subjects.EVENTS_STREAM)
    with pytest.raises((APIError, ServerError)):
        await js.delete_msg(subjects.EVENTS_STREAM, ack.seq)
    info = await js.stream_info(subjects.EVENTS_STREAM)
    assert info.config.deny_delete and info.config.deny_purge
    assert info.config.max_age in (0, None)
    assert getattr(info.config.storage, "value", info.config.storage) == "file"
