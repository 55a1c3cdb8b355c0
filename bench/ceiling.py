"""The log's own ceiling: pipelined durable publishes, the yardstick for every other figure.

A fresh nats-server with the production settings (`sync_interval: always`: every ack waits for
an fsync) and the production stream; one client publishes pre-encoded ballot-sized events
(each with its own Nats-Msg-Id, on its own ballot subject) with `--window` acks in flight.
Nothing is built or decoded while the clock runs, so this is what the log accepts, not what
our code around it does. bench/run.py measures it at the start and the end of a run (the
machine is shared: the load moves) and prints every rate also as a ratio to it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    Figure,
    ballot_event,
    bench_campaign,
    connect,
    log,
    servers,
    standalone,
)


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ceiling-events", type=int, default=None, help="publishes measured")
    p.add_argument("--ceiling-window", type=int, default=1000, help="acks in flight")


def defaults(args: argparse.Namespace, quick: bool) -> None:
    if args.ceiling_events is None:
        args.ceiling_events = 20_000 if quick else 50_000


async def measure(events: int, window: int) -> float:
    """Pipelined durable publishes per second on fresh servers."""
    from contracts import subjects
    from contracts.events import encode

    with servers(postgres=False) as s:
        nc = await connect(s)
        try:
            js = nc.jetstream()
            c = bench_campaign("bench-ceiling")
            _, env = ballot_event(c, 0)
            body = encode(env)  # one ballot-sized body; ids and subjects differ per message
            work = [
                (subjects.ballot(c.id, uuid.uuid4().hex), str(uuid.uuid4()))
                for _ in range(events + window)
            ]

            async def burst(items: list[tuple[str, str]]) -> None:
                for i in range(0, len(items), window):
                    await asyncio.gather(
                        *(
                            js.publish(
                                subject,
                                body,
                                stream=subjects.EVENTS_STREAM,
                                headers={"Nats-Msg-Id": msg_id, "Parindex-Type": env.type},
                                timeout=60,
                            )
                            for subject, msg_id in items[i : i + window]
                        )
                    )

            await burst(work[:window])  # warm-up: the stream's files exist, the client is hot
            t0 = time.perf_counter()
            await burst(work[window:])
            return events / (time.perf_counter() - t0)
        finally:
            await nc.drain()


async def run(args: argparse.Namespace) -> list[Figure]:
    log(f"ceiling: {args.ceiling_events:,} pipelined durable publishes")
    rate = await measure(args.ceiling_events, args.ceiling_window)
    return [
        Figure(
            f"log ceiling: pipelined durable publishes (window {args.ceiling_window})",
            f"{rate:,.0f} events/s",
            rate=rate,
        )
    ]


def main() -> None:
    standalone(sys.modules[__name__])


if __name__ == "__main__":
    main()
