"""Whose fault is an error while applying events: the event's (dead-letter it) or the world's.

An error that applying the same event again would raise again (a value PostgreSQL refuses, a
constraint, a payload the projection's own code cannot handle) must not be retried forever:
the log has no delete, so one such event would stop the projection for good. Everything else
(connection lost, server restarting, timeouts, serialization conflicts) is retried
(docs/architecture.md, decision 17).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
from asyncpg.exceptions import _base as asyncpg_base
from pydantic import ValidationError
from sqlalchemy import exc as sa

# SQLSTATE classes: 22 data exception, 23 integrity constraint, 54 program limit (a jsonb too
# big, too many columns): the same row fails the same way every time.
EVENT_FAULT_CLASSES = ("22", "23", "54")
# 08 connection, 40 transaction rollback (deadlock, serialization), 53 resources,
# 57 operator intervention (shutdown, cancel), 58 system error: worth another try.
TRANSIENT_CLASSES = ("08", "40", "53", "57", "58")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend([getattr(e, "orig", None), e.__cause__, e.__context__])


def _sqlstate(e: BaseException) -> str:
    state = getattr(e, "sqlstate", None)
    return state if isinstance(state, str) else ""


def is_event_fault(exc: BaseException) -> bool:
    """True if the error is deterministic for the event's content: dead-letter, do not retry."""
    chain = list(_chain(exc))
    for e in chain:
        if _sqlstate(e)[:2] in TRANSIENT_CLASSES:
            return False
        if isinstance(e, OSError | asyncio.TimeoutError | asyncpg.PostgresConnectionError):
            return False
    for e in chain:
        if _sqlstate(e)[:2] in EVENT_FAULT_CLASSES:
            return True
        if isinstance(e, sa.DataError | sa.IntegrityError | ValidationError):
            return True
        if isinstance(e, asyncpg_base.DataError):  # client side: bad query input
            return True
    # The projection's own code failing on the event's values; not a DBAPI error, whose
    # classes other than the ones above (OperationalError, InterfaceError...) are the world's.
    if isinstance(exc, sa.SQLAlchemyError):
        return False
    return isinstance(exc, ValueError | LookupError | TypeError | ArithmeticError)
