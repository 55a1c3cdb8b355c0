"""Progress: ballots received against quota per (unit, form), and who has not answered yet.

The rows are a pure function of the campaign and the counts (`progress_rows`, tested without
servers); the use cases read the projection and derive participation from the log when asked
(docs/architecture.md, decision 15). They raise domain errors; the HTTP and request-reply
adapters (api.py, rpc.py) translate them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from contracts.campaign import Campaign
from services.survey import participation
from services.survey.errors import NotAllowed, UnknownCampaign
from services.survey.projection import load_campaign
from services.survey.storage import queries

if TYPE_CHECKING:
    from services.survey.ballots import Deps

Counts = dict[tuple[str, str], int]  # (unit_code, form_code) -> number


def pairs(c: Campaign, counts: Counts, registered: Counts) -> list[tuple[str, str]]:
    """Every (unit, form) with a quota, a respondent or a ballot, in campaign order."""
    found: set[tuple[str, str]] = set()
    for q in c.quotas:
        form = c.form(q.form_code)
        if q.unit_code is not None:
            found.add((q.unit_code, q.form_code))
        elif form.rates == "many_units":
            found.update((u, q.form_code) for u in form.rated_units)
        else:
            kinds = set(form.respondent_unit_kinds)
            found.update((u.code, q.form_code) for u in c.units if u.kind in kinds)
    for u, f in list(counts) + list(registered):
        if u:
            found.add((u, f))
    units = [u.code for u in c.units]
    forms = [f.code for f in c.forms]
    known = [(u, f) for u, f in found if u in units and f in forms]
    return sorted(known, key=lambda p: (units.index(p[0]), forms.index(p[1])))


def progress_rows(
    c: Campaign, counts: Counts, registered: Counts, only_unit: str | None = None
) -> list[dict[str, Any]]:
    """One row per (unit, form): received (as scoring counts, decision 15), quota, rate and
    registered respondents (None for a form that rates many units: nobody registers per unit)."""
    rows = []
    for unit_code, form_code in pairs(c, counts, registered):
        if only_unit is not None and unit_code != only_unit:
            continue
        many = c.form(form_code).rates == "many_units"
        received = counts.get((unit_code, form_code), 0)
        quota = c.quota(form_code, unit_code)
        rows.append(
            {
                "unit_code": unit_code,
                "unit_name": c.unit(unit_code).name,
                "form_code": form_code,
                "received": received,
                "quota": quota,
                "rate": round(received / quota, 4) if quota else None,
                "registered": None if many else registered.get((unit_code, form_code), 0),
            }
        )
    return rows


def progress_scope(
    role: str, own_campaign: str | None, own_unit: str | None, asked: str | None
) -> tuple[str | None, str | None]:
    """(campaign, only this unit) a principal may see; a focal point sees only its unit.

    The campaign scope of staff accounts (decision 25) is checked by the adapters before."""
    campaign_id = asked or own_campaign
    only_unit: str | None = None
    if role == "focal_point":
        if campaign_id and own_campaign and own_campaign != campaign_id:
            raise NotAllowed("other_campaign")
        if not own_unit:
            raise NotAllowed("no_unit")
        only_unit = own_unit
    return campaign_id, only_unit


async def progress_report(d: Deps, campaign_id: str, only_unit: str | None) -> dict[str, Any]:
    """Received / quota / rate per (unit, form); for one unit, also who has not answered.

    Raises UnknownCampaign, or MissingBallotKey when participation cannot be derived.
    """
    async with d.sessions() as s:
        c = await load_campaign(s, campaign_id)
        if c is None:
            raise UnknownCampaign(campaign_id)
        counts: Counts = await queries.ballot_counts(s, campaign_id)
        registered: Counts = await queries.registered_counts(s, campaign_id)
        people = []
        if only_unit is not None:
            people = await queries.unit_people(s, campaign_id, only_unit)
        deadline = await queries.deadline_reached(s, campaign_id)
    missing: list[dict[str, Any]] = []
    if people:  # participation is derived from the log, never stored (decision 15)
        done = await participation.voted(d.js, d.ballot_key, campaign_id, [r for r, _, _ in people])
        missing = [{"full_name": n, "form_code": f} for r, n, f in people if r not in done]
    out: dict[str, Any] = {
        "campaign": campaign_id,
        "deadline_passed": deadline,
        "units": progress_rows(c, counts, registered, only_unit),
    }
    if only_unit is not None:
        out["unit_code"] = only_unit
        out["not_answered"] = missing
    return out


async def nonrespondents(d: Deps, campaign_id: str, unit_code: str | None) -> list[str]:
    """Registered, not withdrawn, no counted ballot: ids only (derived from the log when asked,
    decision 15)."""
    async with d.sessions() as s:
        people = await queries.respondent_ids(s, campaign_id, unit_code)
    done = await participation.voted(d.js, d.ballot_key, campaign_id, people)
    return [r for r in people if r not in done]
