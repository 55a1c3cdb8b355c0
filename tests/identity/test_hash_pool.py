"""argon2id runs in identity's process pool, and the pool never outlives the service.

docs/architecture.md, decision 29. identity runs as `python -m services.identity`, as
`parindex up` starts it, on the harness's real NATS and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from parindex.runtime.embedded import free_port
from parindex.web.csrf import NONCE_COOKIE, token_for
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
CSRF_KEY = "test-hash-pool-csrf-key"
NONCE = "test-hash-pool-nonce"
LOGINS = 24  # each one argon2id verification (unknown users verify a dummy hash)


def _workers(service: psutil.Process) -> list[psutil.Process]:
    """The service's pool workers: spawned multiprocessing children (not the resource tracker)."""
    out = []
    for child in service.children(recursive=True):
        try:
            cmd = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "spawn_main" in cmd:
            out.append(child)
    return out


def _cpu(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


def _gone(pids: list[int]) -> bool:
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


@dataclass
class Running:
    proc: subprocess.Popen
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid


@pytest.fixture
def service(nats_url: str, pg_url: str, tmp_path: Path) -> Iterator[Running]:
    port = free_port()
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        PARINDEX_NATS_URL=nats_url,
        PARINDEX_DATABASE_URL=pg_url,
        PARINDEX_STATE_DIR=str(tmp_path / "state"),
        PARINDEX_ARGON2_WORKERS="2",
        PARINDEX_CSRF_KEY=CSRF_KEY,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.identity", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=open(tmp_path / "identity.log", "ab"),  # noqa: SIM115 - handed to the child
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield Running(proc, f"http://127.0.0.1:{port}", tmp_path / "identity.log")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


async def _ready(svc: Running) -> list[psutil.Process]:
    async def ready() -> bool:
        assert svc.proc.poll() is None, "identity exited during start-up"
        try:
            async with httpx.AsyncClient() as http:
                return (await http.get(f"{svc.url}/readyz", timeout=2)).status_code == 200
        except httpx.HTTPError:
            return False

    await eventually(ready, timeout=60, interval=0.2)
    workers = _workers(psutil.Process(svc.pid))
    assert len(workers) == 2, [w.cmdline() for w in workers]
    return workers


async def test_logins_hash_in_the_pool_while_the_loop_keeps_answering(service: Running) -> None:
    workers = await _ready(service)
    main = psutil.Process(service.pid)
    before_workers, before_main = _cpu(workers), _cpu([main])
    csrf = token_for(CSRF_KEY.encode(), nonce=NONCE)
    async with httpx.AsyncClient(base_url=service.url, timeout=60) as http:

        async def attempt() -> int:
            r = await http.post(
                "/login",
                data={"username": f"nobody-{uuid.uuid4().hex}", "password": "x" * 12, "csrf": csrf},
                headers={"Cookie": f"{NONCE_COOKIE}={NONCE}"},
            )
            return r.status_code

        logins = [asyncio.create_task(attempt()) for _ in range(LOGINS)]
        # While the pool works through the queue, the event loop answers other requests.
        answered: list[float] = []
        while not all(t.done() for t in logins):
            t0 = time.perf_counter()
            assert (await http.get("/healthz")).status_code == 200
            answered.append(time.perf_counter() - t0)
        codes = await asyncio.gather(*logins)
    assert codes == [401] * LOGINS
    assert answered, "the logins finished before any health check could run"
    assert max(answered) < 2.0, answered  # generous: a blocked loop would wait for the queue
    spent_workers = _cpu(workers) - before_workers
    spent_main = _cpu([main]) - before_main
    # The hashing happened in the workers: at least a few ms of CPU each, more than the loop's.
    assert spent_workers > LOGINS * 0.005, (spent_workers, spent_main)
    assert spent_workers > spent_main, (spent_workers, spent_main)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux's")
@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
async def test_no_pool_worker_outlives_the_service(service: Running, how: str) -> None:
    workers = await _ready(service)
    pids = [w.pid for w in workers]
    service.proc.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGKILL)
    await asyncio.to_thread(service.proc.wait, 40)
    if how == "sigterm":  # uvicorn re-raises the signal after a clean shutdown
        assert service.proc.returncode in (0, -signal.SIGTERM), service.proc.returncode
        log = (service.log).read_text()
        assert "Application shutdown complete" in log and "argon2 worker" not in log, log[-2000:]
    await eventually(lambda: _gone(pids), timeout=20, interval=0.1)


