"""Logins: argon2id verifications per second, and a wave of respondents logging in at once.

1. identity's own verify (services.identity.credentials.verify_password, argon2id with the
   parameters identity hashes with) on one thread, then on every core at once.
2. identity runs as its own uvicorn process; `--respondents` respondents are registered through
   RespondentRegistered events and given a credential (one precomputed argon2id hash, so setup
   is fast; the verification cost is the same), then each POSTs /login once, the starts spread
   uniformly over `--wave-seconds`. Reported: when the last login finished, and p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import os
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
    start_service,
    table,
    wait_for,
)

PASSWORD = "bench-Password-7"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--respondents", type=int, default=790)
    p.add_argument("--wave-seconds", type=float, default=60.0)
    p.add_argument("--verify-seconds", type=float, default=None)


def defaults(args: argparse.Namespace, quick: bool) -> None:
    if args.verify_seconds is None:
        args.verify_seconds = 3.0 if quick else 10.0


async def verify_rate(seconds: float, threads: int) -> float:
    """Verifications per second with `threads` verifying concurrently (identity's own code)."""
    from services.identity.credentials import HASHER, verify_password

    hashed = HASHER.hash(PASSWORD)
    count = 0
    stop = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal count
        while time.perf_counter() < stop:
            assert await verify_password(hashed, PASSWORD)
            count += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(threads)))
    return count / (time.perf_counter() - t0)


async def run(args: argparse.Namespace) -> list[Figure]:
    from services.identity.credentials import HASHER

    cores = len(os.sched_getaffinity(0))
    log("logins: argon2id verify rate")
    one = await verify_rate(args.verify_seconds, 1)
    many = await verify_rate(args.verify_seconds, cores)
    params = f"m={HASHER.memory_cost} KiB, t={HASHER.time_cost}, p={HASHER.parallelism}"
    figures = [
        Figure(f"argon2id verify, 1 thread ({params})", f"{one:,.0f}/s ({1000 / one:.0f} ms)"),
        Figure(f"argon2id verify, {cores} threads", f"{many:,.0f} logins/s"),
    ]
    with servers() as s:
        figures += await _wave(s, args)
    return figures


async def _wave(s: Servers, args: argparse.Namespace) -> list[Figure]:
    import httpx

    from bench.common import CSRF_KEY
    from parindex.web.csrf import NONCE_COOKIE, token_for
    from services.identity.credentials import HASHER

    n = args.respondents
    c = bench_campaign("bench-logins")
    nc = await connect(s)
    await publish_many(
        nc.jetstream(), [campaign_event(c)] + [respondent_event(c, i) for i in range(n)]
    )
    await nc.drain()
    svc = await start_service("identity", s, service_env(s))
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
            "INSERT INTO identity_credentials (campaign, respondent_id, password_hash, purpose, "
            "issued_at) VALUES ($1, $2, $3, 'invitation', now())",
            [(c.id, f"r{i:06d}", hashed) for i in range(n)],
        )
        await conn.close()

        latencies: list[float] = []
        failures: list[str] = []
        limits = httpx.Limits(max_connections=n)
        async with httpx.AsyncClient(base_url=svc.url, limits=limits, timeout=120) as http:
            nonce = "bench-csrf-nonce"
            csrf = token_for(CSRF_KEY.encode(), nonce=nonce)

            async def login(i: int, at: float) -> None:
                await asyncio.sleep(max(0.0, at - time.perf_counter()))
                t = time.perf_counter()
                r = await http.post(
                    "/login",
                    data={"username": f"u{i:06d}", "password": PASSWORD, "csrf": csrf},
                    headers={"Cookie": f"{NONCE_COOKIE}={nonce}"},
                    follow_redirects=False,
                )
                latencies.append(time.perf_counter() - t)
                if r.status_code != 303:
                    failures.append(f"{r.status_code}")

            log(f"logins: {n} logins spread over {args.wave_seconds:.0f} s")
            assert s.postgres is not None and s.postgres.proc
            meter = CpuMeter({"identity": svc.proc.pid, "postgres": s.postgres.proc.pid})
            meter.start()
            t0 = time.perf_counter()
            step = args.wave_seconds / n
            await asyncio.gather(*(login(i, t0 + i * step) for i in range(n)))
            finished = time.perf_counter() - t0
            cpu = meter.stop()
    finally:
        svc.stop()
    if failures:
        raise RuntimeError(f"{len(failures)} logins failed, e.g. HTTP {failures[0]}")
    p99 = percentile(latencies, 99) * 1000
    return [
        Figure(
            f"wave: {n} logins spread over {args.wave_seconds:.0f} s, all done after",
            f"{finished:.1f} s",
            f"≤ {args.wave_seconds + 1:.0f} s",
            finished <= args.wave_seconds + 1,
        ),
        Figure("wave login latency p50", f"{percentile(latencies, 50) * 1000:.0f} ms"),
        Figure("wave login latency p99", f"{p99:.0f} ms"),
        Figure("CPU cores busy during the wave", cpu),
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    add_args(p)
    args = p.parse_args()
    defaults(args, args.quick)
    print(table(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
