"""JSON API for dashboards: live results, a unit's breakdown (documented in /docs, OpenAPI)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel
from sqlalchemy import text

from contracts.events import ResultRow
from services.scoring.method import compute_results, digest, fixed
from services.scoring.projection import load_campaign, load_rows, load_tally

router = APIRouter(prefix="/api", tags=["results"])


class Published(BaseModel):
    digest: str
    last_sequence: int


class ResultsOut(BaseModel):
    campaign_id: str
    final: bool
    digest: str
    published: Published | None
    rows: list[ResultRow]


@router.get("/results", response_model=ResultsOut)
async def results(request: Request, campaign: str) -> ResultsOut:
    """Every unit's rows (one per form, one total with its rank). Live until the deadline."""
    async with request.app.state.rt.sessions() as session:
        if await load_campaign(session, campaign) is None:
            raise HTTPException(404, f"unknown campaign {campaign}")
        rows = await load_rows(session, campaign)
        pub = (
            await session.execute(
                text("SELECT digest, last_sequence FROM scoring_published WHERE campaign_id = :c"),
                {"c": campaign},
            )
        ).first()
        deadline = await session.scalar(
            text("SELECT seq FROM scoring_deadlines WHERE campaign_id = :c"), {"c": campaign}
        )
    return ResultsOut(
        campaign_id=campaign,
        final=deadline is not None,
        digest=digest(rows),
        published=Published(digest=pub[0], last_sequence=pub[1]) if pub else None,
        rows=rows,
    )


@router.get("/results/{campaign}/units/{unit_code}")
async def unit_breakdown(request: Request, campaign: str, unit_code: str) -> dict:
    """Per form: received, quota, raw, penalty, adjusted; per criterion and question: score."""
    async with request.app.state.rt.sessions() as session:
        camp = await load_campaign(session, campaign)
        if camp is None:
            raise HTTPException(404, f"unknown campaign {campaign}")
        tally = await load_tally(session, campaign)
    res = compute_results(camp, tally)
    try:
        unit = res.unit(unit_code)
    except (KeyError, StopIteration, ValueError):
        raise HTTPException(404, f"unit {unit_code} is not rated in {campaign}") from None
    out = _jsonable(unit)
    assert isinstance(out, dict)  # a dataclass becomes a dict
    # Per-question distributions of a small group would disclose individual ballots
    # (docs/architecture.md, decision 7): below min_report_size only the scores are shown.
    for form in out["forms"]:
        for crit in form["criteria"]:
            for q in crit["questions"]:
                if q["answered_count"] + q["dont_know_count"] < camp.min_report_size:
                    q.update(answered_count=None, dont_know_count=None, weight_sum=None)
                    q["suppressed"] = True
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
