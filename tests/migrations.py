"""Bringing a fresh database to one revision of a service's migrations, to test an upgrade on
rows the older revisions wrote."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine


def upgrade_to(versions_dir: Path, revision: str) -> Callable[[Any], None]:
    """For `conn.run_sync`: alembic's upgrade of that service's chain up to `revision`."""
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


@contextlib.asynccontextmanager
async def engine_at(db_url: str, versions_dir: Path, revision: str) -> AsyncIterator[AsyncEngine]:
    """A fresh database at `revision`; disposed of after the block."""
    from parindex.db.engine import ensure_database, make_engine

    await ensure_database(db_url)
    engine = make_engine(db_url, 2)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade_to(versions_dir, revision))
        yield engine
    finally:
        await engine.dispose()
