"""Logins: argon2id verifications per second, and waves of respondents logging in.

1. identity's own verify (services.identity.hashing, argon2id with the parameters identity
   hashes with) on one thread, then through the process pool identity runs (one worker per
   core, docs/architecture.md, decision 29).
2. identity runs as its own uvicorn process; `--respondents` respondents are registered through
   RespondentRegistered events and given a credential (one precomputed argon2id hash, so setup
   is fast; the verification cost is the same). Then two waves, each respondent POSTing /login
   once per wave:
   - spread: the starts spread uniformly over `--wave-seconds` (the target: all done in time);
   - burst: everyone at once, `--login-concurrency` in flight (the capacity: logins/s).
   Reported: wall time, logins/s, p50/p99 and the CPU of identity's process tree (pool
   workers included).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
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
    percentile,
    publish_many,
    respondent_event,
    servers,
    service_env,
    standalone,
    start_service,
    wait_for,
)

PASSWORD = "bench-Password-7"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--respondents", type=int, default=790)
    p.add_argument("--wave-seconds", type=float, default=60.0)
    p.add_argument("--verify-seconds", type=float, default=None)
    p.add_argument("--login-concurrency", type=int, default=50, help="burst: logins in flight")


def defaults(args: argparse.Namespace, quick: bool) -> None:
    if args.verify_seconds is None:
        args.verify_seconds = 3.0 if quick else 10.0


async def verify_rate(seconds: float, in_flight: int, pool: bool) -> float:
    """Verifications per second: one thread, or identity's process pool kept busy."""
    from services.identity import hashing

    hashed = hashing.HASHER.hash(PASSWORD)
    count = 0
    stop = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal count
        while time.perf_counter() < stop:
            if pool:
                assert await hashing.verify_password(hashed, PASSWORD)
            else:
                assert await asyncio.to_thread(hashing.verify_now, hashed, PASSWORD)
            count += 1

    if pool:
        await hashing.acquire()
    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(in_flight)))
        return count / (time.perf_counter() - t0)
    finally:
        if pool:
            await hashing.release()


async def run(args: argparse.Namespace) -> list[Figure]:
    from services.identity import hashing

    workers = hashing.cores()
    log("logins: argon2id verify rate")
    one = await verify_rate(args.verify_seconds, 1, pool=False)
    many = await verify_rate(args.verify_seconds, 2 * workers, pool=True)
    h = hashing.HASHER
    params = f"m={h.memory_cost} KiB, t={h.time_cost}, p={h.parallelism}"
    figures = [
        Figure(f"argon2id verify, 1 thread ({params})", f"{one:,.1f}/s ({1000 / one:.0f} ms)"),
        Figure(
            f"argon2id verify, process pool of {workers} (identity's)",
            f"{many:,.1f}/s",
            rate=many,
        ),
    ]
    with servers() as s:
        figures += await _wave(s, args)
    return figures


async def _wave(s: Servers, args: argparse.Namespace) -> list[Figure]:
    import httpx

    from services.identity.hashing import HASHER

    n = args.respondents
    c = bench_campaign("bench-logins")
    nc = await connect(s)
    await publish_many(
        nc.jetstream(), [campaign_event(c)] + [respondent_event(c, i) for i in range(n)]
    )
    await nc.drain()
    # The credentials are inserted below; no stock is made behind the measurement's back.
    svc = await start_service("identity", s, service_env(s, PARINDEX_CREDENTIAL_STOCK="0"))
    try:

        async def registered() -> bool:
            got = await db_scalar(s, "identity", "SELECT count(*) FROM identity_respondents")
            return got == n

        await wait_for(registered, 120, "identity registry")
        hashed = HASHER.hash(PASSWORD)
        import asyncpg

        assert s.postgres is not None
        conn = await asyncpg.connect(f"{s.postgres.url}parindex_identity")
        await conn.executemany(
            "INSERT INTO identity_credentials (campaign, respondent_id, password_hash, purpose) "
            "VALUES ($1, $2, $3, 'invitation')",
            [(c.id, f"r{i:06d}", hashed) for i in range(n)],
        )
        await conn.close()

        meter_pids = {"identity": svc.proc.pid, "postgres": s.postgres.proc.pid}
        async with httpx.AsyncClient(
            base_url=svc.url, limits=httpx.Limits(max_connections=n), timeout=300
        ) as http:
            spread = await _one_wave(http, n, meter_pids, spread_s=args.wave_seconds)
            burst = await _one_wave(http, n, meter_pids, in_flight=args.login_concurrency)
    finally:
        svc.stop()
    out: list[Figure] = []
    for label, w in ((f"spread over {args.wave_seconds:.0f} s", spread), ("burst", burst)):
        if w.failures:
            raise RuntimeError(f"{len(w.failures)} logins failed, e.g. HTTP {w.failures[0]}")
        rate = n / w.wall
        row = Figure(
            f"login wave ({label}): {n} logins, wall time",
            f"{w.wall:.1f} s ({rate:,.1f} logins/s)",
            rate=rate,
        )
        if label != "burst":
            row.target, row.met = (
                f"≤ {args.wave_seconds + 1:.0f} s",
                w.wall <= args.wave_seconds + 1,
            )
        out += [
            row,
            Figure(
                f"login wave ({label}): latency p50 / p99",
                f"{percentile(w.latencies, 50) * 1000:.0f} / "
                f"{percentile(w.latencies, 99) * 1000:.0f} ms",
            ),
            Figure(f"login wave ({label}): CPU cores busy", w.cpu),
        ]
    burst_rate = n / burst.wall
    out.append(
        Figure(
            f"{n} logins inside 60 s at this capacity",
            f"{n / burst_rate:.1f} s needed",
            "≤ 60 s",
            n / burst_rate <= 60,
        )
    )
    return out


class Wave:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.wall = 0.0
        self.cpu = ""


async def _one_wave(
    http, n: int, pids: dict[str, int], *, spread_s: float = 0.0, in_flight: int = 0
) -> Wave:
    """Every respondent logs in once: starts spread over `spread_s`, or `in_flight` at a time."""
    from bench.common import CSRF_KEY
    from parindex.web.csrf import NONCE_COOKIE, token_for

    w = Wave()
    nonce = "bench-csrf-nonce"
    csrf = token_for(CSRF_KEY.encode(), nonce=nonce)
    gate = asyncio.Semaphore(in_flight or n)

    async def login(i: int, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        async with gate:
            t = time.perf_counter()
            r = await http.post(
                "/login",
                data={"username": f"u{i:06d}", "password": PASSWORD, "csrf": csrf},
                headers={"Cookie": f"{NONCE_COOKIE}={nonce}"},
                follow_redirects=False,
            )
            w.latencies.append(time.perf_counter() - t)
        if r.status_code != 303:
            w.failures.append(f"{r.status_code}")

    what = f"spread over {spread_s:.0f} s" if spread_s else f"{in_flight} in flight"
    log(f"logins: {n} logins, {what}")
    meter = CpuMeter(pids)
    meter.start()
    t0 = time.perf_counter()
    step = spread_s / n
    await asyncio.gather(*(login(i, t0 + i * step) for i in range(n)))
    w.wall = time.perf_counter() - t0
    w.cpu = meter.stop()
    return w


def main() -> None:
    standalone(sys.modules[__name__])


if __name__ == "__main__":
    main()
