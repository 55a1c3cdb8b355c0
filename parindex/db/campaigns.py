"""Reading a campaign definition back from a service's projection: one function, one shape.

Each service keeps the CampaignDefined it applied in its own table (a service never reads
another's database, docs/architecture.md, decision 4); the tables differ only in their names.
`load_campaign` parses a definition once per content (a ballot request needs the campaign, and
parsing 84 kB of JSON per request would dominate), keyed by the campaign id and an MD5 of the
stored JSON computed by PostgreSQL, so a redefinition, a rebuild or another database with the
same campaign id never gets a stale parse (docs/architecture.md, decision 28).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.campaign import Campaign

_PARSED: dict[tuple[str, str], Campaign] = {}
_KEEP = 64  # distinct definitions kept parsed per process


@dataclass(frozen=True)
class CampaignTable:
    """Where a projection keeps definitions; constants of the code, never user input."""

    table: str
    id_column: str = "id"
    definition_column: str = "definition"

    def _select(self, what: str) -> str:
        return f"SELECT {what} FROM {self.table} WHERE {self.id_column} = :c"


async def load_campaign(
    session: AsyncSession, where: CampaignTable, campaign_id: str
) -> Campaign | None:
    """The campaign as the projection last applied it, or None if it has not seen it."""
    digest = await session.scalar(
        text(where._select(f"md5({where.definition_column}::text)")), {"c": campaign_id}
    )
    if digest is None:
        return None
    key = (campaign_id, str(digest))
    parsed = _PARSED.get(key)
    if parsed is None:
        # The definition with its own digest, from one snapshot: a redefinition committed
        # between the two statements must not be remembered under the older digest.
        row = (
            await session.execute(
                text(
                    where._select(
                        f"md5({where.definition_column}::text), {where.definition_column}"
                    )
                ),
                {"c": campaign_id},
            )
        ).first()
        if row is None:  # deleted since (a rebuild): as if never seen
            return None
        digest, raw = row
        parsed = Campaign.model_validate(raw if isinstance(raw, dict) else json.loads(raw))
        while len(_PARSED) >= _KEEP:
            _PARSED.pop(next(iter(_PARSED)))
        _PARSED[(campaign_id, str(digest))] = parsed
    return parsed


class ByRowVersion:
    """Parsed campaigns of one service instance, keyed by id and the row's version (xmin).

    PostgreSQL gives a row a new xmin with every write (an amendment, the freeze, a rebuild),
    so a changed campaign is never served from here; reading the version is part of the query
    that needs the campaign (survey's ballot read, notify's claim of a letter), so a hit costs
    no round trip and no parse (issue #18, docs/architecture.md, decision 41).
    """

    KEEP = 64

    def __init__(self) -> None:
        self._parsed: dict[tuple[str, str], Campaign] = {}

    def get(self, campaign_id: str, version: str) -> Campaign | None:
        return self._parsed.get((campaign_id, version))

    def put(self, campaign_id: str, version: str, campaign: Campaign) -> None:
        while len(self._parsed) >= self.KEEP:
            self._parsed.pop(next(iter(self._parsed)))
        self._parsed[(campaign_id, version)] = campaign
