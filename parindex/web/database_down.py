"""503, not 500, while PostgreSQL is unreachable (docs/architecture.md, decision 20).

`parindex up` restarts a crashed PostgreSQL in place; until it is back, a request that needs the
database is told to retry, and the pool (pre-ping) reconnects by itself afterwards.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from sqlalchemy import exc as sa_exc

RETRY_AFTER_S = 5

MESSAGE = "database unavailable; retry shortly"


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


def _answer(request: Request) -> Response:
    from parindex.web.errors import answer  # the shared error page (decision 25)

    return answer(request, 503, MESSAGE, key="err.db", headers={"Retry-After": str(RETRY_AFTER_S)})


def install(app: FastAPI) -> None:
    async def database_down(request: Request, exc: Exception) -> Response:
        if not is_connection_error(exc):
            raise exc
        return _answer(request)

    for kind in (sa_exc.DBAPIError, ConnectionError):
        app.add_exception_handler(kind, database_down)
