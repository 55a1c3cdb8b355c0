"""The notice to the old address after an address change (docs/architecture.md, decision 48):
sent once, without a password, and a rebuild of notify from the log does not owe it again."""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path

from sqlalchemy import text

from contracts import subjects
from contracts.events import RespondentUpdated
from tests.notify.test_service import (  # noqa: F401  # fixtures used by name
    close,
    deadline_in,
    define,
    delivery_events,
    emit,
    fakes,
    notify_app,
    open_wave,
    parts,
    small_campaign,
    smtp,
)
from tests.waiting import eventually


async def test_the_old_address_is_told_once_and_a_rebuild_does_not_resend(
    nc,
    nats_url,
    pg_url,
    db_url,
    smtp,  # noqa: F811  # the imported fixture
    fakes,  # noqa: F811  # the imported fixture
    campaign_id,
    tmp_path: Path,
) -> None:
    from parindex.bus.projection import ProjectionRunner
    from parindex.db.engine import prepare, sessionmaker
    from services.notify.projection import NotifyProjection
    from services.notify.service import make_service

    NOTIFY = make_service()  # noqa: N806  # the service's spec: where its migrations are

    js = nc.jetstream()
    c = campaign_id
    campaign = small_campaign(c, deadline_in(10)).model_copy(update={"helpline": "0299 333 333"})
    old, new = f"r000.{c}@example.vn", f"moi.{c}@example.vn"

    def to(address: str) -> list | None:
        return [m for m in smtp.collector.for_campaign(c) if address in str(m["To"])] or None

    async with notify_app(nats_url, pg_url, smtp, tmp_path):
        try:
            await define(js, campaign, 1)
            await open_wave(js, campaign)
            await eventually(lambda: to(old), timeout=30)
            # The correction after the invitation on the log, too. The sender marks a letter sent
            # in its database before it publishes InvitationSent, so a correction in between is
            # told live but not on a replay, which then holds no notice row and owes nothing.
            # That order is harmless and is not what this test holds.
            await eventually(lambda: _has(delivery_events(js, c), "InvitationSent"), timeout=30)
            await emit(js, c, subjects.respondent(c, "r000"), RespondentUpdated(
                respondent_id="r000", email=new
            ))  # fmt: skip
            await eventually(lambda: to(new), timeout=30)
            notices = await eventually(
                lambda: (
                    [m for m in to(old) or [] if m["X-Parindex-Purpose"].startswith("notice:")]
                    or None
                ),
                timeout=30,
            )
            body = parts(notices[0])[0]
            assert "0299 333 333" in body and new not in body and "Mật khẩu:" not in body

            await eventually(lambda: _has(delivery_events(js, c), "NoticeSent"), timeout=30)
            assert len(to(old) or []) == 2  # the invitation and one notice
        finally:
            await close(js, campaign)

    # notify rebuilt from the log into a fresh database owes this campaign nothing.
    engine = await prepare(db_url, NOTIFY.versions_dir)
    try:
        runner = ProjectionRunner(
            nc, sessionmaker(engine), NotifyProjection(), filter_subject=subjects.all_events(c)
        )
        await runner.catch_up()
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT purpose, status, address FROM notify_outbox "
                        "WHERE campaign_id = :c ORDER BY id"
                    ),
                    {"c": c},
                )
            ).all()
    finally:
        await engine.dispose()
    owed = [r for r in rows if r.status == "pending"]
    assert owed == [], rows
    notice = [r for r in rows if r.purpose.startswith("notice:email:")]
    assert len(notice) == 1 and notice[0].status == "sent" and notice[0].address == old


async def _has(events: Awaitable[list[dict]], kind: str) -> bool:
    return any(e["type"] == kind for e in await events)
