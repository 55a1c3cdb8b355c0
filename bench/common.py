"""Shared plumbing for the benchmarks: real servers in a temp dir, services as subprocesses.

Every benchmark starts its own nats-server (with the production `sync_interval: always`) and
PostgreSQL from `parindex.runtime.embedded`, in a fresh temporary directory, so runs never see
each other's data. Services run as `python -m services.<name>` child processes, exactly as
`parindex up` starts them, so the load generator does not share their event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from contracts import subjects  # noqa: E402
from contracts.campaign import Campaign  # noqa: E402
from contracts.events import (  # noqa: E402
    Answer,
    BallotSubmitted,
    CampaignDefined,
    Envelope,
    RespondentRegistered,
    encode,
    make,
)
from parindex.runtime.embedded import NatsServer, PostgresServer, free_port  # noqa: E402


@dataclass
class Figure:
    """One row of the result table."""

    name: str
    value: str
    target: str = ""
    met: bool | None = None  # None: informational, no target
    rate: float | None = None  # a per-second figure, compared with the log's ceiling
    ratio: float | None = None  # rate / the log's ceiling in the same run (bench/run.py)

    @property
    def verdict(self) -> str:
        return "" if self.met is None else ("yes" if self.met else "NO")


def table(figures: Sequence[Figure]) -> str:
    """A Markdown table (also readable on a terminal); a ratio column when there are ratios."""
    rows = [("figure", "value", "target", "met?")] + [
        (f.name, f.value, f.target, f.verdict) for f in figures
    ]
    if any(f.ratio is not None for f in figures):
        rows = [(*rows[0], "÷ log ceiling")] + [
            (*r, "" if f.ratio is None else f"{f.ratio:.3g}")
            for r, f in zip(rows[1:], figures, strict=True)
        ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for i, r in enumerate(rows):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
        if i == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- servers -----------------------------------------------------------------------------
@dataclass
class Servers:
    tmp: Path
    nats: NatsServer
    postgres: PostgresServer | None


@contextlib.contextmanager
def servers(postgres: bool = True) -> Iterator[Servers]:
    """A fresh nats-server (+ PostgreSQL) in a temporary directory, removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="parindex-bench-"))
    tmp.chmod(0o755)  # PostgreSQL runs as the unprivileged 'pgserver' user when we are root
    nats = NatsServer(tmp / "nats")
    pg = PostgresServer(tmp / "pg" / "data") if postgres else None
    try:
        nats.start()
        if pg is not None:
            pg.start()
        yield Servers(tmp, nats, pg)
    finally:
        if pg is not None:
            pg.stop()
        nats.stop()
        shutil.rmtree(tmp, ignore_errors=True)


CSRF_KEY = "bench-csrf-key"  # form tokens are HMACs under it (docs/architecture.md, decision 25)


def service_env(s: Servers, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        PARINDEX_NATS_URL=s.nats.url,
        PARINDEX_DATABASE_URL=s.postgres.url if s.postgres else "",
        PARINDEX_STATE_DIR=str(s.tmp / "state"),
        PARINDEX_BALLOT_KEY="bench-ballot-key",
        PARINDEX_CSRF_KEY=CSRF_KEY,
    )
    env.update(extra)
    return env


@dataclass
class Service:
    name: str
    port: int
    proc: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def spawn_service(name: str, s: Servers, env: dict[str, str]) -> Service:
    """`python -m services.<name>` on a free loopback port, as `parindex up` starts it."""
    port = free_port()
    logs = s.tmp / "logs"
    logs.mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", f"services.{name}", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=open(logs / f"{name}.log", "ab"),  # noqa: SIM115 - handed to the child
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return Service(name, port, proc)