@pytest.mark.unit
async def test_release_stops_the_workers_and_a_dead_worker_is_replaced() -> None:
    from services.identity import hashing

    pool = await hashing.acquire()
    try:
        first = pool.pids()
        assert len(first) == pool.workers
        hashed = await hashing.hash_password("correct horse 1")
        assert await hashing.verify_password(hashed, "correct horse 1")
        assert not await hashing.verify_password(hashed, "wrong horse 1")
        assert not await hashing.verify_password(None, "correct horse 1")
        os.kill(first[0], signal.SIGKILL)  # an OOM kill: logins go on with a new pool
        # Gone, or already reaped by the pool: psutil.Process(pid) would raise for the latter.
        await eventually(lambda: _gone(first[:1]), timeout=10, interval=0.05)
        assert await hashing.verify_password(hashed, "correct horse 1")
        second = pool.pids()
        assert second and not set(second) & set(first)
    finally:
        await hashing.release()
    assert hashing.current() is None
    assert _gone(first + second)  # release waits for them: no worker left behind


async def test_credentials_come_from_the_stock_made_ahead_and_log_in(
    nats_url, pg_url, tmp_path, nc, campaign_id, monkeypatch
) -> None:
    """Pairs hashed while idle are handed out once each; an empty stock hashes on demand."""
    import json
    from datetime import UTC, datetime, timedelta

    from contracts import subjects
    from contracts.events import CampaignDefined, RespondentRegistered, make
    from parindex.bus.publish import publish_event
    from parindex.settings import Settings
    from parindex.web.service import create_app
    from services.identity.service import SERVICE
    from tests.identity.conftest import make_campaign
    from tests.identity.test_service import login

    monkeypatch.setenv("PARINDEX_CREDENTIAL_STOCK", "10")
    js = nc.jetstream()
    deadline = datetime.now(UTC).replace(microsecond=0) + timedelta(days=20)
    campaign = make_campaign().model_copy(update={"id": campaign_id, "deadline": deadline})
    await publish_event(
        js,
        subjects.campaign(campaign_id),
        make(CampaignDefined(campaign=campaign), campaign_id=campaign_id, producer="test"),
    )
    people = [f"s{i}-{uuid.uuid4().hex[:8]}" for i in range(3)]
    for rid in people:
        await publish_event(
            js,
            subjects.respondent(campaign_id, rid),
            make(
                RespondentRegistered(
                    respondent_id=rid,
                    username=f"u-{rid}",
                    full_name="Nguyễn Văn Sẵn",
                    email=f"{rid}@example.vn",
                    unit_code="SNV",
                    form_code="03",
                ),
                campaign_id=campaign_id,
                producer="test",
            ),
        )
    settings = Settings(nats_url=nats_url, database_url=pg_url, state_dir=tmp_path)
    app = create_app(SERVICE, settings)
    async with app.router.lifespan_context(app):
        stock = app.state.rt.extras["credential_stock"]
        # Other tests' campaigns with a deadline ahead may add to the demand: at least ours.
        await eventually(lambda: len(stock.pairs) >= 3, timeout=60)
        assert stock.target <= 10  # the cap
        ready = {pw for pw, _ in stock.pairs}

        async def credential(rid: str) -> dict:
            req = {"campaign_id": campaign_id, "respondent_id": rid, "purpose": "invitation"}
            reply = await nc.request(
                subjects.RPC_IDENTITY_CREDENTIAL, json.dumps(req).encode(), timeout=30
            )
            return json.loads(reply.data)

        served = stock.served
        creds = [await credential(rid) for rid in people]
        assert stock.served == served + 3
        assert len({c["password"] for c in creds}) == 3 and {c["password"] for c in creds} <= ready
        # An empty stock (its refill may be mid-hash, so stand in for it): hashed on demand.
        monkeypatch.setattr(stock, "take", lambda: None)
        again = await credential(people[0])
        assert again["password"] not in ready
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            for c in (*creds[1:], again):
                assert (await login(http, c["username"], c["password"])).status_code == 303
                http.cookies.clear()
