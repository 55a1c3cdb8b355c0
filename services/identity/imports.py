"""Importing a respondent list: check it, diff it against the registry, publish the changes.

Identity writes respondent events but reads the registry back from its own projection, so the
import answers only once its events are applied: the reply lists what the registry now holds.
Event ids are derived from campaign, respondent, event type, content and the respondent's last
applied sequence, so importing the same file twice (even concurrently) is deduplicated by
NATS (Nats-Msg-Id), while a later genuine change gets a fresh id.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import async_sessionmaker

from contracts import subjects
from contracts.events import Payload, RespondentRegistered, RespondentWithdrawn, make
from parindex.bus.campaign_watch import closed_on_log
from parindex.bus.publish import Published, publish_event
from services.identity import projection
from services.identity.import_worker import parse_off_loop
from services.identity.importer import UPDATABLE, ImportDiff, ImportProblem, diff_against

PRODUCER = "identity"
EVENT_NAMESPACE = uuid.UUID("9f5a7c52-3c1e-4f57-9d0c-6b1b7f3e2a10")
Waiter = Callable[[int], Awaitable[None]]


class UnknownCampaign(LookupError):
    """The campaign has no CampaignDefined in identity's projection (yet)."""


@dataclass
class ImportReport:
    campaign_id: str
    new: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # registered, absent from this file
    merges: list[dict[str, Any]] = field(default_factory=list)
    problems: list[ImportProblem] = field(default_factory=list)
    published: int = 0  # events the stream accepted as new (not duplicates)
    registry: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "ok": self.ok,
            "counts": {
                "new": len(self.new),
                "updated": len(self.updated),
                "unchanged": len(self.unchanged),
                "missing": len(self.missing),
            },
            "new": self.new,
            "updated": self.updated,
            "missing": self.missing,
            "merges": self.merges,
            "problems": [asdict(p) for p in self.problems],
            "published": self.published,
            "respondents": [public_respondent(r) for r in self.registry],
        }

    def render(self) -> str:
        """Plain text for the CLI: counts, merges, then problems by row and column."""
        lines = [
            f"Đợt khảo sát / campaign: {self.campaign_id}",
            f"  mới / new:            {len(self.new)}",
            f"  cập nhật / updated:   {len(self.updated)}",
            f"  không đổi / unchanged: {len(self.unchanged)}",
            f"  không có trong tệp / not in file: {len(self.missing)}",
        ]
        for m in self.merges:
            rows = ", ".join(str(r) for r in m["rows"])
            lines.append(f"  gộp / merged {m['email']} (dòng/rows {rows}): {m['reason_vi']}")
        if self.problems:
            n = len(self.problems)
            lines.append(f"LỖI / PROBLEMS ({n}) — không nhập gì / nothing imported:")
            for p in self.problems:
                where = f"{p.sheet}!" if p.sheet else ""
                lines.append(
                    f"  {where}dòng {p.row}, cột «{p.column}»: {p.message_vi} / {p.message_en}"
                )
        return "\n".join(lines)


def public_respondent(r: dict[str, Any]) -> dict[str, Any]:
    """What may leave identity about a respondent: no credential, no bookkeeping."""
    return {
        "respondent_id": r["respondent_id"],
        "username": r["username"],
        "full_name": r["full_name"],
        "email": r["email"],
        "unit_code": r["unit_code"],
        "form_code": r["form_code"],
        "roles": list(r.get("roles") or []),
    }


