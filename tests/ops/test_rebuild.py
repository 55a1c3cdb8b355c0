"""`parindex rebuild <service>` on real servers: a damaged projection comes back as it was.

Each service's projection is caught up with a small campaign (respondents, a wave, ballots, the
deadline), its tables are read, a row is dropped and another corrupted, the rebuild runs through
the CLI, and every table must equal what it was. A rebuild while the service runs is refused
with a message and changes nothing (docs/architecture.md, decision 26).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import datetime

import nats
import pytest
import pytest_asyncio
from sqlalchemy import text

from contracts import subjects
from contracts.events import RespondentRegistered, WaveOpened, make
from parindex.bus.connection import ensure_streams
from parindex.bus.projection import ProjectionRunner
from parindex.bus.publish import publish_event
from parindex.cli import main
from parindex.db.engine import make_engine, prepare, sessionmaker
from parindex.ops.rebuild import TARGETS
from parindex.runtime.embedded import NatsServer, PostgresServer
from parindex.settings import Settings
from parindex.web.service import create_app
from services.identity.service import SERVICE as IDENTITY
from tests.scoring.test_service import _publish_campaign_with_late_ballot
from tests.waiting import eventually

CID = "rebuild-2026"

# One row to drop and one to corrupt per service: (DELETE ..., UPDATE ...).
DAMAGE = {
    "identity": (
        "DELETE FROM identity_respondents WHERE respondent_id = 'r1'",
        "UPDATE identity_respondents SET full_name = 'Sai' WHERE respondent_id = 'r2'",
    ),
    "survey": (
        "DELETE FROM survey_respondents WHERE respondent_id = 'r1'",
        "UPDATE survey_ballot_counts SET received = received + 5",
    ),
    "scoring": (
        "DELETE FROM scoring_results WHERE unit_code = 'S01'",
        "UPDATE scoring_results SET adjusted = '9.99'",
    ),
    "notify": (
        "DELETE FROM notify_respondents WHERE respondent_id = 'r1'",
        "DELETE FROM notify_waves_opened",
    ),
}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    root = tmp_path_factory.mktemp("rebuild")
    nats_server = NatsServer(root / "nats").start()
    pg = PostgresServer(root / "pg" / "data").start()

    async def fill() -> None:
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        await ensure_streams(js)
        await _publish_campaign_with_late_ballot(js, CID)  # campaign, 8 ballots, the deadline
        for i, unit in enumerate(["S01", "S02", "S01"], start=1):
            reg = RespondentRegistered(
                respondent_id=f"r{i}",
                username=f"u{i}",
                full_name=f"Người Thử {i}",
                email=f"r{i}@example.vn",
                unit_code=unit,
                form_code="03",
            )
            await publish_event(
                js, subjects.respondent(CID, f"r{i}"), make(reg, campaign_id=CID, producer="t")
            )
        wave = WaveOpened(wave_id="w1", opens_at=datetime.fromisoformat("2023-09-21T00:00Z"))
        await publish_event(js, subjects.wave(CID, "w1"), make(wave, campaign_id=CID, producer="t"))
        await nc.close()

    asyncio.run(fill())
    try:
        yield Settings(nats_url=nats_server.url, database_url=pg.url, state_dir=root)
    finally:
        nats_server.stop()
        pg.stop()


@pytest_asyncio.fixture
async def cli_env(servers: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Settings]:
    monkeypatch.setenv("PARINDEX_NATS_URL", servers.nats_url)
    monkeypatch.setenv("PARINDEX_DATABASE_URL", servers.database_url)
    monkeypatch.setenv("PARINDEX_STATE_DIR", str(servers.state_dir))
    yield servers


async def _tables(url: str) -> dict[str, list[tuple]]:
    """Every row of every table (alembic's own excepted), in a stable order."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            names = (
                await conn.execute(
                    text(
                        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                        "AND tablename <> 'alembic_version' ORDER BY 1"
                    )
                )
            ).scalars()
            out = {}
            for name in list(names):
                rows = (await conn.execute(text(f"SELECT * FROM {name}"))).all()
                out[name] = sorted((tuple(r) for r in rows), key=repr)
            return out
    finally:
        await engine.dispose()


async def _catch_up(settings: Settings, service: str) -> None:
    """What the running service would have applied: its projection, caught up with the log."""
    target = TARGETS[service]
    engine = await prepare(settings.service_database_url(service), target.versions, pool_size=2)
    nc = await nats.connect(settings.nats_url)
    try:
        await ProjectionRunner(nc, sessionmaker(engine), target.make()).catch_up()
    finally:
        await nc.close()
        await engine.dispose()


async def _damage(url: str, service: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            for sql in DAMAGE[service]:
                assert (await conn.execute(text(sql))).rowcount > 0, sql
    finally:
        await engine.dispose()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("service", ["identity", "survey", "scoring", "notify"])
async def test_rebuild_gives_back_the_projection_as_it_was(cli_env: Settings, service: str) -> None:
    url = cli_env.service_database_url(service)
    await _catch_up(cli_env, service)
    before = await _tables(url)
    assert before["projection_offsets"], "the projection applied nothing"
    await _damage(url, service)
    assert await _tables(url) != before
    assert await asyncio.to_thread(main, ["rebuild", service]) == 0
    assert await _tables(url) == before


@pytest.mark.timeout(90)
async def test_rebuild_refuses_while_the_service_runs(
    cli_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    url = cli_env.service_database_url("identity")
    app = create_app(IDENTITY, cli_env)
    async with app.router.lifespan_context(app):
        runner = app.state.rt.extras["projection"]
        nc = await nats.connect(cli_env.nats_url)
        last = (await nc.jetstream().stream_info(subjects.EVENTS_STREAM)).state.last_seq
        await nc.close()
        await eventually(lambda: runner.applied_seq >= last, timeout=30)
        before = await _tables(url)
        assert await asyncio.to_thread(main, ["rebuild", "identity"]) == 3
        assert await _tables(url) == before  # nothing was reset
    err = capsys.readouterr().err
    assert "Stop it first" in err and "identity" in err
    assert "Traceback" not in err
