"""Deleting the drafts of submitted ballots off the request path (issue #18).

A submitted ballot's draft (answers keyed by its pseudonym, never by the person) must go, but
the respondent's receipt need not wait for it: the ballot request queues the pseudonym here and
one task deletes the queue in one statement per round. Until the row is gone this process
answers the draft as empty, as it did when the delete ran inside the request. A failed delete
is retried; the queue is flushed, bounded, when the service stops. What a kill -9 leaves
behind is deleted by `sweep` at the next start: the drafts of pseudonyms that have a ballot on
the log (docs/architecture.md, decision 41).
"""

from __future__ import annotations

import asyncio
import logging

from nats.js import JetStreamContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.survey import participation
from services.survey.storage import queries

log = logging.getLogger(__name__)
ROUND = 1000  # drafts deleted per statement
GATHER_S = 0.25  # how long a round waits for more drafts to delete with it


class DraftCleaner:
    """The queue of drafts to delete and the task that deletes them."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self._pending: dict[tuple[str, str], None] = {}  # insertion-ordered set
        self._wake = asyncio.Event()

    def discard(self, campaign_id: str, pseudo: str) -> None:
        self._pending[(campaign_id, pseudo)] = None
        self._wake.set()

    def pending(self, campaign_id: str, pseudo: str) -> bool:
        """Queued and not yet deleted: the draft reads as empty meanwhile."""
        return (campaign_id, pseudo) in self._pending

    async def _delete_some(self) -> None:
        keys = list(self._pending)[:ROUND]
        async with self.sessions.begin() as s:
            await queries.delete_drafts(s, keys)
        for key in keys:
            self._pending.pop(key, None)

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if len(self._pending) < ROUND:  # during a rush, one statement per GATHER_S
                await asyncio.sleep(GATHER_S)
            while self._pending:
                try:
                    await self._delete_some()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("deleting %s drafts failed; retrying", len(self._pending))
                    await asyncio.sleep(1)

    async def flush(self) -> None:
        """At stop: delete what is queued (the stop hook is bounded by the caller)."""
        while self._pending:
            await self._delete_some()


async def sweep(js: JetStreamContext, sessions: async_sessionmaker[AsyncSession]) -> int:
    """Delete every stored draft whose pseudonym already has a ballot on the log."""
    async with sessions() as s:
        rows = await s.execute(text("SELECT DISTINCT campaign FROM survey_drafts"))
        campaigns = [c for (c,) in rows]
    deleted = 0
    for campaign_id in campaigns:
        voted = await participation.ballot_pseudonyms(js, campaign_id)
        if not voted:
            continue
        async with sessions.begin() as s:
            result = await s.execute(
                text(
                    "DELETE FROM survey_drafts WHERE campaign = :c "
                    "AND pseudonym = ANY(CAST(:p AS text[]))"
                ),
                {"c": campaign_id, "p": sorted(voted)},
            )
            deleted += int(getattr(result, "rowcount", 0) or 0)
    return deleted
