"""`parindex audit`: replay the log into a scratch database and check every published number.

The auditor needs read access to the stream and a PostgreSQL server to scratch on. The replay
uses the same projection code as the live service, from sequence 1, filtered to one campaign;
then it compares (1) the recomputed digest with ResultsPublished and (2) every row with the
live projection, and names each unit and number that differs.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

import asyncpg
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from contracts import subjects
from contracts.events import ResultRow, ResultsPublished, ResultsReleased, decode
from parindex.bus.projection import ProjectionRunner
from parindex.db.engine import _asyncpg_dsn, prepare, sessionmaker
from parindex.settings import Settings, database_url_for
from services.scoring.method import digest
from services.scoring.projection import ScoringProjection, load_rows
from services.scoring.service import VERSIONS


@dataclass
class AuditReport:
    campaign_id: str
    replayed_to: int = 0
    digest: str = ""
    published_digest: str | None = None
    published_last_sequence: int | None = None
    released_digest: str | None = None  # ResultsReleased: what an admin made public
    differences: list[str] = field(default_factory=list)
    rows: int = 0

    @property
    def ok(self) -> bool:
        return (
            not self.differences
            and self.published_digest in (None, self.digest)
            and self.released_digest in (None, self.digest)
        )

    def render(self) -> str:
        lines = [
            f"parindex audit — campaign {self.campaign_id}",
            f"  replayed the log up to sequence {self.replayed_to} ({self.rows} result rows)",
            f"  recomputed digest : {self.digest}",
            f"  published digest  : {self.published_digest or '(no ResultsPublished yet)'}",
        ]
        if self.published_digest is not None and self.published_digest != self.digest:
            lines.append("  MISMATCH: the published digest differs from the replay")
        if self.released_digest is not None:
            lines.append(f"  released digest   : {self.released_digest}")
            if self.released_digest != self.digest:
                lines.append("  MISMATCH: the released digest differs from the replay")
        for d in self.differences:
            lines.append(f"  MISMATCH: {d}")
        lines.append("VERDICT: " + ("OK — every number matches" if self.ok else "FAILED"))
        return "\n".join(lines)


def compare(replayed: list[ResultRow], live: list[ResultRow]) -> list[str]:
    """Row-by-row differences, naming the unit, the form and the field."""
    out: list[str] = []
    key = lambda r: (r.unit_code, r.form_code or "")  # noqa: E731
    a = {key(r): r for r in replayed}
    b = {key(r): r for r in live}
    for k in sorted(set(a) | set(b)):
        label = f"unit {k[0]}" + (f" form {k[1]}" if k[1] else " total")
        if k not in b:
            out.append(f"{label}: missing from the live projection")
            continue
        if k not in a:
            out.append(f"{label}: in the live projection but not in the log")
            continue
        for fname in ("received", "quota", "raw", "adjusted", "rank", "unit_kind"):
            x, y = getattr(a[k], fname), getattr(b[k], fname)
            if x != y:
                out.append(f"{label}: {fname} is {y} in the live projection, {x} from the log")
    return out


async def audit(
    nc: Client, settings: Settings, campaign_id: str, compare_live: bool = True
) -> AuditReport:
    js = nc.jetstream()
    report = AuditReport(campaign_id)
    published_seq: int | None = None
    try:
        msg = await js.get_last_msg(subjects.EVENTS_STREAM, subjects.results(campaign_id))
        env, payload = decode(msg.data or b"")
        assert isinstance(payload, ResultsPublished)  # the only event on the results subject
        report.published_digest = payload.digest
        report.published_last_sequence = payload.last_sequence
        published_seq = msg.seq
    except NotFoundError:
        pass
    try:  # the admin's publication (docs/architecture.md, decision 16)
        msg = await js.get_last_msg(subjects.EVENTS_STREAM, subjects.release(campaign_id))
        released = decode(msg.data or b"")[1]
        if isinstance(released, ResultsReleased):
            report.released_digest = released.digest
    except NotFoundError:
        pass
    info = await js.stream_info(subjects.EVENTS_STREAM)
    until = published_seq or info.state.last_seq

    scratch = f"parindex_audit_{uuid.uuid4().hex[:12]}"
    url = database_url_for(settings.database_url, scratch)
    engine = await prepare(url, VERSIONS, pool_size=2)
    try:
        sessions = sessionmaker(engine)
        runner = ProjectionRunner(
            nc, sessions, ScoringProjection(), filter_subject=subjects.all_events(campaign_id)
        )
        report.replayed_to = await runner.catch_up(until_seq=until) if until else 0
        async with sessions() as session:
            replayed = await load_rows(session, campaign_id)
        report.rows = len(replayed)
        report.digest = digest(replayed)
        if compare_live:
            live_engine = await prepare(settings.service_database_url("scoring"), VERSIONS, 2)
            try:
                async with sessionmaker(live_engine)() as session:
                    live = await load_rows(session, campaign_id)
            finally:
                await live_engine.dispose()
            report.differences = compare(replayed, live)
    finally:
        await engine.dispose()
        conn = await asyncpg.connect(_asyncpg_dsn(url, "postgres"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
        finally:
            await conn.close()
    return report


def report_json(report: AuditReport) -> str:
    return json.dumps(report.__dict__ | {"ok": report.ok}, ensure_ascii=False, indent=2)
