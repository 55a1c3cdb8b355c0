"""The respondent registry's use cases: search, e-mail correction, reminders now, exports.

Identity owns the registry; whether a person answered is survey's to say, derived from the log
when asked (contracts.rpc.NONRESPONDENTS, decision 15), so this module holds yes/no only, never
when and never what. Every change is an event on the log (docs/architecture.md, decision 34).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from nats.js import JetStreamContext
from openpyxl import Workbook
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts import subjects
from contracts.events import ReminderRequested, RespondentUpdated, make
from contracts.rpc import NONRESPONDENTS, UnitRequest
from parindex.bus import rpc
from parindex.bus.publish import publish_event
from parindex.web.spreadsheet import neutral

PRODUCER = "identity"
PAGE_SIZE = 50
# An address as the importer accepts it: one @, a dot in the domain, no spaces.
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,63}$")


class RegistryRefused(Exception):
    """A request the page answers with a sentence: `key` is a catalog key."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(key)
        self.key, self.values = key, values


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    total: int
    page: int
    pages: int


def _like(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def search(
    s: AsyncSession,
    campaign: str,
    *,
    name: str = "",
    unit: str = "",
    email: str = "",
    page: int = 1,
) -> Page:
    """Registered, not withdrawn, people of a campaign matching every term given (paged)."""
    where = ["r.campaign = :c", "NOT r.withdrawn"]
    params: dict[str, Any] = {"c": campaign}
    for field, column, term in (
        ("n", "r.full_name", name),
        ("u", "r.unit_code", unit),
        ("e", "r.email", email),
    ):
        if term.strip():
            where.append(f"{column} ILIKE :{field}")
            params[field] = _like(term.strip())
    condition = " AND ".join(where)
    total = int(
        await s.scalar(
            text(f"SELECT count(*) FROM identity_respondents r WHERE {condition}"), params
        )
        or 0
    )
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, page), pages)
    rows = await s.execute(
        text(
            "SELECT r.respondent_id, r.full_name, r.email, r.phone, r.unit_code, r.form_code, "
            "r.invited, r.delivery_failed, m.requested_on AS reminded_on "
            "FROM identity_respondents r LEFT JOIN identity_reminders m "
            "ON m.campaign = r.campaign AND m.respondent_id = r.respondent_id "
            f"WHERE {condition} ORDER BY r.unit_code NULLS FIRST, r.full_name, r.respondent_id "
            "LIMIT :limit OFFSET :offset"
        ),
        {**params, "limit": PAGE_SIZE, "offset": (page - 1) * PAGE_SIZE},
    )
    return Page([dict(r) for r in rows.mappings()], total, page, pages)


async def not_answered(nc: Any, campaign: str, unit: str | None = None) -> set[str] | None:
    """Ids of who has not answered (survey derives it now); None when survey cannot say."""
    try:
        request = UnitRequest(campaign_id=campaign, unit_code=unit)
    except ValidationError:  # not a campaign or unit code anyone could have registered under
        return set()
    try:
        reply = await rpc.call(nc, NONRESPONDENTS, request)
    except rpc.RpcError:
        return None
    return set(reply.respondent_ids)


async def person(s: AsyncSession, campaign: str, respondent_id: str) -> dict[str, Any] | None:
    row = await s.execute(
        text(
            "SELECT respondent_id, full_name, email, phone, unit_code, form_code, withdrawn "
            "FROM identity_respondents WHERE campaign = :c AND respondent_id = :r"
        ),
        {"c": campaign, "r": respondent_id},
    )
    found = row.mappings().first()
    return dict(found) if found is not None and not found["withdrawn"] else None


async def correct_email(
    js: JetStreamContext,
    sessions: async_sessionmaker,
    campaign: str,
    respondent_id: str,
    new_email: str,
    by: str,
) -> int:
    """RespondentUpdated with the new address; notify invites it anew. Returns the sequence."""
    address = new_email.strip()
    if not EMAIL.match(address):
        raise RegistryRefused("id.reg.bad_email")
    async with sessions() as s:
        found = await person(s, campaign, respondent_id)
    if found is None:
        raise RegistryRefused("id.reg.unknown")
    if (found["email"] or "").lower() == address.lower():
        raise RegistryRefused("id.reg.same_email")
    env = make(
        RespondentUpdated(respondent_id=respondent_id, email=address),
        campaign_id=campaign,
        producer=PRODUCER,
        correlation_id=f"registry:{by}",
    )
    published = await publish_event(js, subjects.respondent(campaign, respondent_id), env)
    return published.seq