async def start_service(name: str, s: Servers, env: dict[str, str]) -> Service:
    """Spawn a service; returns once its /readyz says ready."""
    import httpx

    svc = spawn_service(name, s, env)
    proc = svc.proc
    logs = s.tmp / "logs"
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = (logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited; its log ends:\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{svc.url}/readyz", timeout=1)).status_code == 200:
                    return svc
            await asyncio.sleep(0.2)
    svc.stop()
    raise TimeoutError(f"{name} not ready after 60s")


async def db_scalar(s: Servers, service: str, sql: str) -> object:
    """One value from a service's own database (parindex_<service>); None if it is not there."""
    import asyncpg

    assert s.postgres is not None
    try:
        conn = await asyncpg.connect(f"{s.postgres.url}parindex_{service}")
    except asyncpg.InvalidCatalogNameError:
        return None
    try:
        return await conn.fetchval(sql)
    except asyncpg.UndefinedTableError:
        return None
    finally:
        await conn.close()


async def wait_for(check, timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout}s")
        await asyncio.sleep(interval)


async def connect(s: Servers):
    import nats

    from parindex.bus.connection import ensure_streams

    nc = await nats.connect(s.nats.url, max_reconnect_attempts=3)
    await ensure_streams(nc.jetstream())
    return nc


# --- the campaign ------------------------------------------------------------------------
QUESTIONS = 10
YES_NO = [
    {"code": "yes", "label": "Có", "weight": "1"},
    {"code": "no", "label": "Không", "weight": "0"},
    {"code": "dk", "label": "Không biết", "weight": None},
]


def bench_campaign(campaign_id: str, units: int = 20, questions: int = QUESTIONS) -> Campaign:
    """One own-unit form of `questions` yes/no questions over `units` districts; wave open now."""
    now = datetime.now(UTC).replace(microsecond=0)
    qs = [
        {"id": f"Q{i}", "text": f"Câu {i}", "max_points": "1", "options": YES_NO}
        for i in range(1, questions + 1)
    ]
    return Campaign.model_validate(
        {
            "id": campaign_id,
            "name": "Benchmark",
            "province": "Sóc Trăng",
            "year": now.year,
            "units": [
                {"code": f"H{i:02d}", "name": f"Huyện {i}", "kind": "district"}
                for i in range(units)
            ],
            "forms": [
                {
                    "code": "02",
                    "name": "Phiếu 02",
                    "group": "district_delegate",
                    "rates": "own_unit",
                    "respondent_unit_kinds": ["district"],
                    "criteria": [
                        {
                            "code": "C1",
                            "name": "Tiêu chí",
                            "max_points": str(questions),
                            "questions": qs,
                        }
                    ],
                }
            ],
            "quotas": [{"form_code": "02", "ballots": 30}],
            "waves": [
                {
                    "id": "w1",
                    "opens_at": (now - timedelta(days=1)).isoformat(),
                    "members": [{"form_code": "02"}],
                }
            ],
            "deadline": (now + timedelta(days=30)).isoformat(),
            "reminder_offsets_days": [],
        }
    )


def unit_of(c: Campaign, i: int) -> str:
    return c.units[i % len(c.units)].code


def answers_for(c: Campaign, unit: str, i: int) -> list[Answer]:
    opts = ("yes", "no", "dk")
    return [
        Answer(unit_code=unit, question_id=q.id, option_code=opts[(i + n) % 3])
        for n, q in enumerate(c.forms[0].questions())
    ]


def campaign_event(c: Campaign) -> tuple[str, Envelope]:
    return subjects.campaign(c.id), make(
        CampaignDefined(campaign=c), campaign_id=c.id, producer="bench"
    )


def respondent_event(c: Campaign, i: int, email_domain: str = "example.vn") -> tuple[str, Envelope]:
    rid = f"r{i:06d}"
    payload = RespondentRegistered(
        respondent_id=rid,
        username=f"u{i:06d}",
        full_name=f"Nguyễn Văn {i}",
        email=f"{rid}@{email_domain}",
        unit_code=unit_of(c, i),
        form_code="02",
    )
    return subjects.respondent(c.id, rid), make(payload, campaign_id=c.id, producer="identity")


def ballot_event(c: Campaign, i: int) -> tuple[str, Envelope]:
    unit = unit_of(c, i)
    pseudo = uuid.uuid4().hex
    payload = BallotSubmitted(
        ballot_id=str(uuid.uuid4()),
        form_code="02",
        unit_code=unit,
        submitted_on=datetime.now(UTC).date(),
        answers=answers_for(c, unit, i),
    )
    return subjects.ballot(c.id, pseudo), make(payload, campaign_id=c.id, producer="survey")


async def publish_many(js, events, window: int = 1000) -> int:
    """Pipelined publishes: up to `window` acks in flight, awaited together per batch."""
    batch: list = []
    done = 0

    async def flush() -> None:
        nonlocal done
        if batch:
            await asyncio.gather(*batch)
            done += len(batch)
            batch.clear()

    for subject, env in events:
        hdrs = {"Nats-Msg-Id": env.event_id, "Parindex-Type": env.type}
        batch.append(
            js.publish(
                subject, encode(env), stream=subjects.EVENTS_STREAM, headers=hdrs, timeout=60
            )
        )
        if len(batch) >= window:
            await flush()
    await flush()
    return done


# --- CPU accounting ----------------------------------------------------------------------
def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user+system CPU seconds) of one process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / tick


def cpu_seconds(root_pid: int) -> float:
    """CPU seconds used so far by a process and its live descendants (PostgreSQL backends)."""
    stats = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and (st := _stat(int(d.name))) is not None:
            stats[int(d.name)] = st
    total, todo = 0.0, [root_pid]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1]
            todo.extend(c for c, (ppid, _) in stats.items() if ppid == pid)
    return total


class CpuMeter:
    """CPU seconds per named process tree between start() and stop()."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.before: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def start(self) -> None:
        self.before = {n: cpu_seconds(p) for n, p in self.pids.items()}
        self.t0 = time.perf_counter()
        self.self0 = time.process_time()

    def stop(self) -> str:
        wall = time.perf_counter() - self.t0
        self.used = {n: cpu_seconds(p) - self.before[n] for n, p in self.pids.items()}
        self.used["load generator"] = time.process_time() - self.self0
        return ", ".join(f"{n} {v / wall:.2f}" for n, v in self.used.items())


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "unknown"


# --- the machine -------------------------------------------------------------------------
def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    from parindex.runtime.embedded import nats_server_binary

    try:
        nats_v = subprocess.run(
            [nats_server_binary(), "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        nats_v = "unknown"
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": cpu,
        "ram": ram,
        "python": platform.python_version(),
        "nats-server": nats_v,
        "os": platform.platform(),
    }


def dump(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=2)


def standalone(module: ModuleType) -> None:
    """Run one benchmark module on its own: its options, then its figures as a table."""
    p = argparse.ArgumentParser(description=(module.__doc__ or "").splitlines()[0])
    p.add_argument("--quick", action="store_true")
    module.add_args(p)
    args = p.parse_args()
    module.defaults(args, args.quick)
    print(table(asyncio.run(module.run(args))))
