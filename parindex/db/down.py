"""Whether an error means PostgreSQL is unreachable (restarting, refused, connection lost).

Shared by the 503 handler (parindex/web/database_down.py, docs/architecture.md, decision 20) and
the hot path's read pool (parindex/db/reads.py), which retries such a read once.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc


def is_connection_error(exc: BaseException) -> bool:
    """Connection refused/lost/starting up, as raised through SQLAlchemy or asyncpg directly."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, sa_exc.DBAPIError) and cur.connection_invalidated:
            return True
        if isinstance(cur, (ConnectionError, sa_exc.InterfaceError)):  # refused, reset
            return True
        module = type(cur).__module__ or ""
        if module.startswith("asyncpg") and type(cur).__name__ in _ASYNCPG_DOWN:
            return True
        cur = getattr(cur, "orig", None) or cur.__cause__ or cur.__context__
    return False


_ASYNCPG_DOWN = {
    "CannotConnectNowError",
    "ConnectionDoesNotExistError",
    "ConnectionFailureError",
    "AdminShutdownError",
    "CrashShutdownError",
    "ServerShutdownError",
    "ConnectionRejectionError",
    "InternalClientError",
}
