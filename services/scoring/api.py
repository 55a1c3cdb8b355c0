"""JSON API for dashboards (HTTP adapter over visible.py): results and a unit's breakdown
(documented in /docs, OpenAPI); domain errors become 404 here (docs/architecture.md, decision 31).

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
from services.scoring import visible
from services.scoring.errors import UnknownCampaign, UnknownUnit
from services.scoring.publication import Status

router = APIRouter(prefix="/api", tags=["results"])
# Domain errors answered 404 with their English message (docs/architecture.md, decision 31).
NOT_FOUND = (UnknownCampaign, UnknownUnit)


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
    try:
        seen = await visible.results(rt.sessions, campaign, principal)
    except NOT_FOUND as exc:
        raise HTTPException(404, str(exc)) from None
    stage = seen.stage
    released = (
        Released(
            released_on=stage.released_on, released_by=stage.released_by if seen.staff else None
        )
        if stage.status == "released" and stage.released_on is not None
        else None
    )
    return ResultsOut(
        campaign_id=campaign,
        status=stage.status,
        final=stage.status != "live",
        visible=seen.visible,
        digest=stage.digest if seen.visible else None,
        published=(
            Published(digest=stage.digest or "", last_sequence=stage.last_sequence or 0)
            if seen.visible
            else None
        ),
        released=released,
        counts=[
            CountRow(
                unit_code=r.unit_code,
                unit_kind=r.unit_kind,
                form_code=r.form_code,
                received=r.received,
                quota=r.quota,
            )
            for r in seen.counts
        ],
        rows=seen.rows,
    )


@router.get("/results/{campaign}/units/{unit_code}")
async def unit_breakdown(
    rt: RuntimeDep, principal: PrincipalDep, campaign: str, unit_code: str
) -> dict:
    """Per form: received, quota; once visible also raw, penalty, adjusted, criteria, questions."""
    try:
        return await visible.unit_breakdown(rt.sessions, campaign, unit_code, principal)
    except NOT_FOUND as exc:
        raise HTTPException(404, str(exc)) from None
