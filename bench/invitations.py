"""Invitations per second: a wave of respondents invited by mail, credentials from identity.

Run twice on fresh servers: with identity's credential stock off (every invitation waits for a
fresh argon2id hash) and on (the stock is made while idle after the import, as it would be in
the days before a wave; docs/architecture.md, decision 29).

identity and notify run as their own uvicorn processes, as `parindex up` starts them; the SMTP
server is aiosmtpd in this process. `--respondents` respondents are registered through
RespondentRegistered events; once both services have projected them, WaveOpened is published
and the clock runs until the SMTP server has accepted one message per respondent. Each
invitation costs notify an outbox claim, a credential request-reply to identity (which hashes a
fresh password with argon2id, stores it and publishes CredentialsIssued), rendering, one SMTP
session, and an InvitationSent publish.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    CpuMeter,
    Figure,
    Servers,
    bench_campaign,
    campaign_event,
    connect,
    db_scalar,
    log,
    publish_many,
    respondent_event,
    servers,
    service_env,
    standalone,
    start_service,
    wait_for,
)
from parindex.runtime.embedded import free_port  # noqa: E402


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--respondents", type=int, default=790)
    p.add_argument(
        "--mail-rate",
        type=float,
        default=1000.0,
        help="notify's PARINDEX_MAIL_RATE (production default 50/s); high = measure capacity",
    )
    p.add_argument("--workers", type=int, default=None, help="notify sender workers (default 4)")
    p.add_argument("--timeout", type=float, default=300.0)


def defaults(args: argparse.Namespace, quick: bool) -> None:
    pass


class Counter:
    """aiosmtpd handler: counts accepted messages and the SMTP sessions that carried them."""

    def __init__(self) -> None:
        self.count = 0
        self.sessions: set[int] = set()
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        with self.lock:
            self.count += 1
            self.sessions.add(id(session))
        return "250 Message accepted for delivery"


async def hash_rate(seconds: float) -> float:
    """Fresh argon2id hashes per second through identity's process pool: each invitation
    costs one, so this bounds invitations/s on this machine."""
    from services.identity import hashing

    await hashing.acquire()
    try:
        count = 0
        stop = time.perf_counter() + seconds

        async def loop() -> None:
            nonlocal count
            while time.perf_counter() < stop:
                await hashing.hash_password("bench-Password-7")
                count += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(2 * hashing.cores())))
        return count / (time.perf_counter() - t0)
    finally:
        await hashing.release()


async def run(args: argparse.Namespace) -> list[Figure]:
    log("invitations: argon2id hash rate through the pool")
    hashes = await hash_rate(3.0)
    figures = [
        Figure("argon2id fresh hashes/s, identity's process pool", f"{hashes:,.1f}/s", rate=hashes)
    ]
    for stock in (False, True):
        with servers() as s:
            figures += await _run(s, args, stock)
    return figures


async def _stock_level(url: str) -> float:
    """identity's parindex_credential_stock gauge (/metrics answers loopback)."""
    import httpx

    async with httpx.AsyncClient() as http:
        body = (await http.get(f"{url}/metrics", timeout=5)).text
    for line in body.splitlines():
        if line.startswith("parindex_credential_stock "):
            return float(line.split()[1])
    return 0.0


async def _run(s: Servers, args: argparse.Namespace, stock: bool) -> list[Figure]:
    from aiosmtpd.controller import Controller

    from contracts import subjects
    from contracts.events import WaveOpened, make

    n = args.respondents
    counter = Counter()
    smtp = Controller(counter, hostname="127.0.0.1", port=free_port())
    smtp.start()
    c = bench_campaign("bench-invite")
    nc = await connect(s)
    js = nc.jetstream()
    await publish_many(js, [campaign_event(c)] + [respondent_event(c, i) for i in range(n)])
    extra = {
        "PARINDEX_SMTP_HOST": "127.0.0.1",
        "PARINDEX_SMTP_PORT": str(smtp.port),
        "PARINDEX_MAIL_RATE": str(args.mail_rate),
        "PARINDEX_NOTIFY_SURVEY_URL": "http://127.0.0.1/",
        "PARINDEX_CREDENTIAL_STOCK": str(n + 10) if stock else "0",
    }
    if args.workers:
        extra["PARINDEX_NOTIFY_WORKERS"] = str(args.workers)
    env = service_env(s, **extra)
    identity = await start_service("identity", s, env)
    notify = await start_service("notify", s, env)
    try:

        async def projected() -> bool:
            ids = await db_scalar(s, "identity", "SELECT count(*) FROM identity_respondents")
            ns = await db_scalar(s, "notify", "SELECT count(*) FROM notify_respondents")
            return ids == n and ns == n

        await wait_for(projected, 120, "identity and notify registries")
        if stock:  # the import happened days before the wave: the stock is full by then
            log(f"invitations: waiting for identity's stock of {n} credentials")
            t_stock = time.perf_counter()

            async def stocked() -> bool:
                return await _stock_level(identity.url) >= n

            await wait_for(stocked, 600, "credential stock", interval=1)
            stock_s = time.perf_counter() - t_stock
        assert s.postgres is not None and s.postgres.proc and s.nats.proc
        meter = CpuMeter(
            {
                "identity": identity.proc.pid,
                "notify": notify.proc.pid,
                "postgres": s.postgres.proc.pid,
                "nats": s.nats.proc.pid,
            }
        )
        log(f"invitations: WaveOpened for {n} respondents")
        meter.start()
        t0 = time.perf_counter()
        wave = c.waves[0]
        await js.publish(
            subjects.wave(c.id, wave.id),
            make(
                WaveOpened(wave_id=wave.id, opens_at=wave.opens_at),
                campaign_id=c.id,
                producer="bench",
            )
            .model_dump_json()
            .encode(),
            stream=subjects.EVENTS_STREAM,
        )
        first: float | None = None
        deadline = time.monotonic() + args.timeout
        while counter.count < n:
            if first is None and counter.count:
                first = time.perf_counter() - t0
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {counter.count} of {n} invitations in {args.timeout}s")
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - t0
        cpu = meter.stop()
        issued = await db_scalar(s, "identity", "SELECT count(*) FROM identity_credentials")
        sessions = len(counter.sessions)
    finally:
        notify.stop()
        identity.stop()
        await nc.drain()
        smtp.stop()
    if issued != n:
        raise RuntimeError(f"identity issued {issued} credentials for {n} invitations")
    rate = n / elapsed
    cap = f", mail rate cap {args.mail_rate:g}/s" if args.mail_rate < 1000 else ""
    how = "credentials from the stock made ahead" if stock else "hashed on demand"
    made = (
        [Figure(f"credential stock of {n} made while idle, before the wave", f"{stock_s:.0f} s")]
        if stock
        else []
    )
    return made + [
        Figure(
            f"invitations/s, wave of {n}, {how} (SMTP + credential RPC{cap})",
            f"{rate:,.1f}/s ({elapsed:.1f} s; first mail after {(first or 0) * 1000:.0f} ms)",
            "≥ 100/s",
            rate >= 100,
            rate=rate,
        ),
        Figure(f"SMTP sessions that carried the wave ({how})", f"{sessions} for {n} messages"),
        Figure(f"CPU cores busy during the invitation wave ({how})", cpu),
    ]


def main() -> None:
    standalone(sys.modules[__name__])


if __name__ == "__main__":
    main()
