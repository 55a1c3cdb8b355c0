"""Run every benchmark, print one table, and write docs/benchmarks.md.

    python bench/run.py [--quick] [--only ballots,rebuild,logins,invitations] [sizes...]

Each benchmark is also a module runnable alone (`python bench/ballots.py --help`). Every one
starts its own nats-server and PostgreSQL in a temporary directory. Every run also measures the
log's own ceiling (bench/ceiling.py: pipelined durable publishes) before the first benchmark and
after the last, and prints every rate also as a ratio to their mean: on a shared machine the
absolute figures move with the load, the ratios much less.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import ballots, ceiling, invitations, logins, rebuild  # noqa: E402
from bench.common import ROOT, Figure, load_average, log, machine, table  # noqa: E402

MODULES = {"ballots": ballots, "rebuild": rebuild, "logins": logins, "invitations": invitations}

NOTES = """\
## Reading the figures

- The machine is shared: the load average is recorded before each benchmark. A load above the
  core count means the services got only part of a core, which lowers every rate here. The
  "CPU cores busy" rows show where the CPU went (a process tree's CPU seconds / wall seconds;
  1.00 = one full core). A process that is the bottleneck but shows well under 1.00 was
  starved by other work on the machine.
- **Ballots.** Each POST /api/ballots verifies an Ed25519 token, reads the respondent, campaign,
  wave and deadline from PostgreSQL (several round trips, the campaign JSON re-validated by
  pydantic each time), publishes the ballot and waits for the JetStream ack, then deletes the
  draft in its own transaction; all of it in one Python process on one event loop. The CPU
  row shows the survey process as the busy one while nats-server and PostgreSQL stay almost
  idle, so the first limit is survey's per-request Python work (at most one core; less when
  the machine is loaded). The second limit is the log itself: nats-server runs with
  `sync_interval: always`, so every ack waits for an fsync, and even pipelined publishes from
  one client reach only the rate in the rebuild's "pipelined publish" row (1-2.6k/s on this
  disk across runs, and it includes building the events). Ballots, one publish-and-wait each,
  cannot exceed that ceiling, so more survey processes (uvicorn workers or instances; the
  projection already serialises on its offset row) can approach 1,000/s only if that row
  stays well above it. Caching the campaign and wave status per process would cut survey's
  per-request cost.
- **Rebuild.** A plain ordered-consumer read is tens of thousands of events/s; the scoring
  rebuild is far slower because `ScoringProjection._deadline` caches only a deadline that
  exists, so before the deadline every BallotSubmitted costs a `SELECT … FROM
  scoring_deadlines` round trip, and every 500-event batch re-reads the whole tally and
  recomputes every result. When the rebuild is cut off by its time limit the table says how
  many events it applied and extrapolates the time for the whole log.
- **Logins.** argon2id (m=19456 KiB, t=2, p=1) is deliberately slow. The wave needs
  `respondents / wave-seconds` verifications per second (13.2/s for 790 in a minute); if the
  all-cores verify rate is below that, logins queue and the wave cannot finish in time on
  this machine as loaded. The wave's p50/p99 show queueing: logins arrive at a steady rate
  and wait for the verifications ahead of them whenever other work takes the cores.
- **Invitations.** Each invitation is serial work in one of notify's sender workers (4 by
  default): claim, credential request-reply (identity hashes a fresh password with argon2id,
  writes it, publishes CredentialsIssued and waits for the ack), render, one SMTP session,
  publish InvitationSent and wait for the ack. The bench lifts notify's mail rate cap
  (production default PARINDEX_MAIL_RATE=50/s) to measure capacity.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], conflict_handler="resolve")
    p.add_argument("--quick", action="store_true", help="smaller sizes, shorter runs")
    p.add_argument("--only", default=",".join(MODULES), help="comma-separated benchmarks")
    p.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    for name, mod in {"ceiling": ceiling, **MODULES}.items():
        mod.add_args(p.add_argument_group(name))
    return p


async def _ceiling(args: argparse.Namespace, when: str) -> Figure:
    figure = (await ceiling.run(args))[0]
    figure.name = f"[ceiling, {when}] {figure.name}"
    return figure


def main() -> None:
    args = build_parser().parse_args()
    ceiling.defaults(args, args.quick)
    started = datetime.now(UTC)
    figures: list[Figure] = [Figure("[ceiling] load average before (1/5/15 min)", load_average())]
    log("=== ceiling (before)")
    figures.append(asyncio.run(_ceiling(args, "before")))
    for name in [n.strip() for n in args.only.split(",") if n.strip()]:
        mod = MODULES[name]
        margs = copy.copy(args)
        mod.defaults(margs, args.quick)
        figures.append(Figure(f"[{name}] load average before (1/5/15 min)", load_average()))
        log(f"=== {name}")
        t0 = time.perf_counter()
        try:
            figures += asyncio.run(mod.run(margs))
        except Exception as exc:  # one failed benchmark must not hide the others
            traceback.print_exc()
            figures.append(Figure(f"[{name}] FAILED", f"{type(exc).__name__}: {exc}"[:200]))
        log(f"=== {name} took {time.perf_counter() - t0:.0f} s")
    log("=== ceiling (after)")
    figures.append(Figure("[ceiling] load average after (1/5/15 min)", load_average()))
    figures.append(asyncio.run(_ceiling(args, "after")))
    limits = [f.rate for f in figures if f.name.startswith("[ceiling,") and f.rate]
    yardstick = sum(limits) / len(limits)
    for f in figures:
        if f.rate is not None:
            f.ratio = f.rate / yardstick
    figures.append(Figure("log ceiling used for the ratios (mean)", f"{yardstick:,.0f} events/s"))
    out = table(figures)
    print(out)
    if not args.no_docs:
        write_docs(out, started, args)


def write_docs(out: str, started: datetime, args: argparse.Namespace) -> None:
    m = machine()
    command = "python " + " ".join(["bench/run.py", *sys.argv[1:]])
    text = f"""# Benchmarks

Written by `bench/run.py`; run it again to refresh this page.

- date: {started.strftime("%Y-%m-%d %H:%M UTC")}
- command: `{command}`
- machine: {m["nproc"]} cores ({m["cpu"]}), {m["ram"]} RAM, {m["os"]}
- python {m["python"]}, {m["nats-server"]} (JetStream `sync_interval: always`), PostgreSQL from
  pgserver (`fsync=on`); every benchmark on fresh servers in a temporary directory

{out}

{NOTES}"""
    path = ROOT / "docs" / "benchmarks.md"
    path.write_text(text)
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
