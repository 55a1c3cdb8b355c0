"""notify parses a campaign once per version of its row, not per letter (issue #18): a letter
sent after the campaign was redefined carries the new definition, never a stale parse."""

from __future__ import annotations

from contracts import subjects
from contracts.events import CampaignDefined, RespondentRegistered
from tests.notify.test_service import (  # noqa: F401  # fixtures used by name
    close,
    deadline_in,
    define,
    emit,
    fakes,
    notify_app,
    open_wave,
    parts,
    small_campaign,
    smtp,
)
from tests.waiting import eventually


async def test_a_redefined_campaign_reaches_the_next_letters(
    nc,
    nats_url,
    pg_url,
    smtp,  # noqa: F811  # the imported fixture
    fakes,  # noqa: F811  # the imported fixture
    campaign_id,
    tmp_path,
) -> None:
    js = nc.jetstream()
    before = small_campaign(campaign_id, deadline_in(10)).model_copy(
        update={"helpline": "0299 111 111"}
    )
    after = before.model_copy(update={"helpline": "0299 222 222"})
    async with notify_app(nats_url, pg_url, smtp, tmp_path):
        try:
            await define(js, before, 2)
            await open_wave(js, before)
            first = await eventually(
                lambda: smtp.collector.for_campaign(campaign_id) or None, timeout=30
            )
            assert "0299 111 111" in parts(first[0])[0]
            await eventually(lambda: len(smtp.collector.for_campaign(campaign_id)) >= 2)

            await emit(
                js, campaign_id, subjects.campaign(campaign_id), CampaignDefined(campaign=after)
            )
            late = RespondentRegistered(
                respondent_id="r777",
                username="u-r777",
                full_name="Lâm Văn Muộn",
                email=f"r777.{campaign_id}@example.vn",
                unit_code="SNV",
                form_code="02",
            )
            await emit(js, campaign_id, subjects.respondent(campaign_id, "r777"), late)

            def to_late() -> list | None:
                mails = [
                    m for m in smtp.collector.for_campaign(campaign_id) if "r777" in str(m["To"])
                ]
                return mails or None

            mail = (await eventually(to_late, timeout=30))[0]
            text = parts(mail)[0]
            assert "0299 222 222" in text and "0299 111 111" not in text
        finally:
            await close(js, before)
