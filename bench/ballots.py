"""Ballots per second through the survey HTTP edge, latency, and submit-to-projection lag.

The survey service runs as its own uvicorn process (`python -m services.survey`); this process
stands in for identity (answers the public-key RPC with a test key and signs respondent
tokens), registers the respondents by publishing RespondentRegistered events, waits until the
scheduler has opened the wave, then drives POST /api/ballots over real HTTP on loopback with
`--concurrency` workers, one ballot per respondent.

With `--via gateway` (the default) the requests go through the one front door
(`python -m parindex.gateway`, docs/architecture.md, decision 30), as respondents' do; `--via
direct` measures the survey process alone, so the difference is the door's cost.

Lag: after the burst, the time from the last 201 until GET /api/progress shows every ballot;
at idle, the time from one 201 until progress shows that ballot (median of `--lag-samples`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    ROOT,
    CpuMeter,
    Figure,
    Servers,
    answers_for,
    bench_campaign,
    campaign_event,
    connect,
    log,
    percentile,
    publish_many,
    respondent_event,
    servers,
    service_env,
    standalone,
    start_service,
    unit_of,
)
from bench.http_load import Connection, burst, request_bytes  # noqa: E402
from parindex.runtime.embedded import free_port  # noqa: E402


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ballots", type=int, default=None, help="ballots in the burst")
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--lag-samples", type=int, default=20)
    p.add_argument(
        "--via", choices=("gateway", "direct"), default="gateway", help="front door or survey"
    )
    p.add_argument(
        "--survey-workers",
        type=int,
        default=2,
        help="PARINDEX_SURVEY_WORKERS: survey processes (2, one per core, as for a rush)",
    )
    p.add_argument(
        "--no-floor",
        action="store_true",
        help="skip the stack's own ceiling (the same burst to an endpoint that does nothing)",
    )


def defaults(args: argparse.Namespace, quick: bool) -> None:
    if args.ballots is None:
        args.ballots = 6000 if quick else 20000  # a burst of seconds, past the warm-up


async def run(args: argparse.Namespace) -> list[Figure]:
    with servers() as s:
        return await _run(s, args)


async def _run(s: Servers, args: argparse.Namespace) -> list[Figure]:
    import httpx

    from contracts import subjects
    from parindex.web.auth import (
        COOKIE,
        Principal,
        issue_token,
        load_or_create_private_key,
        public_pem,
    )

    n = args.ballots + args.lag_samples
    key = load_or_create_private_key(s.tmp / "keys" / "identity.pem")
    pem = json.dumps({"public_key_pem": public_pem(key)}).encode()
    nc = await connect(s)
    js = nc.jetstream()

    async def public_key(msg) -> None:
        await msg.respond(pem)

    await nc.subscribe(subjects.RPC_IDENTITY_PUBLIC_KEY, cb=public_key)
    await nc.flush()

    c = bench_campaign("bench-ballots")
    log(f"ballots: registering {n} respondents")
    await publish_many(js, [campaign_event(c)] + [respondent_event(c, i) for i in range(n)])
    env = {**service_env(s), "PARINDEX_SURVEY_WORKERS": str(args.survey_workers)}
    svc = await start_service("survey", s, env)
    door = await _gateway(s, svc.url) if args.via == "gateway" else None
    base_url = door[1] if door else svc.url
    try:
        admin = {"Cookie": f"{COOKIE}={issue_token(key, Principal('admin', 'admin'))}"}
        cookies = [
            {
                "X-Requested-With": "parindex",
                "Cookie": f"{COOKIE}="
                + issue_token(
                    key,
                    Principal(f"r{i:06d}", "respondent", c.id, unit_of(c, i), "02"),
                ),
            }
            for i in range(n)
        ]
        limits = httpx.Limits(max_connections=args.concurrency + 5)
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as http:

            async def progress() -> tuple[int, int]:
                r = await http.get("/api/progress", params={"campaign": c.id}, headers=admin)
                r.raise_for_status()
                units = r.json()["units"]
                return (
                    sum(u["received"] for u in units),
                    sum(u["registered"] or 0 for u in units),
                )

            deadline = time.monotonic() + 120
            while True:  # the projection has every respondent and the wave is open
                if time.monotonic() > deadline:
                    raise TimeoutError("survey never became ready for ballots")
                try:
                    _, registered = await progress()
                    form = await http.get("/api/form", headers=cookies[-1])
                    if registered >= n and form.status_code == 200 and form.json()["open"]:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)

            def ballot_request(i: int) -> bytes:
                body = {"answers": [a.model_dump() for a in answers_for(c, unit_of(c, i), i)]}
                return request_bytes("POST", base_url, "/api/ballots", cookies[i], body)

            requests = [ballot_request(i) for i in range(n)]  # encoded before the clock starts
            log(f"ballots: {args.ballots} ballots, {args.concurrency} concurrent clients")
            assert s.postgres is not None and s.postgres.proc and s.nats.proc
            pids = {"survey": svc.proc.pid, "nats": s.nats.proc.pid}
            pids["postgres"] = s.postgres.proc.pid
            if door:
                pids["gateway"] = door[0].pid
            meter = CpuMeter(pids)
            accepted_at: list[float] = []
            seen: list[tuple[float, int]] = []  # (when, ballots progress showed)
            polling = asyncio.Event()

            async def poll() -> None:  # what a dashboard sees during the rush
                while not polling.is_set():
                    seen.append((time.perf_counter(), (await progress())[0]))
                    await asyncio.sleep(0.05)

            meter.start()
            poller = asyncio.create_task(poll())
            latencies, elapsed = await burst(
                base_url, requests[: args.ballots], args.concurrency, 201, accepted_at
            )
            cpu = meter.stop()
            last_201 = time.perf_counter()
            while (await progress())[0] < args.ballots:  # noqa: ASYNC110 - polling is the measure
                await asyncio.sleep(0.005)
            burst_lag = time.perf_counter() - last_201
            polling.set()
            await poller
            seen.append((time.perf_counter(), args.ballots))
            during = _lags(accepted_at, seen)

            lags = []
            one = await Connection.open(base_url)
            for k in range(args.lag_samples):
                i = args.ballots + k
                reply = await one.send(requests[i])
                if reply.status != 201:
                    raise RuntimeError(f"ballot {i}: {reply.status} {reply.body[:200]!r}")
                t1 = time.perf_counter()
                while (await progress())[0] < i + 1:  # noqa: ASYNC110
                    await asyncio.sleep(0.002)
                lags.append(time.perf_counter() - t1)
            one.close()
    finally:
        if door:
            door[0].terminate()
            door[0].wait(10)
        svc.stop()
        await nc.drain()
    floors = (
        []
        if args.no_floor
        else [await _floor(s, args, requests[: args.ballots], app) for app in FLOORS]
    )

    rate = args.ballots / elapsed
    p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
    return [
        Figure(
            f"ballots/s via HTTP, {args.via}, {args.survey_workers} survey process(es) "
            f"(c={args.concurrency}, n={args.ballots})",
            f"{rate:,.0f}",
            "≥ 1,500",
            rate >= 1500,
            rate=rate,
        ),
        Figure("ballot latency p50", f"{p50:.1f} ms"),
        Figure("ballot latency p99", f"{p99:.1f} ms", "< 100 ms", p99 < 100),
        Figure(
            "submit→progress lag, idle (p50 / max)",
            f"{percentile(lags, 50) * 1000:.0f} / {max(lags) * 1000:.0f} ms",
        ),
        Figure(
            "submit→progress lag during the burst (p50 / p99)",
            f"{percentile(during, 50) * 1000:.0f} / {percentile(during, 99) * 1000:.0f} ms",
            "p99 < 1 s",
            percentile(during, 99) < 1,
        ),
        Figure("submit→progress lag, after the burst", f"{burst_lag * 1000:.0f} ms"),
        Figure("CPU cores busy during the burst", cpu),
    ] + floors


FLOORS = {
    "app": "to an endpoint that only parses the body",
    "logged": "to an endpoint that parses the body and makes the one durable publish-and-wait "
    "a ballot needs",
}


async def _floor(s: Servers, args: argparse.Namespace, requests: list[bytes], name: str) -> Figure:
    """The same burst, through the same door, to an app of bench/floor_app.py: what the stack
    itself allows on this machine (after survey has stopped); `logged` adds the log's write."""
    port = free_port()
    app = _spawn_floor(s, port, name)
    url = f"http://127.0.0.1:{port}"
    door = await _gateway(s, url) if args.via == "gateway" else None
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                probe = await Connection.open(url)
                probe.close()
                break
            except OSError:
                if time.monotonic() > deadline or app.poll() is not None:
                    raise RuntimeError("bench/floor_app.py did not start") from None
                await asyncio.sleep(0.1)
        base = door[1] if door else url
        pids = {"endpoint": app.pid, "nats": s.nats.proc.pid}
        pids |= {"gateway": door[0].pid} if door else {}
        meter = CpuMeter(pids)
        meter.start()
        latencies, elapsed = await burst(base, requests, args.concurrency, 201)
        cpu = meter.stop()
    finally:
        if door:
            door[0].terminate()
            door[0].wait(10)
        app.terminate()
        app.wait(10)
    rate = len(requests) / elapsed
    return Figure(
        f"the stack's own ceiling: same burst, {args.via}, {FLOORS[name]} "
        f"(bench/floor_app.py:{name})",
        f"{rate:,.0f}/s, p99 {percentile(latencies, 99) * 1000:.1f} ms; CPU {cpu}",
        rate=rate,
    )


