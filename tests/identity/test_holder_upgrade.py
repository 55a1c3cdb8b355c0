"""The upgrades that bring credential holders (docs/architecture.md, decision 48), on rows
written by the revisions before: each credential gets a holder of its own, a pending one (its
address unknown) another, and a survey's existing drafts stay under the holder '' that the
sessions from before carry."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.migrations import engine_at

pytestmark = pytest.mark.timeout(120)


async def test_identity_credentials_get_holders(db_url: str) -> None:
    from parindex.db.engine import migrate
    from services.identity.service import SERVICE

    async with engine_at(db_url, SERVICE.versions_dir, "identity_0006") as engine:
        async with engine.begin() as conn:
            for rid, email in (("r1", "An@Example.VN"), ("r2", "binh@example.vn")):
                await conn.execute(
                    text(
                        "INSERT INTO identity_respondents (campaign, respondent_id, username, "
                        "full_name, email, form_code, last_seq) "
                        "VALUES ('c', :r, :r, 'X', :e, '01', 1)"
                    ),
                    {"r": rid, "e": email},
                )
            await conn.execute(
                text(
                    "INSERT INTO identity_credentials (campaign, respondent_id, password_hash, "
                    "purpose, pending_hash) VALUES ('c', 'r1', 'h1', 'invitation', NULL), "
                    "('c', 'r2', 'h2', 'invitation', 'h2-new')"
                )
            )
        await migrate(engine, SERVICE.versions_dir)
        async with engine.connect() as conn:
            rows = {
                r.respondent_id: r
                for r in await conn.execute(
                    text(
                        "SELECT respondent_id, holder, sent_to, pending_holder, pending_sent_to "
                        "FROM identity_credentials"
                    )
                )
            }
    r1, r2 = rows["r1"], rows["r2"]
    assert len(r1.holder) == 32 and len(r2.holder) == 32 and r1.holder != r2.holder
    assert r1.sent_to == "an@example.vn" and r2.sent_to == "binh@example.vn"
    assert r1.pending_holder is None
    # A pending credential from before: its address is unknown, so it holds no draft of theirs.
    assert r2.pending_holder is not None and r2.pending_holder != r2.holder
    assert r2.pending_sent_to is None


async def test_survey_drafts_keep_their_rows_under_the_empty_holder(db_url: str) -> None:
    from parindex.db.engine import migrate
    from services.survey.service import SERVICE

    async with engine_at(db_url, SERVICE.versions_dir, "survey_0005") as engine:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO survey_drafts (campaign, pseudonym, answers) "
                    "VALUES ('c', 'p1', '[1]')"
                )
            )
        await migrate(engine, SERVICE.versions_dir)
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO survey_drafts (campaign, pseudonym, holder, answers) "
                    "VALUES ('c', 'p1', 'h', '[2]')"
                )
            )
            rows = sorted(
                tuple(r)
                for r in await conn.execute(
                    text("SELECT holder, answers::text FROM survey_drafts WHERE pseudonym = 'p1'")
                )
            )
    assert rows == [("", "[1]"), ("h", "[2]")]
