"""JSON API for dashboards: results and a unit's breakdown (documented in /docs, OpenAPI).

Scores appear only when the caller may see them (docs/architecture.md, decision 16): never
while the campaign runs, to admins and auditors once frozen, to everybody once published.
Before that the API answers ballots received against quota and nothing else.
"""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from contracts.events import ResultRow
from parindex.web.deps import PrincipalDep, RuntimeDep
from services.scoring.method import compute_results, fixed
from services.scoring.projection import load_campaign, load_rows, load_tally
from services.scoring.publication import Status, load_stage, may_see_scores

router = APIRouter(prefix="/api", tags=["results"])


class Published(BaseModel):
    """The frozen results (ResultsPublished): digest and the deadline's sequence."""

    digest: str
    last_sequence: int


class Released(BaseModel):
    released_on: date
    released_by: str | None  # staff only


class CountRow(BaseModel):
    unit_code: str
    unit_kind: str
    form_code: str | None  # None: the unit's total row
    received: int
    quota: int | None


class ResultsOut(BaseModel):
    campaign_id: str
    status: Status  # live, frozen (not published), released (published)
    final: bool  # the deadline has been applied: counts no longer change
    visible: bool  # whether this caller sees scores
    digest: str | None
    published: Published | None
    released: Released | None
    counts: list[CountRow]
    rows: list[ResultRow]  # empty unless visible


@router.get("/results", response_model=ResultsOut)
async def results(rt: RuntimeDep, principal: PrincipalDep, campaign: str) -> ResultsOut:
    """Counts always; a unit's rows (one per form, one total with its rank) once visible."""
    async with rt.sessions() as session:
        camp = await load_campaign(session, campaign)
        if camp is None:
            raise HTTPException(404, f"unknown campaign {campaign}")
        stage = await load_stage(session, campaign)
        rows = await load_rows(session, campaign)
        tally = await load_tally(session, campaign)
    visible = may_see_scores(stage, principal)
    staff = principal is not None and principal.role in ("admin", "auditor")
    counts = []
    for u in compute_results(camp, tally).units:
        quotas = [f.quota for f in u.forms]
        for f in u.forms:
            counts.append(
                CountRow(
                    unit_code=u.unit_code,
                    unit_kind=u.kind.value,
                    form_code=f.form_code,
                    received=f.received,
                    quota=f.quota,
                )
            )
        counts.append(
            CountRow(
                unit_code=u.unit_code,
                unit_kind=u.kind.value,
                form_code=None,
                received=sum(f.received for f in u.forms),
                quota=None if any(q is None for q in quotas) else sum(q or 0 for q in quotas),
            )
        )
    released = (
        Released(released_on=stage.released_on, released_by=stage.released_by if staff else None)
        if stage.status == "released" and stage.released_on is not None
        else None
    )
    return ResultsOut(
        campaign_id=campaign,
        status=stage.status,
        final=stage.status != "live",
        visible=visible,
        digest=stage.digest if visible else None,
        published=(
            Published(digest=stage.digest or "", last_sequence=stage.last_sequence or 0)
            if visible
            else None
        ),
        released=released,
        counts=counts,
        rows=rows if visible else [],
    )


@router.get("/results/{campaign}/units/{unit_code}")
async def unit_breakdown(
    rt: RuntimeDep, principal: PrincipalDep, campaign: str, unit_code: str
) -> dict:
    """Per form: received, quota; once visible also raw, penalty, adjusted, criteria, questions."""
    async with rt.sessions() as session:
        camp = await load_campaign(session, campaign)
        if camp is None:
            raise HTTPException(404, f"unknown campaign {campaign}")
        tally = await load_tally(session, campaign)
        stage = await load_stage(session, campaign)
    res = compute_results(camp, tally)
    try:
        unit = res.unit(unit_code)
    except (KeyError, StopIteration, ValueError):
        raise HTTPException(404, f"unit {unit_code} is not rated in {campaign}") from None
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
    out = _jsonable(unit)
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


def _jsonable(obj: object) -> object:
    from dataclasses import fields, is_dataclass
    from decimal import Decimal
    from fractions import Fraction

    if is_dataclass(obj):
        return {
            f.name: _jsonable(getattr(obj, f.name))
            for f in fields(obj)
            if not isinstance(getattr(obj, f.name), Fraction)
        }
    if isinstance(obj, Decimal):
        return fixed(obj)
    if isinstance(obj, list | tuple):
        return [_jsonable(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if hasattr(obj, "value"):
        return obj.value  # enums
    return obj
