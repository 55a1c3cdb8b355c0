"""Per-service database: create it if missing, an async engine, migrations under a lock."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine


def _asyncpg_dsn(sqlalchemy_url: str, dbname: str | None = None) -> str:
    parts = urlsplit(sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://"))
    path = f"/{dbname}" if dbname is not None else parts.path
    query = f"?{parts.query}" if parts.query else ""
    return f"postgresql://{parts.netloc}{path}{query}"


async def ensure_database(url: str) -> None:
    """CREATE DATABASE for the service if it does not exist (services own their database)."""
    dbname = urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(_asyncpg_dsn(url, "postgres"))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", dbname)
        if not exists:
            try:
                await conn.execute(f'CREATE DATABASE "{dbname}"')
            except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                # A second instance created it at the same moment: PostgreSQL says so with
                # either error, depending on which catalog check lost the race.
                pass
    finally:
        await conn.close()


def make_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(url, pool_size=pool_size, max_overflow=20, pool_pre_ping=True)


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


async def migrate(engine: AsyncEngine, versions_dir: Path) -> None:
    """Alembic upgrade to head, one instance at a time (advisory lock)."""
    from alembic import command
    from alembic.config import Config

    def upgrade(sync_conn: Connection) -> None:
        cfg = Config()
        cfg.set_main_option("path_separator", "os")
        cfg.set_main_option("script_location", str(Path(__file__).parent / "alembic"))
        cfg.set_main_option("version_locations", str(versions_dir))
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, "head")

    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(7214001)"))
        await conn.run_sync(upgrade)


async def prepare(url: str, versions_dir: Path, pool_size: int = 10) -> AsyncEngine:
    await ensure_database(url)
    engine = make_engine(url, pool_size)
    await migrate(engine, versions_dir)
    return engine
