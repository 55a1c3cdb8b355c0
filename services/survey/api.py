"""HTTP JSON adapter of the survey service: campaigns (admin), ballots and drafts
(respondents), receipts (anyone), progress (admins, auditors, focal points).

Only translates (docs/architecture.md, decision 31): the use cases live in ballots.py,
progress.py and define.py and raise the domain errors of errors.py; `REFUSALS` maps each to its
status and JSON body, here and nowhere else. Nothing here ever returns answers together with a
person.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from contracts.campaign import Campaign
from contracts.events import Answer
from parindex.bus.publish import ConcurrencyConflict
from parindex.web import scope
from parindex.web.auth import Principal
from parindex.web.csrf import JsonCsrf
from parindex.web.deps import Admin, Progress, Respondent, RuntimeDep, runtime
from parindex.web.fast_write import FastJsonWrite
from parindex.web.openapi_body import json_body
from parindex.web.service import Runtime
from services.survey import ballots
from services.survey.campaign_file import CampaignFileError, parse_campaign
from services.survey.define import define_campaign
from services.survey.errors import (
    AlreadySubmitted,
    CampaignFrozen,
    DeadlinePassed,
    InvalidBallot,
    MissingBallotKey,
    NotAllowed,
    NotARespondent,
    NotOpen,
    UnknownCampaign,
)
from services.survey.progress import progress_report, progress_scope
from services.survey.runtime import deps

router = APIRouter(prefix="/api")


def _body(exc: Exception) -> dict[str, Any]:
    return {"error": getattr(exc, "code", "refused")}


# Domain error -> (status, JSON body): the one mapping of this adapter.
REFUSALS: dict[type[Exception], tuple[int, Callable[[Any], dict[str, Any]]]] = {
    NotARespondent: (403, _body),
    NotAllowed: (403, _body),
    MissingBallotKey: (503, lambda e: {"error": "ballot_key_missing"}),
    UnknownCampaign: (404, lambda e: {"error": "unknown_campaign"}),
    DeadlinePassed: (409, _body),
    NotOpen: (403, lambda e: {"error": "wave_not_open", "wave_id": e.wave_id}),
    InvalidBallot: (422, lambda e: {"error": "invalid_ballot", "problems": e.problems}),
    AlreadySubmitted: (
        409,
        lambda e: (
            {"error": "already_submitted", "submitted_on": e.submitted_on.isoformat()}
            if e.submitted_on is not None
            else {"error": "already_submitted"}
        ),
    ),
    CampaignFrozen: (409, lambda e: {"error": "frozen", "message": str(e)}),
    ConcurrencyConflict: (409, lambda e: {"error": "changed_meanwhile"}),
    CampaignFileError: (
        422,
        lambda e: {
            "error": "invalid_campaign",
            "problems": [{"path": p, "message": m} for p, m in e.errors],
        },
    ),
}
DOMAIN_ERRORS = tuple(REFUSALS)
# POST /api/ballots answers these at the top level of the body, as it always has; every other
# refusal comes under "detail", as the web kit answers an HTTPException (decision 25).
BALLOT_REFUSALS = (DeadlinePassed, NotOpen, InvalidBallot, AlreadySubmitted)


def _mapped(exc: Exception) -> tuple[int, dict[str, Any]]:
    for kind, (status, body) in REFUSALS.items():
        if isinstance(exc, kind):
            return status, body(exc)
    raise TypeError(f"no HTTP mapping for {type(exc).__name__}")  # pragma: no cover


def refusal(exc: Exception) -> HTTPException:
    """The HTTP refusal of a domain error (REFUSALS)."""
    return HTTPException(*_mapped(exc))


# --- campaigns --------------------------------------------------------------------------
@router.post("/campaigns", status_code=201, openapi_extra=json_body(Campaign))
async def post_campaign(
    request: Request, rt: RuntimeDep, admin: Admin, _csrf: JsonCsrf
) -> dict[str, Any]:
    body = await request.json()
    try:
        campaign = parse_campaign(body)
        scope.check(admin, campaign.id)  # a scoped admin defines its own campaign only
        defined = await define_campaign(rt.js, campaign)
    except DOMAIN_ERRORS as exc:
        raise refusal(exc) from exc
    return {"id": defined.id, "version": defined.version}


# --- respondents: form, ballot, draft ------------------------------------------------------
class BallotIn(BaseModel):
    answers: list[Answer] = Field(min_length=1)
    client_submission_id: str | None = Field(default=None, max_length=100)


class DraftIn(BaseModel):
    # Drafts have the shape of answers, with the contracts' string rule: a malformed draft is a
    # 422 here, never a stored row that breaks the respondent's page (decision 17).
    answers: list[Answer] = Field(default_factory=list, max_length=2000)


@router.get("/form")
async def get_form(rt: RuntimeDep, p: Respondent) -> dict[str, Any]:
    """What the respondent must fill: the form, the units it rates, and whether it is open."""
    d = deps(rt)
    try:
        who = await ballots.respondent(d, p.campaign_id, p.subject)
        status = await ballots.status(d, who)
        submitted = await ballots.submitted(d, who.campaign.id, ballots.pseudonym_of(d, who))
    except DOMAIN_ERRORS as exc:
        raise refusal(exc) from exc
    campaign = who.campaign
    late = submitted is not None and not submitted.counted
    return {
        "campaign": {"id": campaign.id, "name": campaign.name, "deadline": campaign.deadline},
        "form": campaign.form(who.form_code).model_dump(mode="json"),
        "rated_units": [
            campaign.unit(u).model_dump(mode="json")
            for u in campaign.units_rated_by(who.form_code, who.unit_code)
        ],
        "submitted": submitted is not None and submitted.counted,
        "late": late,
        "wave_id": status.wave_id,
        "open": status.open,
        "deadline_passed": status.deadline_passed or late,
    }


@router.post("/ballots", status_code=201)
async def post_ballot(body: BallotIn, rt: RuntimeDep, p: Respondent, _csrf: JsonCsrf) -> Any:
    return await accept_ballot(rt, p, body)


async def accept_ballot(rt: Runtime, p: Principal, body: BallotIn) -> JSONResponse:
    """POST /api/ballots once its checks passed: by the route above or by FAST_BALLOTS."""
    d = deps(rt)
    try:
        who = await ballots.respondent(d, p.campaign_id, p.subject)
        accepted = await ballots.submit_ballot(d, who, body.answers, body.client_submission_id)
    except BALLOT_REFUSALS as exc:
        status, refused = _mapped(exc)
        return JSONResponse(refused, status_code=status)
    except DOMAIN_ERRORS as exc:
        raise refusal(exc) from exc
    return JSONResponse(
        {"receipt": accepted.receipt, "submitted_on": accepted.submitted_on.isoformat()},
        status_code=201,
    )


# The deadline-day rush: ordinary ballots skip FastAPI's routing and dependency solving; any
# other request goes to post_ballot above (parindex/web/fast_write.py, decision 46).
FAST_BALLOTS = FastJsonWrite(
    "/api/ballots",
    BallotIn,
    "respondent",
    lambda request, p, body: accept_ballot(runtime(request), p, body),
)


@router.put("/draft")
async def put_draft(
    body: DraftIn, rt: RuntimeDep, p: Respondent, _csrf: JsonCsrf
) -> dict[str, Any]:
    """Unfinished answers, keyed by the pseudonym (not the person); deleted on submit."""
    d = deps(rt)
    try:
        who = await ballots.respondent(d, p.campaign_id, p.subject)
        await ballots.save_draft(d, who, p.holder, body.answers)
    except DOMAIN_ERRORS as exc:
        raise refusal(exc) from exc
    return {"saved": len(body.answers)}


@router.get("/draft")
async def get_draft(rt: RuntimeDep, p: Respondent) -> dict[str, Any]:
    d = deps(rt)
    try:
        who = await ballots.respondent(d, p.campaign_id, p.subject)
        pseudo = ballots.pseudonym_of(d, who)
    except DOMAIN_ERRORS as exc:
        raise refusal(exc) from exc
    return {"answers": await ballots.load_draft(d, who.campaign.id, pseudo, p.holder)}


@router.get("/receipts/verify")
async def verify_receipt(rt: RuntimeDep, campaign: str, receipt: str) -> dict[str, Any]:
    """Anyone may check a receipt: it says only that a ballot was sent in this campaign on
    that day, so it is public like the results."""
    try:
        day = ballots.verify_receipt(rt.settings.ballot_key, campaign, receipt)
    except DOMAIN_ERRORS as exc:
        raise refusal(exc) from exc
    return {
        "campaign": campaign,
        "valid": day is not None,
        "submitted_on": day.isoformat() if day else None,
    }


# --- progress ----------------------------------------------------------------------------
@router.get("/progress")
async def get_progress(rt: RuntimeDep, p: Progress, campaign: str | None = None) -> dict[str, Any]:
    scope.check(p, campaign or p.campaign_id)  # also checked for every route (decision 25)
    try:
        campaign_id, only_unit = progress_scope(p.role, p.campaign_id, p.unit_code, campaign)
        if not campaign_id:
            raise HTTPException(422, {"error": "campaign_required"})
        return await progress_report(deps(rt), campaign_id, only_unit)
    except DOMAIN_ERRORS as exc:
        raise refusal(exc) from exc
