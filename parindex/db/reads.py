"""The hot path's reads straight on asyncpg: one round trip, no transaction, no pre-ping.

Through SQLAlchemy's session a one-row read is four round trips (the pool's pre-ping, BEGIN,
the statement, ROLLBACK) and the ORM's Python around each; a ballot needs one read (issue #18,
docs/architecture.md, decision 44). asyncpg prepares each statement once per connection. A
connection that PostgreSQL dropped (a restart, decision 20) fails once and is replaced: the read
is retried once on a fresh connection, and a second failure reaches the 503 handler.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from parindex.db.down import is_connection_error
from parindex.db.engine import _asyncpg_dsn


class ReadPool:
    def __init__(self, url: str, size: int = 10) -> None:
        self.dsn = _asyncpg_dsn(url)
        self.size = size
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(
            self.dsn, min_size=1, max_size=self.size, command_timeout=30, reset=_nothing
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        return await self._twice("fetchrow", sql, args)

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return await self._twice("fetch", sql, args)

    async def _twice(self, how: str, sql: str, args: tuple[Any, ...]) -> Any:
        assert self._pool is not None, "ReadPool.open() first"
        run = getattr(self._pool, how)
        try:
            return await run(sql, *args)
        except Exception as exc:
            if not is_connection_error(exc) and not isinstance(exc, OSError):
                raise
        return await run(sql, *args)


async def _nothing(conn: asyncpg.Connection) -> None:
    """No reset query on release: these connections only ever run single read statements, so
    there is no session state to undo, and asyncpg's default reset is a round trip each time."""
