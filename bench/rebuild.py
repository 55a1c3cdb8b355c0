"""Rebuilding the scoring projection from the log, against a plain read of the same stream.

1. Publish a CampaignDefined and N BallotSubmitted events (pipelined: `--window` publishes in
   flight, awaited together).
2. (a) Read the stream with a plain nats-py ordered consumer (no decoding): events/s.
3. (b) In a child process, rebuild ScoringProjection through ProjectionRunner.catch_up into a
   fresh database: events/s and the child's peak RSS (VmHWM), checked against the counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    ROOT,
    Figure,
    Servers,
    ballot_event,
    bench_campaign,
    campaign_event,
    connect,
    log,
    publish_many,
    servers,
    table,
)

HERE = str(Path(__file__).resolve())


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--events", type=int, default=None, help="BallotSubmitted events")
    p.add_argument("--window", type=int, default=1000, help="publishes in flight")
    p.add_argument("--batch-size", type=int, default=500, help="projection batch size")
    p.add_argument(
        "--rebuild-seconds",
        type=float,
        default=None,
        help="stop the rebuild after this long and report the rate so far (0: to the end)",
    )


def defaults(args: argparse.Namespace, quick: bool) -> None:
    if args.events is None:
        args.events = 100_000 if quick else 1_000_000
    if args.rebuild_seconds is None:
        args.rebuild_seconds = 45 if quick else 120


async def run(args: argparse.Namespace) -> list[Figure]:
    with servers() as s:
        return await _run(s, args)


def _events(n: int):
    c = bench_campaign("bench-rebuild")
    yield campaign_event(c)
    for i in range(n):
        yield ballot_event(c, i)


async def _run(s: Servers, args: argparse.Namespace) -> list[Figure]:
    from contracts import subjects

    nc = await connect(s)
    js = nc.jetstream()
    log(f"rebuild: publishing {args.events:,} BallotSubmitted events")
    t0 = time.perf_counter()
    total = await publish_many(js, _events(args.events), window=args.window)
    pub_rate = total / (time.perf_counter() - t0)
    info = await js.stream_info(subjects.EVENTS_STREAM)
    size_mb = info.state.bytes / 1e6

    log("rebuild: (a) ordered-consumer read")
    done = asyncio.Event()
    seen = 0

    async def count(msg) -> None:
        nonlocal seen
        seen += 1
        if seen >= total:
            done.set()

    t0 = time.perf_counter()
    sub = await js.subscribe(
        "par.evt.>",
        stream=subjects.EVENTS_STREAM,
        ordered_consumer=True,
        cb=count,
        pending_msgs_limit=-1,
        pending_bytes_limit=-1,
    )
    await asyncio.wait_for(done.wait(), timeout=600)
    read_rate = total / (time.perf_counter() - t0)
    await sub.unsubscribe()
    await nc.drain()

    log("rebuild: (b) ScoringProjection.catch_up in a child process")
    assert s.postgres is not None
    proc = await asyncio.create_subprocess_exec(
        *[
            sys.executable,
            HERE,
            "--child",
            "--nats-url",
            s.nats.url,
            "--server-url",
            s.postgres.url,
            "--batch-size",
            str(args.batch_size),
            "--rebuild-seconds",
            str(args.rebuild_seconds),
        ],
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"rebuild child failed:\n{err.decode()[-3000:]}")
    res = json.loads(out.decode().strip().splitlines()[-1])
    if res["ballots_counted"] != res["events"] - 1:  # sequence 1 is the CampaignDefined
        raise RuntimeError(f"rebuild counted {res['ballots_counted']} of {res['events'] - 1}")
    partial = res["events"] < total
    rebuild_rate = res["events"] / res["seconds"]
    ratio = rebuild_rate / read_rate
    # ru_maxrss of waited-for children is the largest child so far; VmHWM is this child's own.
    children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    rss_mb = (res["vmhwm_kb"] or children_kb) / 1024
    n = f"{args.events:,}"
    applied = f"{res['events']:,} of {total:,} events in {res['seconds']:.0f} s"
    if partial:
        applied += f"; whole log ≈ {total / rebuild_rate / 60:,.0f} min"
    return [
        Figure(
            f"pipelined publish, {n} events (window {args.window})",
            f"{pub_rate:,.0f} events/s ({size_mb:,.0f} MB)",
            rate=pub_rate,
        ),
        Figure(
            f"(a) ordered-consumer read, {n} events",
            f"{read_rate:,.0f} events/s",
            rate=read_rate,
        ),
        Figure(
            f"(b) scoring rebuild via catch_up, {n} events",
            f"{rebuild_rate:,.0f} events/s ({applied})",
            rate=rebuild_rate,
        ),
        Figure("rebuild / read ratio (b)/(a)", f"{ratio:.2f}", "≥ 0.5", ratio >= 0.5),
        Figure("rebuild peak RSS (child VmHWM)", f"{rss_mb:.0f} MB", "< 300 MB", rss_mb < 300),
    ]


# --- the child: one rebuild, figures on stdout -------------------------------------------
async def child(nats_url: str, server_url: str, batch_size: int, max_s: float) -> dict:
    import uuid

    import nats
    from sqlalchemy import text

    from parindex.bus.projection import ProjectionRunner, ensure_event_id_column
    from parindex.db.engine import prepare, sessionmaker
    from parindex.settings import database_url_for
    from services.scoring.projection import ScoringProjection
    from services.scoring.service import VERSIONS

    url = database_url_for(server_url, f"bench_rebuild_{uuid.uuid4().hex[:8]}")
    engine = await prepare(url, VERSIONS)
    nc = await nats.connect(nats_url)
    runner = ProjectionRunner(nc, sessionmaker(engine), ScoringProjection(), batch_size=batch_size)
    async with runner.sessions.begin() as session:  # a fresh database (decision 24's column)
        await ensure_event_id_column(session)
    await runner.reset()
    t0, cpu0 = time.perf_counter(), time.process_time()
    task = asyncio.ensure_future(runner.catch_up())
    done, _ = await asyncio.wait({task}, timeout=max_s or None)
    if not done:  # time is up: what is committed counts (the open batch rolls back)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    async with runner.sessions() as session:
        from parindex.bus.projection import read_offset

        last = await read_offset(session, runner.projection.name)
    async with engine.connect() as conn:
        counted = await conn.scalar(
            text("SELECT coalesce(sum(received), 0) FROM scoring_ballot_counts")
        )
    await nc.drain()
    await engine.dispose()
    return {
        "events": last,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "ballots_counted": int(counted),
        "vmhwm_kb": _vmhwm_kb(),
    }


def _vmhwm_kb() -> int | None:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--nats-url", help=argparse.SUPPRESS)
    p.add_argument("--server-url", help=argparse.SUPPRESS)
    add_args(p)
    args = p.parse_args()
    if args.child:
        print(
            json.dumps(
                asyncio.run(
                    child(args.nats_url, args.server_url, args.batch_size, args.rebuild_seconds)
                )
            )
        )
        return
    defaults(args, args.quick)
    print(table(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
