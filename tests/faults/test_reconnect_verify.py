"""A projection checks the log again on every reconnect, not only on start (issue #19 item 2).

The runner keeps running while its nats-server is killed and comes back, on the same port, with
the store as it was three events earlier (the power loss that moved the log back); new events
then reuse the lost sequences. The runner must notice on reconnect, rebuild, and hold exactly
the log as it now is (docs/architecture.md, decisions 24 and 26).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import nats
import pytest

from contracts import subjects
from contracts.events import CampaignClosed, make
from parindex.bus.connection import ensure_streams
from parindex.bus.projection import ProjectionRunner
from parindex.bus.publish import publish_event
from parindex.db.engine import prepare, sessionmaker
from parindex.runtime.embedded import NatsServer
from tests.foundation.test_projection_rewind import CAMPAIGN, VERSIONS, Ids, _holds
from tests.waiting import eventually


async def _publish(url: str, n: int) -> list[str]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_streams(js)
    ids = []
    for _ in range(n):
        env = make(CampaignClosed(reason="ok"), campaign_id=CAMPAIGN, producer="t")
        await publish_event(js, subjects.campaign(CAMPAIGN), env)
        ids.append(env.event_id)
    await nc.close()
    return ids


@pytest.mark.timeout(90)
async def test_a_log_that_moved_back_is_found_on_reconnect(tmp_path: Path, db_url: str) -> None:
    engine = await prepare(db_url, VERSIONS)
    sessions = sessionmaker(engine)
    store, earlier = tmp_path / "nats", tmp_path / "nats-earlier"
    server = NatsServer(store).start()
    nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    runner = ProjectionRunner(nc, sessions, Ids(), filter_subject="par.evt.>")
    task = None
    try:
        first = await _publish(server.url, 3)
        task = asyncio.create_task(runner.run())
        await eventually(lambda: _holds(sessions, first), timeout=30)
        server.stop()  # the store as it stands now is what the power loss will bring back
        shutil.copytree(store, earlier)
        server.start()
        lost = await _publish(server.url, 3)
        await eventually(lambda: _holds(sessions, first + lost), timeout=30)

        server.kill()
        shutil.rmtree(store)
        shutil.copytree(earlier, store)
        server.start()  # same port: the runner's connection reconnects to the shorter log
        new = await _publish(server.url, 2)  # sequences 4 and 5 again, other events
        await eventually(lambda: _holds(sessions, first + new), timeout=45)
        assert not runner.log_mismatch or await eventually(lambda: not runner.log_mismatch)
    finally:
        runner.stop()
        if task is not None:
            await asyncio.wait_for(task, 15)
        await nc.close()
        server.stop()
        await engine.dispose()
