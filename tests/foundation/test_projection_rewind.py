"""A log that moved back under a projection (issue #19): detected, rebuilt, nothing skipped.

The old log is a nats-server of its own; the "power loss" is a FRESH server with an empty store
and fewer (or different) events, run against the projection's old database.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from pathlib import Path

import httpx
import nats
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import subjects
from contracts.events import CampaignClosed, make
from parindex.bus.connection import ensure_streams
from parindex.bus.projection import Event, ProjectionRunner
from parindex.bus.publish import publish_event
from parindex.db.engine import prepare, sessionmaker
from parindex.runtime.embedded import NatsServer
from parindex.settings import Settings
from parindex.telemetry import metrics
from parindex.web.service import Runtime, ServiceSpec, create_app
from tests.waiting import eventually

VERSIONS = Path(__file__).parents[2] / "services" / "scoring" / "storage" / "versions"
CAMPAIGN = "t-rewind"


class Ids:
    """Keeps the event id applied at each sequence: the projection must equal the log."""

    name = "rewind_ids"

    async def apply(self, session: AsyncSession, events: Sequence[Event]) -> None:
        await session.execute(
            text("CREATE TABLE IF NOT EXISTS rewind_ids (seq bigint PRIMARY KEY, id text)")
        )
        for e in events:
            await session.execute(
                text("INSERT INTO rewind_ids (seq, id) VALUES (:s, :i)"),
                {"s": e.seq, "i": e.envelope.event_id},
            )

    async def reset(self, session: AsyncSession) -> None:
        await session.execute(text("DROP TABLE IF EXISTS rewind_ids"))


async def _fresh_log(store: Path, n: int) -> tuple[NatsServer, nats.NATS, list[str]]:
    """An empty server, provisioned, holding n new events; returns their ids in order."""
    server = NatsServer(store).start()
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    await ensure_streams(js)
    ids = []
    for _ in range(n):  # one by one: sequence order is the list order
        env = make(CampaignClosed(reason="ok"), campaign_id=CAMPAIGN, producer="t")
        await publish_event(js, subjects.campaign(CAMPAIGN), env)
        ids.append(env.event_id)
    return server, nc, ids


async def _applied(sessions) -> list[str]:
    async with sessions() as s:
        try:
            rows = await s.execute(text("SELECT id FROM rewind_ids ORDER BY seq"))
        except ProgrammingError:
            return []  # dropped by a rebuild, not yet re-created
        return [r[0] for r in rows]


async def _holds(sessions, want: list[str]) -> bool:
    return await _applied(sessions) == want


def _alarm() -> float:
    return metrics.projection_log_mismatch.labels("rewind_ids")._value.get()


async def _apply_old_log(tmp_path: Path, sessions, n: int) -> list[str]:
    server, nc, ids = await _fresh_log(tmp_path / "old", n)
    try:
        runner = ProjectionRunner(nc, sessions, Ids(), filter_subject="par.evt.>")
        assert await runner.verify_log() is False  # nothing stored yet
        await runner.catch_up()
        assert await _applied(sessions) == ids
        assert await runner.verify_log() is False  # same log: the offset is trusted
        assert runner.log_mismatch is False
    finally:
        await nc.close()
        server.stop()
    return ids


async def test_a_shorter_log_is_detected_and_rebuilt(tmp_path, db_url) -> None:
    engine = await prepare(db_url, VERSIONS)
    sessions = sessionmaker(engine)
    old = await _apply_old_log(tmp_path, sessions, 6)

    server, nc, new = await _fresh_log(tmp_path / "new", 4)  # the log came back shorter
    runner = ProjectionRunner(nc, sessions, Ids(), filter_subject="par.evt.>")
    task = asyncio.create_task(runner.run())
    try:
        await eventually(lambda: _holds(sessions, new))
        await eventually(lambda: not runner.log_mismatch)
        assert not set(old) & set(await _applied(sessions))
        assert _alarm() == 0
        # events published after the rebuild reuse no sequence and are applied too
        more = make(CampaignClosed(reason="ok"), campaign_id=CAMPAIGN, producer="t")
        await publish_event(nc.jetstream(), subjects.campaign(CAMPAIGN), more)
        await eventually(lambda: _holds(sessions, [*new, more.event_id]))
    finally:
        runner.stop()
        await asyncio.wait_for(task, 10)
        await nc.close()
        server.stop()
        await engine.dispose()


async def test_same_length_different_events_is_detected_and_rebuilt(tmp_path, db_url) -> None:
    engine = await prepare(db_url, VERSIONS)
    sessions = sessionmaker(engine)
    old = await _apply_old_log(tmp_path, sessions, 5)

    server, nc, new = await _fresh_log(tmp_path / "new", 5)  # as long, other events
    try:
        runner = ProjectionRunner(nc, sessions, Ids(), filter_subject="par.evt.>")
        assert await runner.verify_log() is True
        assert runner.log_mismatch is True  # /readyz reads this flag
        assert _alarm() == 1
        await runner.catch_up()
        assert await _applied(sessions) == new
        assert not set(old) & set(new)
        assert runner.log_mismatch is False
        assert _alarm() == 0
    finally:
        await nc.close()
        server.stop()
        await engine.dispose()


async def test_a_longer_log_with_other_events_is_detected(tmp_path, db_url) -> None:
    engine = await prepare(db_url, VERSIONS)
    sessions = sessionmaker(engine)
    await _apply_old_log(tmp_path, sessions, 3)

    server, nc, new = await _fresh_log(tmp_path / "new", 7)  # refilled past the old offset
    try:
        runner = ProjectionRunner(nc, sessions, Ids(), filter_subject="par.evt.>")
        await runner.catch_up()  # verifies first, through _consume
        assert await _applied(sessions) == new
        assert runner.log_mismatch is False
    finally:
        await nc.close()
        server.stop()
        await engine.dispose()


async def test_an_offset_stored_without_event_id_is_checked_by_length_only(
    tmp_path, db_url
) -> None:
    engine = await prepare(db_url, VERSIONS)
    sessions = sessionmaker(engine)
    await _apply_old_log(tmp_path, sessions, 3)
    async with sessions.begin() as s:
        await s.execute(text("UPDATE projection_offsets SET last_event_id = NULL"))

    server, nc, new = await _fresh_log(tmp_path / "new", 2)
    try:
        runner = ProjectionRunner(nc, sessions, Ids(), filter_subject="par.evt.>")
        await runner.catch_up()
        assert await _applied(sessions) == new  # shorter: detected without an id
        async with sessions.begin() as s:
            await s.execute(text("UPDATE projection_offsets SET last_event_id = NULL"))
        assert await runner.verify_log() is False  # long enough: trusted, as before
    finally:
        await nc.close()
        server.stop()
        await engine.dispose()


async def test_readyz_is_not_ready_while_a_projection_rebuilds(nats_url, pg_url, tmp_path) -> None:
    async def start(rt: Runtime) -> None:
        rt.extras["rewind"] = ProjectionRunner(rt.nc, rt.sessions, Ids())  # not run: a flag

    spec = ServiceSpec(name=f"rw{uuid.uuid4().hex[:8]}", versions_dir=VERSIONS, start=start)
    settings = Settings(nats_url=nats_url, database_url=pg_url, state_dir=tmp_path)
    app = create_app(spec, settings)
    async with app.router.lifespan_context(app):
        runner = app.state.rt.extras["rewind"]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.get("/readyz")
            assert r.status_code == 200, r.text
            runner.log_mismatch = True
            r = await client.get("/readyz")
            assert r.status_code == 503
            assert r.json()["checks"]["projections"] is False