def today() -> date:
    return datetime.now(UTC).date()


async def request_reminders(
    js: JetStreamContext,
    sessions: async_sessionmaker,
    campaign: str,
    respondent_ids: list[str],
    by: str,
) -> tuple[list[str], list[str]]:
    """ReminderRequested for each person not reminded today: (asked, already reminded today).

    The day's check and the record are one transaction under a per-campaign lock, so two
    clicks (or two instances) cannot both pass; the event is published before the commit, so
    a failed publish records nothing. The log holds the same fact (identity's projection
    applies it again, idempotently).
    """
    day = today()
    asked: list[str] = []
    skipped: list[str] = []
    async with sessions.begin() as s:
        await s.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"reminders:{campaign}"}
        )
        for rid in respondent_ids:
            last = await s.scalar(
                text(
                    "SELECT requested_on FROM identity_reminders "
                    "WHERE campaign = :c AND respondent_id = :r"
                ),
                {"c": campaign, "r": rid},
            )
            if last is not None and last >= day:
                skipped.append(rid)
                continue
            env = make(
                ReminderRequested(respondent_id=rid, requested_on=day, requested_by=by),
                campaign_id=campaign,
                producer=PRODUCER,
                correlation_id=f"registry:{by}",
                # One per person and day, also when a retry publishes it again.
                event_id=f"reminder:{campaign}:{rid}:{day.isoformat()}",
            )
            await publish_event(js, subjects.respondent_reminder(campaign, rid), env)
            await s.execute(
                text(
                    "INSERT INTO identity_reminders (campaign, respondent_id, requested_on) "
                    "VALUES (:c, :r, :d) ON CONFLICT (campaign, respondent_id) "
                    "DO UPDATE SET requested_on = EXCLUDED.requested_on"
                ),
                {"c": campaign, "r": rid, "d": day},
            )
            asked.append(rid)
    return asked, skipped


HEADERS = {
    "vi": [
        "STT",
        "Họ và tên",
        "Đơn vị",
        "Chức vụ",
        "Phiếu",
        "Email",
        "Điện thoại",
        "Ngày nhắc gần nhất",
    ],
    "en": [
        "No.",
        "Full name",
        "Unit",
        "Position",
        "Form",
        "E-mail",
        "Phone",
        "Last reminder (day)",
    ],
}


async def nonrespondent_rows(
    s: AsyncSession, campaign: str, unit: str, missing: set[str]
) -> list[dict[str, Any]]:
    rows = await s.execute(
        text(
            "SELECT r.respondent_id, r.full_name, r.unit_code, r.position, r.form_code, r.email, "
            "r.phone, m.requested_on AS reminded_on FROM identity_respondents r "
            "LEFT JOIN identity_reminders m ON m.campaign = r.campaign "
            "AND m.respondent_id = r.respondent_id "
            "WHERE r.campaign = :c AND r.unit_code = :u AND NOT r.withdrawn "
            "ORDER BY r.full_name, r.respondent_id"
        ),
        {"c": campaign, "u": unit},
    )
    return [dict(r) for r in rows.mappings() if r["respondent_id"] in missing]


def nonrespondents_xlsx(rows: list[dict[str, Any]], lang: str) -> bytes:
    """Vietnamese (or English) headers, a number column, every text cell neutralised."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Chưa trả lời" if lang == "vi" else "Not answered"
    ws.append(HEADERS.get(lang, HEADERS["vi"]))
    for n, r in enumerate(rows, start=1):
        reminded = r["reminded_on"]
        ws.append(
            [
                n,
                *(
                    neutral(v or "")
                    for v in (
                        r["full_name"],
                        r["unit_code"],
                        r["position"],
                        r["form_code"],
                        r["email"],
                        r["phone"],
                    )
                ),
                reminded.strftime("%d/%m/%Y") if reminded else "",
            ]
        )
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()
