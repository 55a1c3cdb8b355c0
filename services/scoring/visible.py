"""What a caller may see of a campaign's results: the dashboards' use cases.

Service layer (docs/architecture.md, decision 31): functions take the projection's sessions and
the caller, read what the projection stored, and raise the domain errors of errors.py; api.py
only shapes the answer. Scores appear only when the caller may see them (decision 16); counts
always. The counts are the stored result rows (the method's `result_rows`, written by the
projection in the transaction that moved its offset), not a second computation per request.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts.campaign import Campaign
from contracts.events import ResultRow
from parindex.web.auth import Principal
from services.scoring.errors import UnknownCampaign, UnknownUnit
from services.scoring.method import compute_results, fixed
from services.scoring.projection import load_campaign, load_rows, load_tally
from services.scoring.publication import Stage, load_stage, may_see_scores


@dataclass(frozen=True)
class Seen:
    """A campaign's results as one caller may see them."""

    stage: Stage
    visible: bool  # whether this caller sees scores
    staff: bool  # admin or auditor: may see who released
    counts: list[ResultRow]  # every row, in the method's order; read only counts from these
    rows: list[ResultRow]  # the stored rows, empty unless visible


def method_order(campaign: Campaign, rows: list[ResultRow]) -> list[ResultRow]:
    """Rows in `result_rows` order: units by code, forms in campaign order, the total last."""
    place = {f.code: i for i, f in enumerate(campaign.forms)}
    return sorted(
        rows,
        key=lambda r: (r.unit_code, r.form_code is None, place.get(r.form_code or "", -1)),
    )


async def results(
    sessions: async_sessionmaker[AsyncSession], campaign_id: str, principal: Principal | None
) -> Seen:
    async with sessions() as session:
        camp = await load_campaign(session, campaign_id)
        if camp is None:
            raise UnknownCampaign(campaign_id)
        stage = await load_stage(session, campaign_id)
        rows = await load_rows(session, campaign_id)
    visible = may_see_scores(stage, principal)
    staff = principal is not None and principal.role in ("admin", "auditor")
    return Seen(stage, visible, staff, method_order(camp, rows), rows if visible else [])


async def unit_breakdown(
    sessions: async_sessionmaker[AsyncSession],
    campaign_id: str,
    unit_code: str,
    principal: Principal | None,
) -> dict[str, Any]:
    """Per form: received, quota; once visible also raw, penalty, adjusted, criteria, questions."""
    async with sessions() as session:
        camp = await load_campaign(session, campaign_id)
        if camp is None:
            raise UnknownCampaign(campaign_id)
        tally = await load_tally(session, campaign_id)
        stage = await load_stage(session, campaign_id)
    res = compute_results(camp, tally)
    try:
        unit = res.unit(unit_code)
    except (KeyError, StopIteration, ValueError):
        raise UnknownUnit(campaign_id, unit_code) from None
    if not may_see_scores(stage, principal):
        return {
            "unit_code": unit.unit_code,
            "kind": unit.kind.value,
            "status": stage.status,
            "visible": False,
            "forms": [
                {"form_code": f.form_code, "received": f.received, "quota": f.quota}
                for f in unit.forms
            ],
        }
    out = jsonable(unit)
    assert isinstance(out, dict)  # a dataclass becomes a dict
    out["status"], out["visible"] = stage.status, True
    # Per-question figures of a small group would disclose individual ballots
    # (docs/architecture.md, decision 7): below min_report_size none of them is shown.
    for form in out["forms"]:
        for crit in form["criteria"]:
            for q in crit["questions"]:
                if q["answered_count"] + q["dont_know_count"] < camp.min_report_size:
                    q.update(
                        answered_count=None, dont_know_count=None, weight_sum=None,
                        score_rounded=None, suppressed=True,
                    )  # fmt: skip
    return out


def jsonable(obj: object) -> object:
    """The method's dataclasses as JSON: exact fractions left out, decimals as fixed strings."""
    if is_dataclass(obj):
        return {
            f.name: jsonable(getattr(obj, f.name))
            for f in fields(obj)
            if not isinstance(getattr(obj, f.name), Fraction)
        }
    if isinstance(obj, Decimal):
        return fixed(obj)
    if isinstance(obj, list | tuple):
        return [jsonable(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if hasattr(obj, "value"):
        return obj.value  # enums
    return obj
