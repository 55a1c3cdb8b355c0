"""503, not 500, while PostgreSQL is unreachable (docs/architecture.md, decision 20).

`parindex up` restarts a crashed PostgreSQL in place; until it is back, a request that needs the
database is told to retry, and the pool (pre-ping) reconnects by itself afterwards.
"""

from __future__ import annotations

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import Response
from sqlalchemy import exc as sa_exc

from parindex.db.down import is_connection_error

RETRY_AFTER_S = 5

MESSAGE = "database unavailable; retry shortly"


def _answer(request: Request) -> Response:
    from parindex.web.errors import answer  # the shared error page (decision 25)

    return answer(request, 503, MESSAGE, key="err.db", headers={"Retry-After": str(RETRY_AFTER_S)})


def install(app: FastAPI) -> None:
    async def database_down(request: Request, exc: Exception) -> Response:
        if not is_connection_error(exc):
            raise exc
        return _answer(request)

    # asyncpg's own errors too: the hot path reads without SQLAlchemy (decision 44).
    for kind in (sa_exc.DBAPIError, ConnectionError, asyncpg.PostgresError, asyncpg.InterfaceError):
        app.add_exception_handler(kind, database_down)
