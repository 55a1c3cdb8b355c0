"""Campaign drafts: a workbook read, kept, previewed and published (docs/architecture.md,
decision 38).

The service layer between the workbook pages and the log. A draft is a validated Campaign
kept in survey's own database; publishing it goes through define.define_campaign, so the
rules of the CLI and the JSON API hold (refused once a wave opened). The draft row is locked
while it is published, so two clicks publish once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from nats.js import JetStreamContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts.campaign import Campaign
from services.survey.define import define_campaign
from services.survey.storage import drafts as store


class UnknownDraft(Exception):
    """No such draft (or it was cleaned away)."""


class AlreadyPublished(Exception):
    def __init__(self, version: int) -> None:
        super().__init__(f"draft already published as version {version}")
        self.version = version


@dataclass(frozen=True)
class Draft:
    id: str
    campaign: Campaign
    source: str  # "workbook" or "clone:<campaign id>"
    created_by: str
    published_version: int | None


async def keep(
    sessions: async_sessionmaker[AsyncSession], campaign: Campaign, source: str, by: str
) -> str:
    draft_id = uuid.uuid4().hex
    async with sessions() as s, s.begin():
        await store.save(s, draft_id, campaign.id, campaign.model_dump_json(), source, by)
    return draft_id


async def get(sessions: async_sessionmaker[AsyncSession], draft_id: str) -> Draft:
    async with sessions() as s:
        row = await store.load(s, draft_id)
    if row is None:
        raise UnknownDraft(draft_id)
    return Draft(
        row["id"],
        Campaign.model_validate_json(row["definition"]),
        row["source"],
        row["created_by"],
        row["published_version"],
    )


async def publish(
    js: JetStreamContext, sessions: async_sessionmaker[AsyncSession], draft_id: str
) -> Campaign:
    """CampaignDefined for the draft; CampaignFrozen once a wave opened (define.py)."""
    async with sessions() as s, s.begin():
        locked = await s.execute(
            text("SELECT 1 FROM survey_campaign_drafts WHERE id = :i FOR UPDATE"), {"i": draft_id}
        )
        if locked.first() is None:
            raise UnknownDraft(draft_id)
        row = await store.load(s, draft_id)
        assert row is not None  # locked above, in this transaction
        if row["published_version"] is not None:
            raise AlreadyPublished(row["published_version"])
        defined = await define_campaign(js, Campaign.model_validate_json(row["definition"]))
        await store.mark_published(s, draft_id, defined.version)
    return defined


async def pending(sessions: async_sessionmaker[AsyncSession]) -> list[dict[str, object]]:
    async with sessions() as s:
        return await store.listed(s)


async def on_log(sessions: async_sessionmaker[AsyncSession]) -> list[dict[str, object]]:
    async with sessions() as s:
        return await store.campaigns(s)
