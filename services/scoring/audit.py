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
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from contracts import subjects
from contracts.events import EventError, ResultRow, ResultsPublished, ResultsReleased, decode
from parindex.bus.projection import ProjectionRunner
from parindex.bus.pull import stream_seq
from parindex.db.engine import _asyncpg_dsn, prepare, sessionmaker
from parindex.settings import Settings, database_url_for
from services.scoring.method import digest
from services.scoring.projection import ScoringProjection, load_rows
from services.scoring.service import VERSIONS

SHOWN_REFUSED = 20  # refused events named in the text report


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
    # Events every projection refuses (dead letters): not counted here either, and named.
    refused: list[str] = field(default_factory=list)

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
        if self.refused:
            lines.append(f"  refused events, not counted (as by scoring): {len(self.refused)}")
            lines += [f"    {r}" for r in self.refused[:SHOWN_REFUSED]]
            if len(self.refused) > SHOWN_REFUSED:
                lines.append(f"    … {len(self.refused) - SHOWN_REFUSED} more (--json lists all)")
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
    # Each is decided once (expected sequence 0), so the first event on the subject is the one
    # that counts; anything else there is named, and fails the audit (decision 47).
    msg, published = await _first(js, subjects.results(campaign_id), ResultsPublished, report)
    if msg is not None and isinstance(published, ResultsPublished):
        report.published_digest = published.digest
        report.published_last_sequence = published.last_sequence
        published_seq = msg.seq
    _, released = await _first(js, subjects.release(campaign_id), ResultsReleased, report)
    if isinstance(released, ResultsReleased):  # the admin's publication (decision 16)
        report.released_digest = released.digest
    info = await js.stream_info(subjects.EVENTS_STREAM)
    until = published_seq or info.state.last_seq

    scratch = f"parindex_audit_{uuid.uuid4().hex[:12]}"
    url = database_url_for(settings.database_url, scratch)
    engine = await prepare(url, VERSIONS, pool_size=2)
    try:
        sessions = sessionmaker(engine)

        async def refused(msg: Msg, reason: str) -> None:
            # The auditor reads only: what scoring dead-letters is listed, not written again.
            report.refused.append(f"seq {stream_seq(msg)} on {msg.subject}: {reason}")

        runner = ProjectionRunner(
            nc,
            sessions,
            ScoringProjection(),
            filter_subject=subjects.all_events(campaign_id),
            on_refused=refused,
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


async def _first(
    js: JetStreamContext, subject: str, kind: type, report: AuditReport
) -> tuple[RawStreamMsg | None, object]:
    """The first event on `subject` and its payload; (None, None) if there is none. One that
    cannot be read, or is not a `kind`, is a difference in the report."""
    try:
        msg = await js.get_msg(subjects.EVENTS_STREAM, seq=1, subject=subject, next=True)
    except NotFoundError:
        return None, None
    try:
        payload: object = decode(msg.data or b"")[1]
    except EventError as exc:
        payload = None
        what = f"an unreadable event ({exc})"
    else:
        what = type(payload).__name__
    if not isinstance(payload, kind):
        report.differences.append(
            f"{subject} holds {what} at sequence {msg.seq}, where only {kind.__name__} belongs"
        )
        return None, None
    return msg, payload


def report_json(report: AuditReport) -> str:
    return json.dumps(report.__dict__ | {"ok": report.ok}, ensure_ascii=False, indent=2)
