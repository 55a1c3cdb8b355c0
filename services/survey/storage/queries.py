"""Every SQL statement of survey's use cases on its own projection tables, in one place.

The tables are written by projection.py (and drafts by the draft use case); these functions
take an open session, so the caller decides the transaction (docs/architecture.md, decision 31).
"""

from __future__ import annotations

import json
from typing import Any

from asyncpg import Record
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from parindex.db.reads import ReadPool

# The projection's offset, read in the same statement (so the same snapshot) as its rows: what
# services/survey/intake.py keeps is tagged with it (docs/architecture.md, decision 49).
APPLIED = "(SELECT seq FROM projection_offsets WHERE name = 'survey')"
INTAKE = (
    "SELECT c.xmin::text AS row_version, r.unit_code, r.form_code, r.withdrawn, "
    "ARRAY(SELECT w.wave_id FROM survey_waves_opened w WHERE w.campaign = c.id) AS waves, "
    "EXISTS(SELECT 1 FROM survey_deadlines d WHERE d.campaign = c.id) AS closed, "
    f"{APPLIED} AS applied "
    "FROM survey_campaigns c LEFT JOIN survey_respondents r "
    "ON r.campaign = c.id AND r.respondent_id = $2 WHERE c.id = $1"
)
RESPONDENTS_INTAKE = (
    f"SELECT respondent_id, unit_code, form_code, withdrawn, {APPLIED} AS applied "
    "FROM survey_respondents WHERE campaign = $1 LIMIT $2"
)


async def intake(reads: ReadPool, campaign_id: str, respondent_id: str) -> Record | None:
    """Everything a respondent's request needs, in one round trip (issue #18): the campaign
    row's version (PostgreSQL's xmin, new with every write of the row), the registration
    (unit_code, form_code, withdrawn; NULL if not registered), the waves opened and whether the
    projection has seen the deadline, and the projection's offset. None if the campaign is
    unknown. Read straight on asyncpg, outside any transaction (docs/architecture.md, 44)."""
    return await reads.fetchrow(INTAKE, campaign_id, respondent_id)


async def respondents_intake(reads: ReadPool, campaign_id: str, limit: int) -> list[Record]:
    """INTAKE's registration columns for up to `limit` respondents of the campaign, with the
    projection's offset: read ahead by services/survey/intake.py."""
    return await reads.fetch(RESPONDENTS_INTAKE, campaign_id, limit)


async def delete_drafts(s: AsyncSession, keys: list[tuple[str, str]]) -> None:
    """Delete the drafts of these (campaign, pseudonym) pairs in one statement."""
    await s.execute(
        text(
            "DELETE FROM survey_drafts WHERE (campaign, pseudonym) IN "
            "(SELECT * FROM unnest(CAST(:c AS text[]), CAST(:p AS text[])))"
        ),
        {"c": [c for c, _ in keys], "p": [p for _, p in keys]},
    )


async def deadline_reached(s: AsyncSession, campaign_id: str) -> bool:
    return bool(
        await s.scalar(
            text("SELECT 1 FROM survey_deadlines WHERE campaign = :c"), {"c": campaign_id}
        )
    )


async def save_draft(
    s: AsyncSession, campaign_id: str, pseudo: str, holder: str, answers: list[dict[str, Any]]
) -> None:
    await s.execute(
        text(
            "INSERT INTO survey_drafts (campaign, pseudonym, holder, answers) "
            "VALUES (:c, :p, :h, CAST(:a AS jsonb)) ON CONFLICT (campaign, pseudonym, holder) "
            "DO UPDATE SET answers = EXCLUDED.answers"
        ),
        {"c": campaign_id, "p": pseudo, "h": holder, "a": json.dumps(answers)},
    )


async def draft(s: AsyncSession, campaign_id: str, pseudo: str, holder: str) -> object:
    """The stored draft answers as JSON (a list, if well formed), or None."""
    answers = await s.scalar(
        text(
            "SELECT answers FROM survey_drafts "
            "WHERE campaign = :c AND pseudonym = :p AND holder = :h"
        ),
        {"c": campaign_id, "p": pseudo, "h": holder},
    )
    return json.loads(answers) if isinstance(answers, str) else answers


async def delete_draft(s: AsyncSession, campaign_id: str, pseudo: str) -> None:
    """Every draft of the pseudonym, whoever held the credential (decision 48)."""
    await s.execute(
        text("DELETE FROM survey_drafts WHERE campaign = :c AND pseudonym = :p"),
        {"c": campaign_id, "p": pseudo},
    )


async def campaign_names(s: AsyncSession) -> list[tuple[str, str]]:
    """(id, name) of every campaign survey knows, by id."""
    rows = await s.execute(text("SELECT id, definition->>'name' FROM survey_campaigns ORDER BY id"))
    return [(i, n) for i, n in rows.all()]


async def ballot_counts(s: AsyncSession, campaign_id: str) -> dict[tuple[str, str], int]:
    """Counted ballots per (unit, form), as the projection keeps them."""
    rows = await s.execute(
        text("SELECT unit_code, form_code, received FROM survey_ballot_counts WHERE campaign = :c"),
        {"c": campaign_id},
    )
    return {(u, f): n for u, f, n in rows.all()}


async def registered_counts(s: AsyncSession, campaign_id: str) -> dict[tuple[str, str], int]:
    """Registered, not withdrawn respondents per (unit, form)."""
    rows = await s.execute(
        text(
            "SELECT unit_code, form_code, count(*) FROM survey_respondents "
            "WHERE campaign = :c AND NOT withdrawn GROUP BY unit_code, form_code"
        ),
        {"c": campaign_id},
    )
    return {(u, f): n for u, f, n in rows.all()}


async def unit_people(
    s: AsyncSession, campaign_id: str, unit_code: str
) -> list[tuple[str, str, str]]:
    """(respondent_id, full_name, form_code) of a unit's registered respondents, by name."""
    rows = await s.execute(
        text(
            "SELECT respondent_id, full_name, form_code FROM survey_respondents "
            "WHERE campaign = :c AND unit_code = :u AND NOT withdrawn "
            "ORDER BY full_name, respondent_id"
        ),
        {"c": campaign_id, "u": unit_code},
    )
    return [(r, n, f) for r, n, f in rows.all()]


async def respondent_ids(s: AsyncSession, campaign_id: str, unit_code: str | None) -> list[str]:
    """Ids of registered, not withdrawn respondents (of one unit, if given), in order."""
    sql = "SELECT respondent_id FROM survey_respondents WHERE campaign = :c AND NOT withdrawn"
    params: dict[str, Any] = {"c": campaign_id}
    if unit_code is not None:
        sql += " AND unit_code = :u"
        params["u"] = unit_code
    return [r for (r,) in await s.execute(text(sql + " ORDER BY respondent_id"), params)]
