"""Freezing results once the deadline is on the log (docs/architecture.md, decisions 9 and 16).

ResultsPublished means "frozen results with their digest", not public: admins and auditors see
them; the public only after an admin puts ResultsReleased on the log.
"""

from __future__ import annotations

import uuid

from nats.js import JetStreamContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker

from contracts import subjects
from contracts.events import ResultsPublished, make
from parindex.bus.publish import ConcurrencyConflict, publish_event
from services.scoring.method import digest
from services.scoring.projection import load_rows

PRODUCER = "scoring"


async def publish_due_results(js: JetStreamContext, sessions: async_sessionmaker) -> list[str]:
    """Publish ResultsPublished for every campaign whose deadline is applied and not yet published.

    Safe with several instances: the results subject is decided once, and the event id is
    derived from the digest so a retry is a duplicate, not a second publication.
    """
    async with sessions() as session:
        due = (
            await session.execute(
                text(
                    "SELECT d.campaign_id, d.seq FROM scoring_deadlines d "
                    "LEFT JOIN scoring_published p USING (campaign_id) WHERE p.campaign_id IS NULL"
                )
            )
        ).all()
        published = []
        for cid, seq in due:
            rows = await load_rows(session, cid)
            dig = digest(rows)
            env = make(
                ResultsPublished(digest=dig, last_sequence=int(seq), rows=rows),
                campaign_id=cid,
                producer=PRODUCER,
                event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"parindex:results:{cid}:{dig}")),
            )
            try:
                await publish_event(js, subjects.results(cid), env, expected_last_subject_seq=0)
                published.append(cid)
            except ConcurrencyConflict:
                pass  # another instance published; our projection will record it
    return published
