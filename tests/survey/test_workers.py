"""Survey as several processes on one socket (PARINDEX_SURVEY_WORKERS, docs/architecture.md,
decision 44): the log still lets exactly one ballot per person through when the racing
submissions land in different processes, and SIGTERM stops every worker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from contracts import subjects
from contracts.events import CampaignDefined, make
from parindex.bus.publish import publish_event
from parindex.runtime.embedded import free_port
from parindex.web.auth import COOKIE, issue_token
from services.survey.secrecy import pseudonym
from tests.survey.test_service import (
    KEY,
    OPEN,
    full_answers,
    register,
    respondent,
    small_campaign,
    subject_count,
)
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
RACERS = 16
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def two_workers(nats_url: str, pg_url: str, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    port = free_port()
    env = dict(os.environ)
    env.update(
        PARINDEX_NATS_URL=nats_url,
        PARINDEX_DATABASE_URL=pg_url,
        PARINDEX_STATE_DIR=str(tmp_path / "state"),
        PARINDEX_BALLOT_KEY=KEY,
        PARINDEX_CLOCK_START=OPEN.isoformat(),  # the small campaign's first wave is open
        PARINDEX_CLOCK_EPOCH=str(time.time()),
        PARINDEX_SURVEY_WORKERS="2",
    )
    log = open(tmp_path / "survey.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.survey", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()


async def test_racing_ballots_in_two_processes_make_one_ballot(
    two_workers: tuple[str, Any],
    nc: Any,
    campaign_id: str,
    signing_key: Any,
    identity_stub: Any,
    tmp_path: Path,
) -> None:
    url, proc = two_workers
    js = nc.jetstream()
    c = small_campaign(campaign_id)
    await publish_event(
        js,
        subjects.campaign(c.id),
        make(CampaignDefined(campaign=c), campaign_id=c.id, producer="t"),
    )
    await register(js, campaign_id, "an", "H-A", "02")
    headers = {
        "Cookie": f"{COOKIE}={issue_token(signing_key, respondent(campaign_id, 'an'))}",
        "X-Requested-With": "parindex",
    }

    async def open_for_ballots() -> bool:
        try:
            async with httpx.AsyncClient(base_url=url, timeout=5) as http:
                r = await http.get("/api/form", headers=headers)
        except httpx.HTTPError:
            return False
        return r.status_code == 200 and bool(r.json()["open"])

    await eventually(open_for_ballots, timeout=60, interval=0.2)
    workers = [  # not multiprocessing's resource tracker, nor a worker that already exited
        w
        for w in psutil.Process(proc.pid).children()
        if w.status() != psutil.STATUS_ZOMBIE and "spawn_main" in " ".join(w.cmdline())
    ]
    assert len(workers) == 2, [(w.pid, w.ppid(), w.cmdline()) for w in workers]
    assert b"Traceback" not in (tmp_path / "survey.log").read_bytes()  # both started first time

    async def submit(i: int) -> httpx.Response:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:  # its own connection
            body = {"answers": full_answers("H-A"), "client_submission_id": f"tab-{i}"}
            return await http.post("/api/ballots", json=body, headers=headers)

    results = await asyncio.gather(*(submit(i) for i in range(RACERS)))
    assert sorted(r.status_code for r in results) == [201] + [409] * (RACERS - 1)
    subject = subjects.ballot(campaign_id, pseudonym(KEY, campaign_id, "an"))
    assert await subject_count(js, subject) == 1

    os.kill(proc.pid, signal.SIGTERM)  # the parent stops its workers, then itself
    await eventually(lambda: proc.poll() is not None, timeout=30)
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
