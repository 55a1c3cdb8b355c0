"""A scan of every time-bearing column of a service's database (issue #13 item 3).

docs/architecture.md, decision 15: no row keyed by a person keeps a time finer than the day,
except what expires (login throttling) or is not about a respondent (staff accounts, runs).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker

TIME_TYPES = (
    "timestamp with time zone",
    "timestamp without time zone",
    "time with time zone",
    "time without time zone",
)

# (table, column) → the predicate every row with a sub-day value there must satisfy, and why.
ALLOWED: dict[tuple[str, str], str] = {
    # staff accounts, not respondents
    ("identity_users", "created_at"): "true",
    # login throttling: purged after the 15-minute window
    ("identity_login_attempts", "at"): "at > now() - interval '16 minutes'",
    # the sender's schedule: kept while pending, and until the event is out (the sweep's age)
    ("notify_outbox", "next_attempt_at"): "status = 'pending' OR NOT event_published",
    # one row per (campaign, reminder offset): about nobody
    ("notify_reminder_runs", "at"): "true",
}


async def sub_day_values(sessions: async_sessionmaker) -> dict[str, int]:
    """'table.column' → rows holding a sub-day time they may not; {} when the database is clean."""
    found: dict[str, int] = {}
    async with sessions() as s:
        columns = (
            await s.execute(
                text(
                    "SELECT table_name, column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND data_type = ANY(:types)"
                ),
                {"types": list(TIME_TYPES)},
            )
        ).all()
        for table, column, kind in columns:
            sub_day = (
                f'"{column}" IS NOT NULL'
                if kind.startswith("time ")
                else f"(\"{column}\" AT TIME ZONE 'UTC')::time <> '00:00'"
            )
            allowed = ALLOWED.get((table, column), "false")
            n = await s.scalar(
                text(f'SELECT count(*) FROM "{table}" WHERE {sub_day} AND NOT ({allowed})')
            )
            if n:
                found[f"{table}.{column}"] = int(n)
    return found


async def column_types(sessions: async_sessionmaker, table: str) -> dict[str, str]:
    async with sessions() as s:
        rows = await s.execute(
            text(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'public' AND table_name = :t"
            ),
            {"t": table},
        )
        return {name: kind for name, kind in rows.all()}
