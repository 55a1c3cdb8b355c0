"""A campaign's parse is remembered under the digest of the very content parsed (decision 28):
a redefinition landing between the digest and the read must not be remembered as the older
definition, or a rebuild that brings the older one back would be answered with the newer."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.campaign import Campaign
from parindex.db.campaigns import CampaignTable, load_campaign
from parindex.db.engine import ensure_database, make_engine, sessionmaker
from tests.survey.test_service import small_campaign

TABLE = CampaignTable("cache_campaigns", id_column="campaign_id")


async def _store(sessions, c: Campaign) -> None:
    async with sessions.begin() as s:
        await s.execute(
            text(
                "INSERT INTO cache_campaigns VALUES (:c, CAST(:d AS jsonb)) "
                "ON CONFLICT (campaign_id) DO UPDATE SET definition = EXCLUDED.definition"
            ),
            {"c": c.id, "d": c.model_dump_json()},
        )


class _RedefinedAfterDigest:
    """A session whose first statement (the digest) is followed at once by a redefinition
    committed on another connection, as a concurrent CampaignDefined would be."""

    def __init__(self, session: AsyncSession, sessions, newer: Campaign) -> None:
        self.session, self.sessions, self.newer = session, sessions, newer
        self.fired = False

    async def scalar(self, *args: Any, **kwargs: Any) -> Any:
        value = await self.session.scalar(*args, **kwargs)
        if not self.fired:
            self.fired = True
            await _store(self.sessions, self.newer)
        return value

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return await self.session.execute(*args, **kwargs)


@pytest.mark.timeout(60)
async def test_a_redefinition_between_digest_and_read_is_not_cached_as_the_older(
    db_url: str,
) -> None:
    await ensure_database(db_url)
    engine = make_engine(db_url, pool_size=2)
    sessions = sessionmaker(engine)
    try:
        async with sessions.begin() as s:
            await s.execute(
                text(
                    "CREATE TABLE cache_campaigns (campaign_id text PRIMARY KEY, definition jsonb)"
                )
            )
        older = small_campaign(f"cache-{db_url[-12:]}")
        newer = older.model_copy(update={"version": older.version + 1})
        await _store(sessions, older)

        async with sessions() as s:
            raced = await load_campaign(_RedefinedAfterDigest(s, sessions, newer), TABLE, older.id)  # type: ignore[arg-type]  # the proxy has the two methods used
        assert raced is not None and raced.version == newer.version

        await _store(sessions, older)  # a rebuild brings the older definition back
        async with sessions() as s:
            again = await load_campaign(s, TABLE, older.id)
        assert again is not None and again.version == older.version
    finally:
        await engine.dispose()