def _lags(accepted_at: list[float], seen: list[tuple[float, int]]) -> list[float]:
    """For the k-th accepted ballot: from its 201 until progress first showed ≥ k ballots
    (progress polled every 50 ms, so each figure may be up to 50 ms plus a poll's time late)."""
    lags = []
    j = 0
    for k, t in enumerate(accepted_at, start=1):
        while j < len(seen) and (seen[j][1] < k or seen[j][0] < t):
            j += 1
        if j == len(seen):
            break
        lags.append(seen[j][0] - t)
    return lags


def _spawn_floor(s: Servers, port: int, name: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", f"bench.floor_app:{name}", "--port", str(port)]
        + ["--log-level", "warning", "--no-access-log"],
        cwd=ROOT,
        env=service_env(s),
        stdout=open(s.tmp / "logs" / "floor.log", "ab"),  # noqa: SIM115 - handed to the child
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _spawn_gateway(s: Servers, survey_url: str, port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "parindex.gateway",
            "--port",
            str(port),
            "--upstream",
            f"survey={survey_url}",
        ],
        cwd=ROOT,
        env=service_env(s),
        stdout=open(s.tmp / "logs" / "gateway.log", "ab"),  # noqa: SIM115 - handed to the child
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


async def _gateway(s: Servers, survey_url: str) -> tuple[subprocess.Popen, str]:
    """The front door in front of survey, as `parindex up` runs it; (process, its URL)."""
    import httpx

    port = free_port()
    proc = _spawn_gateway(s, survey_url, port)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("the gateway exited")
            try:
                await client.get(url + "/", timeout=1)
                return proc, url
            except httpx.HTTPError:
                await asyncio.sleep(0.2)
    proc.kill()
    raise TimeoutError("the gateway did not start")


def main() -> None:
    standalone(sys.modules[__name__])


if __name__ == "__main__":
    main()
