"""The upgrades that bring credential holders (docs/architecture.md, decision 48), on rows
written by the revisions before: each credential gets a holder of its own, a pending one (its
address unknown) another, and a survey's existing drafts stay under the holder '' that the
sessions from before carry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

pytestmark = pytest.mark.timeout(120)


def _upgrade_to(versions_dir: Path, revision: str) -> Any:
    from alembic import command
    from alembic.config import Config

    import parindex.db.engine as db

    def run(sync_conn: Any) -> None:
        cfg = Config()
        cfg.set_main_option("path_separator", "os")
        cfg.set_main_option("script_location", str(Path(db.__file__).parent / "alembic"))
        cfg.set_main_option("version_locations", str(versions_dir))
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, revision)

    return run


async def test_identity_credentials_get_holders(db_url: str) -> None:
    from parindex.db.engine import ensure_database, make_engine, migrate
    from services.identity.service import SERVICE

    await ensure_database(db_url)
    engine = make_engine(db_url, 2)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade_to(SERVICE.versions_dir, "identity_0006"))
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
    finally:
        await engine.dispose()
    r1, r2 = rows["r1"], rows["r2"]
    assert len(r1.holder) == 32 and len(r2.holder) == 32 and r1.holder != r2.holder
    assert r1.sent_to == "an@example.vn" and r2.sent_to == "binh@example.vn"
    assert r1.pending_holder is None
    # A pending credential from before: its address is unknown, so it holds no draft of theirs.
    assert r2.pending_holder is not None and r2.pending_holder != r2.holder
    assert r2.pending_sent_to is None


async def test_survey_drafts_keep_their_rows_under_the_empty_holder(db_url: str) -> None:
    from parindex.db.engine import ensure_database, make_engine, migrate
    from services.survey.service import SERVICE

    await ensure_database(db_url)
    engine = make_engine(db_url, 2)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade_to(SERVICE.versions_dir, "survey_0005"))
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
    finally:
        await engine.dispose()
    assert rows == [("", "[1]"), ("h", "[2]")]
