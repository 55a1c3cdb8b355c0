"""What `sync_interval: always` costs: publish-and-wait throughput with and without it.

The compose NATS nodes fsync every write before the ack (docs/architecture.md, decision 21).
This measures the price on the machine it runs on: one publisher, each publish waiting for its
ack (a ballot's 201 waits for exactly that), on a fresh single-node nats-server, once with the
production setting and once with nats-server's default lazy fsync.

    python -m bench.sync [--count 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import nats  # noqa: E402

from parindex.runtime import embedded  # noqa: E402

PAYLOAD = b"x" * 1500  # about one ballot envelope


async def _measure(url: str, count: int) -> float:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="BENCH", subjects=["bench.>"])
        for i in range(50):  # warm-up
            await js.publish(f"bench.w.{i}", PAYLOAD)
        start = time.perf_counter()
        for i in range(count):
            await js.publish(f"bench.b.{i}", PAYLOAD)
        return count / (time.perf_counter() - start)
    finally:
        await nc.close()


def run(always: bool, count: int) -> float:
    """Publishes per second on a fresh server; `always` False drops the setting (lazy fsync)."""
    production = embedded.NATS_CONF
    if not always:
        embedded.NATS_CONF = production.replace("  sync_interval: always\n", "")
    try:
        with tempfile.TemporaryDirectory(prefix="parindex-sync-") as tmp:
            server = embedded.NatsServer(Path(tmp) / "nats").start()
            try:
                return asyncio.run(_measure(server.url, count))
            finally:
                server.stop()
    finally:
        embedded.NATS_CONF = production


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    always = run(True, args.count)
    lazy = run(False, args.count)
    print("| nats-server sync_interval | publish-and-wait/s |")
    print("|---|---|")
    print(f"| always (deploy/nats, embedded) | {always:,.0f} |")
    print(f"| default (lazy, 2 min) | {lazy:,.0f} |")
    print(f"always costs {100 * (1 - always / lazy):.0f}% of lazy throughput")


if __name__ == "__main__":
    main()