def event_id_for(campaign_id: str, respondent_id: str, payload: Payload, last_seq: int) -> str:
    content = json.dumps(payload.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    digest = hashlib.sha256(content.encode()).hexdigest()
    key = "|".join((campaign_id, respondent_id, type(payload).__name__, digest, str(last_seq)))
    return str(uuid.uuid5(EVENT_NAMESPACE, key))


async def stream_last_seq(js: JetStreamContext) -> int:
    info = await js.stream_info(subjects.EVENTS_STREAM)
    return int(info.state.last_seq)


class CampaignClosedToImports(Exception):
    """The campaign's deadline has passed (or it was closed): its registry is final
    (docs/architecture.md, decision 39)."""


class PreviewOutdated(Exception):
    """The registry or the file changed since the preview the admin confirmed."""


@dataclass
class Prepared:
    """An import checked and diffed, nothing published yet: what a preview shows."""

    report: ImportReport
    diff: ImportDiff | None
    rows: dict[str, dict[str, Any]]  # respondent id -> registry row, withdrawn ones included
    withdraw: bool

    @property
    def withdrawals(self) -> list[str]:
        return list(self.report.missing) if self.withdraw and self.diff is not None else []

    @property
    def digest(self) -> str:
        """Of exactly what would be published, so a confirm can insist on the preview's."""
        if self.diff is None:
            return ""
        parts = {
            "campaign": self.report.campaign_id,
            "new": [p.to_event().model_dump(mode="json") for p in self.diff.new],
            "updated": [
                [u.respondent.respondent_id, sorted(map(str, u.changes.items()))]
                for u in self.diff.updated
            ],
            "missing": self.report.missing,  # withdrawn only if the confirm asks
            "seq": sorted((k, r["last_seq"]) for k, r in self.rows.items()),
        }
        text = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def preview(self) -> dict[str, Any]:
        """Rows a person checks before confirming: adds, changes (before → after), withdrawals."""
        if self.diff is None:
            return {"new": [], "updated": [], "missing": []}
        return {
            "new": [public_respondent(asdict(p)) for p in self.diff.new],
            "updated": [
                {
                    "respondent": public_respondent(asdict(u.respondent)),
                    "changes": [
                        {
                            "field": k,
                            "key": f"id.field.{k}",
                            "before": _shown(a),
                            "after": _shown(b),
                        }
                        for k, (a, b) in u.changes.items()
                    ],
                }
                for u in self.diff.updated
            ],
            "missing": [public_respondent(self.rows[k]) for k in self.report.missing],
        }


def _shown(value: object) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    return "" if value is None else str(value)


async def prepare_import(
    js: JetStreamContext,
    sessions: async_sessionmaker,
    campaign_id: str,
    content: bytes,
    filename: str,
    *,
    wait_applied: Waiter,
    withdraw_missing: bool = False,
) -> Prepared:
    """Check and diff against an up-to-date registry; publishes nothing."""
    if await closed_on_log(js, campaign_id):  # the log decides, not a page (decision 39)
        raise CampaignClosedToImports(campaign_id)
    await wait_applied(await stream_last_seq(js))  # diff against an up-to-date registry
    async with sessions() as s:
        campaign = await projection.load_campaign(s, campaign_id)
        if campaign is None:
            raise UnknownCampaign(campaign_id)
        rows = await projection.respondents(s, campaign_id, include_withdrawn=True)
    report = ImportReport(campaign_id)
    plan = await parse_off_loop(content, filename, campaign)  # decision 27
    report.merges = [asdict(m) for m in plan.merges]
    by_id = {r["respondent_id"]: r for r in rows}
    if not plan.ok:
        report.problems = list(plan.problems)
        return Prepared(report, None, by_id, withdraw_missing)
    active = {k: r for k, r in by_id.items() if not r["withdrawn"]}
    diff = diff_against(plan, active)
    report.new = [p.respondent_id for p in diff.new]
    report.updated = [u.respondent.respondent_id for u in diff.updated]
    report.unchanged = [r.respondent_id for r in diff.unchanged]
    report.missing = diff.missing
    return Prepared(report, diff, by_id, withdraw_missing)


async def run_import(
    js: JetStreamContext,
    sessions: async_sessionmaker,
    campaign_id: str,
    content: bytes,
    filename: str,
    *,
    wait_applied: Waiter,
    correlation_id: str | None = None,
    withdraw_missing: bool = False,
    expect_digest: str | None = None,
) -> ImportReport:
    """Check, diff and publish. Any problem: the report carries them and nothing is published.

    `expect_digest` is the digest of the preview the admin confirmed: anything else (the
    registry moved, another file) is refused with PreviewOutdated before a single event.
    """
    prepared = await prepare_import(
        js,
        sessions,
        campaign_id,
        content,
        filename,
        wait_applied=wait_applied,
        withdraw_missing=withdraw_missing,
    )
    report, diff, by_id = prepared.report, prepared.diff, prepared.rows
    if diff is None:
        return report
    if expect_digest is not None and prepared.digest != expect_digest:
        raise PreviewOutdated(campaign_id)
    last = 0
    for planned in diff.new:
        row = by_id.get(planned.respondent_id)  # a withdrawn respondent is registered again
        pub = await _publish(
            js,
            campaign_id,
            planned.respondent_id,
            planned.to_event(),
            last_seq=row["last_seq"] if row else 0,
            expected=None if row else 0,
            correlation_id=correlation_id,
        )
        report.published += not pub.duplicate
        last = max(last, pub.seq)
    for upd in diff.updated:
        row = by_id[upd.respondent.respondent_id]
        # RespondentUpdated carries only name, e-mail, unit, phone and position; a change to
        # anything else (roles) is a re-registration, which every projection applies as an upsert.
        event: Payload | None = upd.to_event()
        if event is None or set(upd.changes) - set(UPDATABLE):
            event = upd.respondent.to_event()
        pub = await _publish(
            js,
            campaign_id,
            upd.respondent.respondent_id,
            event,
            last_seq=row["last_seq"],
            expected=None,
            correlation_id=correlation_id,
        )
        report.published += not pub.duplicate
        last = max(last, pub.seq)
    for rid in prepared.withdrawals:  # only when the admin asked for it on the preview
        pub = await _publish(
            js,
            campaign_id,
            rid,
            RespondentWithdrawn(respondent_id=rid, reason="not in the imported list"),
            last_seq=by_id[rid]["last_seq"],
            expected=None,
            correlation_id=correlation_id,
        )
        report.published += not pub.duplicate
        last = max(last, pub.seq)
    if last:
        await wait_applied(last)
    async with sessions() as s:
        report.registry = await projection.respondents(s, campaign_id)
    return report


async def _publish(
    js: JetStreamContext,
    campaign_id: str,
    respondent_id: str,
    payload: Payload,
    *,
    last_seq: int,
    expected: int | None,
    correlation_id: str | None,
) -> Published:
    env = make(
        payload,
        campaign_id=campaign_id,
        producer=PRODUCER,
        correlation_id=correlation_id,
        event_id=event_id_for(campaign_id, respondent_id, payload, last_seq),
    )
    # A first registration is decided once on its subject (expected sequence 0).
    return await publish_event(
        js,
        subjects.respondent(campaign_id, respondent_id),
        env,
        expected_last_subject_seq=expected if isinstance(payload, RespondentRegistered) else None,
    )
