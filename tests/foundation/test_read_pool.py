"""The hot path's asyncpg reads (docs/architecture.md, decision 44) against a real PostgreSQL:
a connection the server dropped costs one retry, not an error; a database that is really gone
is a connection error the 503 handler recognises."""

from __future__ import annotations

import asyncpg
import pytest

from parindex.db.down import is_connection_error
from parindex.db.engine import _asyncpg_dsn, ensure_database
from parindex.db.reads import ReadPool

pytestmark = pytest.mark.timeout(60)


async def test_a_dropped_connection_is_replaced_and_the_read_answers(db_url: str) -> None:
    await ensure_database(db_url)
    pool = ReadPool(db_url, size=1)  # one connection: the retry must be on a new one
    await pool.open()
    try:
        first = await pool.fetchrow("SELECT pg_backend_pid() AS pid")
        assert first is not None
        admin = await asyncpg.connect(_asyncpg_dsn(db_url))
        try:  # as a PostgreSQL restart does to every connection
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", first["pid"])
        finally:
            await admin.close()
        again = await pool.fetchrow("SELECT pg_backend_pid() AS pid, $1::text AS x", "ok")
        assert again is not None and again["x"] == "ok" and again["pid"] != first["pid"]
    finally:
        await pool.close()


async def test_a_bad_statement_is_not_retried_nor_taken_for_a_database_down(db_url: str) -> None:
    await ensure_database(db_url)
    pool = ReadPool(db_url, size=1)
    await pool.open()
    try:
        with pytest.raises(asyncpg.UndefinedTableError) as raised:
            await pool.fetchrow("SELECT * FROM no_such_table")
        assert not is_connection_error(raised.value)
    finally:
        await pool.close()


async def test_an_unreachable_database_is_a_connection_error(db_url: str) -> None:
    dead = db_url.rsplit("@", 1)[0] + "@127.0.0.1:1/nothing"  # nothing listens on port 1
    pool = ReadPool(dead)
    with pytest.raises(OSError) as raised:
        await pool.open()
    assert is_connection_error(raised.value)
