"""Restore drill: a campaign to published results, backed up, restored into EMPTY servers.

The restored log must carry every message at its old sequence and the scoring audit must pass
with the same digest (docs/reliability.md, "Backup and restore"; docs/architecture.md,
decision 21).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import nats
import pytest
from sqlalchemy import text

from contracts import subjects
from parindex.bus.connection import ensure_streams
from parindex.cli import main
from parindex.db.engine import make_engine
from parindex.ops.backup import RestoreError, restore
from parindex.runtime.embedded import NatsServer, PostgresServer
from parindex.settings import Settings
from parindex.web.service import create_app
from services.scoring.audit import audit
from services.scoring.service import SERVICE
from tests.scoring.test_method import WORKED_DIGEST
from tests.scoring.test_service import _publish_campaign_with_late_ballot, _published
from tests.waiting import eventually

CID = "drill-2026"


async def _log(js) -> list[tuple[int, str, bytes]]:
    info = await js.stream_info(subjects.EVENTS_STREAM)
    out = []
    for seq in range(1, info.state.last_seq + 1):
        m = await js.get_msg(subjects.EVENTS_STREAM, seq)
        out.append((m.seq, m.subject, m.data))
    return out


async def test_restore_drill_gives_the_same_log_and_audit_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src_nats = NatsServer(tmp_path / "src-nats").start()
    src_pg = PostgresServer(tmp_path / "src-pg" / "data").start()
    try:
        settings = Settings(nats_url=src_nats.url, database_url=src_pg.url, state_dir=tmp_path)
        nc = await nats.connect(src_nats.url)
        js = nc.jetstream()
        await ensure_streams(js)
        await _publish_campaign_with_late_ballot(js, CID)
        app = create_app(SERVICE, settings)
        async with app.router.lifespan_context(app):
            published = await eventually(lambda: _published(js, CID), timeout=60)
            # ...and scoring has applied it too, so the backed-up cursor is at the log's end.
            last = (await js.stream_info(subjects.EVENTS_STREAM)).state.last_seq
            runner = app.state.rt.extras["runner"]
            await eventually(lambda: runner.applied_seq >= last, timeout=30)
        assert published.digest == WORKED_DIGEST
        before = await _log(js)
        await nc.close()
        argv = ["backup", "--to", str(tmp_path / "bak"), "--nats-url", src_nats.url]
        assert await asyncio.to_thread(main, [*argv, "--database-url", src_pg.url]) == 0
        manifest = json.loads((tmp_path / "bak" / "manifest.json").read_text())
        assert manifest["messages"][subjects.EVENTS_STREAM] == len(before)
        assert "parindex_scoring" in manifest["databases"]
    finally:
        src_nats.stop()
        src_pg.stop()

    dst_nats = NatsServer(tmp_path / "dst-nats").start()
    dst_pg = PostgresServer(tmp_path / "dst-pg" / "data").start()
    try:
        await asyncio.to_thread(restore, dst_nats.url, dst_pg.url, tmp_path / "bak")
        settings = Settings(nats_url=dst_nats.url, database_url=dst_pg.url, state_dir=tmp_path)
        nc = await nats.connect(dst_nats.url)
        js = nc.jetstream()
        assert await _log(js) == before  # same sequences, subjects and bytes
        # The database came back as it was, not rebuilt: its cursor stands at the log's end.
        engine = make_engine(settings.service_database_url("scoring"))
        async with engine.begin() as conn:
            cursor = (await conn.execute(text("SELECT max(seq) FROM projection_offsets"))).scalar()
        await engine.dispose()
        assert cursor == len(before)
        app = create_app(SERVICE, settings)
        async with app.router.lifespan_context(app):  # projections resume from their offsets
            report = await audit(nc, settings, CID)
        assert report.ok, report.render()
        assert report.digest == WORKED_DIGEST
        # Rebuilding the projection from the restored log gives the same live results too.
        monkeypatch.setenv("PARINDEX_NATS_URL", dst_nats.url)
        monkeypatch.setenv("PARINDEX_DATABASE_URL", dst_pg.url)
        monkeypatch.setenv("PARINDEX_STATE_DIR", str(tmp_path))
        assert await asyncio.to_thread(main, ["rebuild", "scoring"]) == 0
        rebuilt = await audit(nc, settings, CID)
        assert rebuilt.ok, rebuilt.render()
        assert rebuilt.digest == WORKED_DIGEST
        # A second restore onto the now populated servers is refused, not merged.
        with pytest.raises(RestoreError):
            await asyncio.to_thread(restore, dst_nats.url, dst_pg.url, tmp_path / "bak")
        await nc.close()
    finally:
        dst_nats.stop()
        dst_pg.stop()
