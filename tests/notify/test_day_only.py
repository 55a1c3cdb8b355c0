"""No outbox row or delivery event dates a person's mail finer than the day (decision 15)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from parindex.clock import AcceleratedClock
from services.notify.sender import _loggable
from tests.notify import test_service
from tests.notify.test_service import (
    _reset,
    close,
    deadline_in,
    define,
    delivery_events,
    notify_app,
    open_wave,
    small_campaign,
)
from tests.time_columns import column_types, sub_day_values
from tests.waiting import eventually

smtp = test_service.smtp
fakes = test_service.fakes


async def test_deliveries_keep_only_their_day(
    nc,
    nats_url,
    pg_url,
    smtp,
    fakes,
    campaign_id,
    tmp_path,
    caplog,
) -> None:
    caplog.set_level(logging.DEBUG)
    js = nc.jetstream()
    campaign = small_campaign(campaign_id, deadline_in(10))
    clock = AcceleratedClock(datetime.now(UTC), speed=0)  # stands still until set
    async with notify_app(nats_url, pg_url, smtp, tmp_path, clock=clock) as app:
        rt = app.state.rt
        try:
            await define(js, campaign, 4, email=lambda i: "bad@example.vn" if i == 1 else None)
            await open_wave(js, campaign)
            await eventually(lambda: len(smtp.collector.for_campaign(campaign_id)) == 3)
            fakes.nonrespondents[campaign_id] = ["r002", "r003"]
            clock.set(campaign.deadline - timedelta(days=2, hours=12))  # the d-3 reminder
            await eventually(lambda: _reset(nc, campaign_id, "r000"), timeout=15)
            await eventually(lambda: len(smtp.collector.for_campaign(campaign_id)) == 6)

            async def all_announced():
                evs = await delivery_events(js, campaign_id)
                kinds = sorted(e["type"] for e in evs)
                want = ["DeliveryFailed"] + ["InvitationSent"] * 4 + ["ReminderSent"] * 2
                return evs if kinds == want else None

            events = await eventually(all_announced)

            async def outbox_settled() -> bool:
                async with rt.sessions() as s:
                    n = await s.scalar(
                        text(
                            "SELECT count(*) FROM notify_outbox WHERE campaign_id = :c "
                            "AND (status = 'pending' OR NOT event_published)"
                        ),
                        {"c": campaign_id},
                    )
                return n == 0

            await eventually(outbox_settled)
        finally:
            await close(js, campaign)
        for e in events:
            stamp = datetime.fromisoformat(e["occurred_at"])
            assert stamp == datetime.combine(stamp.date(), datetime.min.time(), UTC), e["type"]
        logged = [r.getMessage() for r in caplog.records if r.name.startswith("services.")]
        assert any("failed for good" in line for line in logged)
        people = ("r000", "r001", "r002", "r003", "bad@example.vn", "@example.vn")
        assert not [line for line in logged if any(p in line for p in people)]
        assert await sub_day_values(rt.sessions) == {}
        kinds = await column_types(rt.sessions, "notify_outbox")
        assert kinds["created_on"] == kinds["finished_on"] == "date"
        assert "created_at" not in kinds and "finished_at" not in kinds
        async with rt.sessions() as s:
            rows = (
                await s.execute(
                    text(
                        "SELECT status, finished_on, next_attempt_at FROM notify_outbox "
                        "WHERE campaign_id = :c"
                    ),
                    {"c": campaign_id},
                )
            ).all()
        assert len(rows) == 7 and {r.status for r in rows} == {"sent", "failed"}
        assert all(r.finished_on is not None and r.next_attempt_at is None for r in rows)


def test_log_lines_keep_the_kind_of_failure_not_the_recipient() -> None:
    assert _loggable("SMTP 550 5.1.1 <bad@example.vn>: no such user") == "SMTP 550"
    assert _loggable("refused: {'bad@example.vn': (550, b'no')}") == "refused"
    assert _loggable("identity unavailable: NoRespondersError") == "identity unavailable"
