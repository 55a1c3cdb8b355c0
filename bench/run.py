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

KEEP = "<!-- Kept by bench/run.py: hand-written history below this line. -->"

NOTES = """\
## Reading the figures

- The machine is shared with other jobs: the load average is recorded before each benchmark
  and after the last. A load above the core count means the services got only part of a core,
  which lowers every rate here. The "CPU cores busy" rows show where the CPU went (a process
  tree's CPU seconds / wall seconds; 1.00 = one full core; identity's tree includes its argon2
  pool workers). A process that is the bottleneck but shows well under 1.00 was starved by
  other work on the machine.
- **Ratios to the log's ceiling.** Every run measures the log's own ceiling, pipelined durable
  publishes (`sync_interval: always`, bench/ceiling.py: pre-encoded ballot-sized events, 1,000
  acks in flight), before the first benchmark and after the last, and divides every rate by
  their mean (the "÷ log ceiling" column). On a shared machine the absolute rates move with the
  load from run to run; the ratios, taken in the same run under roughly the same load, move
  less. Compare runs by the ratios.
- **Ballots.** Each POST /api/ballots goes through the front door (`--via gateway`, the
  default; `--via direct` skips it; the door's own HTTP/1.1 client, decision 44) to survey,
  which verifies the session token (once per token), takes the respondent, the campaign's row
  version, the waves opened and the deadline from memory (decision 49; one asyncpg statement
  when not kept), publishes the ballot and waits for the JetStream ack, reads the deadline
  subject's last sequence (the log decides, decision 15) and queues the draft's deletion. The
  two "stack's own ceiling" rows send the same burst through the same door to
  bench/floor_app.py: `app` only parses the body; `logged` also makes the one durable
  publish-and-wait on the ballot's own subject that every ballot needs, so it is the ceiling of
  any survey on this machine that keeps one ballot per person. The load generator
  (bench/http_load.py) sends
  requests encoded before the clock starts on keep-alive connections. "Lag during the burst":
  for each accepted ballot, the time until GET /api/progress (polled every 50 ms) first showed
  that many ballots. Survey runs as two processes (`--survey-workers 2`, one per core, as an
  operator would set PARINDEX_SURVEY_WORKERS for the deadline-day rush; `--survey-workers 1`
  measures one).
  Ballots, one durable publish-and-wait each, also cannot exceed the log's ceiling row.
- **Rebuild.** A plain ordered-consumer read does little more than parse each message. The
  scoring rebuild also decodes and validates every event (ballots through the one-pass decode
  of decision 43), checks each ballot against the campaign and counts it, reading in batches of
  5,000 through one callback subscription with the next batch requested while this one
  applies, writes the counters per batch and recomputes the results once, at the last batch.
  When the rebuild is cut off by its time limit the table says how many events it applied and
  extrapolates the time for the whole log.
- **Logins.** argon2id (m=19456 KiB, t=2, p=1, OWASP's minimum) is deliberately slow: one
  verification is tens of milliseconds of a core. identity verifies in a process pool of one
  worker per core (docs/architecture.md, decision 29), so a wave uses both cores while the
  event loop keeps answering. The spread wave (starts uniform over 60 s) needs 13.2 logins/s and
  shows queueing in its p99 whenever other work takes the cores; the burst (everyone at once,
  50 in flight) is the capacity, and the last row says whether 790 logins fit in 60 s at it.
- **Invitations.** Each invitation is one outbox row in one of notify's sender workers (16 by
  default): claim, credential request-reply to identity (which stores a fresh argon2id hash,
  publishes CredentialsIssued and waits for the ack), render, SMTP over one of a few persistent
  sessions, publish InvitationSent. Hashing on demand caps the wave at what the cores can hash
  (the "fresh hashes/s" row, less whatever else runs). identity therefore hashes credentials
  ahead while its pool is idle, as many as respondents still without one (decision 29). The
  bench shows both: the stock turned off, and the stock made before the wave opens (after an
  import, days before a wave, it is full). The bench lifts notify's mail rate cap (production
  default PARINDEX_MAIL_RATE=50/s) to measure capacity.
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
            last = ([ln for ln in str(exc).splitlines() if ln.strip()] or [""])[-1]
            figures.append(Figure(f"[{name}] FAILED", f"{type(exc).__name__}: {last}"[:200]))
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
    if path.exists():  # the hand-written history below the marker stays
        old = path.read_text()
        if KEEP in old:
            text += "\n" + old[old.index(KEEP) :]
    path.write_text(text)
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
