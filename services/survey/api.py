"""HTTP edge of the survey service: campaigns (admin), ballots and drafts (respondents),
progress (admins, auditors, focal points).

Nothing here ever returns answers together with a person. Progress shows counts; a focal
point additionally sees names of its unit's respondents who have not answered yet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text

from contracts import subjects
from contracts.campaign import Campaign
from contracts.events import Answer, BallotSubmitted, decode
from parindex.bus.publish import ConcurrencyConflict, publish_event
from parindex.web import scope
from parindex.web.auth import Principal
from parindex.web.csrf import JsonCsrf
from parindex.web.deps import Admin, Progress, Respondent, RuntimeDep
from parindex.web.openapi_body import json_body
from parindex.web.service import Runtime
from services.survey import participation
from services.survey import receipt as receipts
from services.survey.ballot import ballot_envelope, problems
from services.survey.define import CampaignFrozen, define_campaign
from services.survey.progress import UnknownCampaign, progress_report
from services.survey.projection import load_campaign
from services.survey.secrecy import MissingBallotKey, pseudonym

router = APIRouter(prefix="/api")


# --- campaigns --------------------------------------------------------------------------
@router.post("/campaigns", status_code=201, openapi_extra=json_body(Campaign))
async def post_campaign(
    request: Request, rt: RuntimeDep, admin: Admin, _csrf: JsonCsrf
) -> dict[str, Any]:
    from services.survey.campaign_file import CampaignFileError, parse_campaign

    body = await request.json()
    try:
        campaign = parse_campaign(body)
    except CampaignFileError as exc:
        raise HTTPException(
            422,
            {
                "error": "invalid_campaign",
                "problems": [{"path": p, "message": m} for p, m in exc.errors],
            },
        ) from exc
    scope.check(admin, campaign.id)  # a scoped admin defines its own campaign only
    try:
        defined = await define_campaign(rt.js, campaign)
    except CampaignFrozen as exc:
        raise HTTPException(409, {"error": "frozen", "message": str(exc)}) from exc
    except ConcurrencyConflict as exc:
        raise HTTPException(409, {"error": "changed_meanwhile"}) from exc
    return {"id": defined.id, "version": defined.version}


# --- respondents: form, ballot, draft ------------------------------------------------------
class BallotIn(BaseModel):
    answers: list[Answer] = Field(min_length=1)
    client_submission_id: str | None = Field(default=None, max_length=100)


class DraftIn(BaseModel):
    # Drafts have the shape of answers, with the contracts' string rule: a malformed draft is a
    # 422 here, never a stored row that breaks the respondent's page (decision 17).
    answers: list[Answer] = Field(default_factory=list, max_length=2000)


async def _respondent_context(rt: Runtime, p: Principal) -> tuple[Campaign, dict[str, Any]]:
    """The respondent's campaign and registration, from the projection (the log), not the token."""
    if not p.campaign_id:
        raise HTTPException(403, {"error": "no_campaign"})
    async with rt.sessions() as s:
        campaign = await load_campaign(s, p.campaign_id)
        row = (
            await s.execute(
                text(
                    "SELECT unit_code, form_code, withdrawn FROM survey_respondents "
                    "WHERE campaign = :c AND respondent_id = :r"
                ),
                {"c": p.campaign_id, "r": p.subject},
            )
        ).first()
    if campaign is None or row is None or row.withdrawn:
        raise HTTPException(403, {"error": "not_a_respondent"})
    return campaign, {"unit_code": row.unit_code, "form_code": row.form_code}


def _pseudonym(rt: Runtime, campaign_id: str, respondent_id: str) -> str:
    try:
        return pseudonym(rt.settings.ballot_key, campaign_id, respondent_id)
    except MissingBallotKey as exc:
        raise HTTPException(503, {"error": "ballot_key_missing"}) from exc


async def _status(rt: Runtime, campaign: Campaign, who: dict[str, Any]) -> dict[str, Any]:
    wave = campaign.wave_for(who["form_code"], who["unit_code"])
    async with rt.sessions() as s:
        opened = wave is not None and bool(
            await s.scalar(
                text("SELECT 1 FROM survey_waves_opened WHERE campaign = :c AND wave_id = :w"),
                {"c": campaign.id, "w": wave.id},
            )
        )
        closed = bool(
            await s.scalar(
                text("SELECT 1 FROM survey_deadlines WHERE campaign = :c"), {"c": campaign.id}
            )
        )
    return {"wave_id": wave.id if wave else None, "open": opened, "deadline_passed": closed}


@router.get("/form")
async def get_form(rt: RuntimeDep, p: Respondent) -> dict[str, Any]:
    """What the respondent must fill: the form, the units it rates, and whether it is open."""
    campaign, who = await _respondent_context(rt, p)
    status = await _status(rt, campaign, who)
    submitted = await _submitted(rt, campaign.id, _pseudonym(rt, campaign.id, p.subject))
    late = submitted is not None and not submitted.counted
    return {
        "campaign": {"id": campaign.id, "name": campaign.name, "deadline": campaign.deadline},
        "form": campaign.form(who["form_code"]).model_dump(mode="json"),
        "rated_units": [
            campaign.unit(u).model_dump(mode="json")
            for u in campaign.units_rated_by(who["form_code"], who["unit_code"])
        ],
        "submitted": submitted is not None and submitted.counted,
        "late": late,
        **status,
        "deadline_passed": status["deadline_passed"] or late,
    }


@dataclass
class Logged:
    """A ballot as the log holds it; `counted` is false when sequenced after the deadline."""

    ballot: BallotSubmitted
    counted: bool


async def _submitted(rt: Runtime, campaign_id: str, pseudo: str) -> Logged | None:
    """The ballot on this pseudonym's subject, if any, and whether it counts (read from the log)."""
    from nats.js.errors import NotFoundError

    try:
        msg = await rt.js.get_last_msg(subjects.EVENTS_STREAM, subjects.ballot(campaign_id, pseudo))
    except NotFoundError:
        return None
    _, payload = decode(msg.data or b"")
    assert isinstance(payload, BallotSubmitted)
    return Logged(payload, await participation.counted(rt.js, campaign_id, int(msg.seq or 0)))


def issue_receipt(rt: Runtime, campaign_id: str, day: date, submission_id: str | None) -> str:
    """A receipt for a counted ballot: proves the day, not the ballot (see receipt.py)."""
    return receipts.issue(rt.settings.ballot_key, campaign_id, day, submission_id)


@dataclass
class Intake:
    """What became of a ballot: `outcome` is "accepted" or the error code the API answers."""

    outcome: str
    receipt: str | None = None
    submitted_on: date | None = None
    problems: list[dict[str, str | None]] = field(default_factory=list)
    wave_id: str | None = None


async def intake_ballot(
    rt: Runtime, p: Principal, answers: list[Answer], client_submission_id: str | None
) -> Intake:
    """The one path a ballot takes (JSON API and HTML form): checks, then the log decides.

    The clock and projection checks only narrow the window: the ballot counts if and only if
    the log sequenced it before DeadlineReached, and only then is there a receipt
    (docs/architecture.md, decision 15).
    """
    campaign, who = await _respondent_context(rt, p)
    status = await _status(rt, campaign, who)
    if status["deadline_passed"] or rt.extras["clock"].now() >= campaign.deadline:
        return Intake("deadline_passed")
    if not status["open"]:
        return Intake("wave_not_open", wave_id=status["wave_id"])
    found = problems(campaign, who["form_code"], who["unit_code"], answers)
    if found:
        return Intake("invalid_ballot", problems=found)
    pseudo = _pseudonym(rt, campaign.id, p.subject)
    envelope = ballot_envelope(
        campaign,
        pseudonym=pseudo,
        form_code=who["form_code"],
        unit_code=who["unit_code"],
        answers=answers,
        now=rt.extras["clock"].now(),
        client_submission_id=client_submission_id,
    )
    try:
        published = await publish_event(
            rt.js, subjects.ballot(campaign.id, pseudo), envelope, expected_last_subject_seq=0
        )
    except ConcurrencyConflict:
        existing = await _submitted(rt, campaign.id, pseudo)
        if existing is not None and not existing.counted:
            return Intake("deadline_passed")
        if existing is None:
            return Intake("already_submitted")
        day = existing.ballot.submitted_on
        if existing.ballot.ballot_id == envelope.data["ballot_id"]:
            # This very submission landed on an earlier, ambiguous try: its receipt, not an
            # error (docs/architecture.md, decision 23).
            receipt = issue_receipt(rt, campaign.id, day, client_submission_id)
            return Intake("accepted", receipt=receipt, submitted_on=day)
        return Intake("already_submitted", submitted_on=day)
    ballot = BallotSubmitted.model_validate(envelope.data)
    if published.duplicate:  # a retry: answer with what the log holds
        again = await _submitted(rt, campaign.id, pseudo)
        ballot = again.ballot if again is not None else ballot
    async with rt.sessions.begin() as s:
        await s.execute(
            text("DELETE FROM survey_drafts WHERE campaign = :c AND pseudonym = :p"),
            {"c": campaign.id, "p": pseudo},
        )
    if not await participation.counted(rt.js, campaign.id, published.seq):
        return Intake("deadline_passed")  # sequenced after DeadlineReached: never counted
    return Intake(
        "accepted",
        receipt=issue_receipt(rt, campaign.id, ballot.submitted_on, client_submission_id),
        submitted_on=ballot.submitted_on,
    )


@router.post("/ballots", status_code=201)
async def post_ballot(body: BallotIn, rt: RuntimeDep, p: Respondent, _csrf: JsonCsrf) -> Any:
    result = await intake_ballot(rt, p, body.answers, body.client_submission_id)
    if result.outcome == "accepted":
        assert result.submitted_on is not None
        return JSONResponse(
            {"receipt": result.receipt, "submitted_on": result.submitted_on.isoformat()},
            status_code=201,
        )
    if result.outcome == "wave_not_open":
        return JSONResponse({"error": "wave_not_open", "wave_id": result.wave_id}, 403)
    if result.outcome == "invalid_ballot":
        return JSONResponse({"error": "invalid_ballot", "problems": result.problems}, 422)
    if result.submitted_on is not None:  # already submitted: say when it was received
        refused = {"error": result.outcome, "submitted_on": result.submitted_on.isoformat()}
        return JSONResponse(refused, status_code=409)
    return JSONResponse({"error": result.outcome}, status_code=409)


async def save_draft(rt: Runtime, campaign_id: str, pseudo: str, answers: list[dict]) -> None:
    async with rt.sessions.begin() as s:
        await s.execute(
            text(
                "INSERT INTO survey_drafts (campaign, pseudonym, answers) "
                "VALUES (:c, :p, CAST(:a AS jsonb)) ON CONFLICT (campaign, pseudonym) "
                "DO UPDATE SET answers = EXCLUDED.answers"
            ),
            {"c": campaign_id, "p": pseudo, "a": json.dumps(answers)},
        )


async def load_draft(rt: Runtime, campaign_id: str, pseudo: str) -> list[dict[str, Any]]:
    async with rt.sessions() as s:
        answers = await s.scalar(
            text("SELECT answers FROM survey_drafts WHERE campaign = :c AND pseudonym = :p"),
            {"c": campaign_id, "p": pseudo},
        )
    if isinstance(answers, str):
        answers = json.loads(answers)
    return [a.model_dump() for a in _well_formed(answers)]


def _well_formed(stored: object) -> list[Answer]:
    """The draft answers that still have the shape of an answer (older rows may not)."""
    if not isinstance(stored, list):
        return []
    kept = []
    for item in stored:
        try:
            kept.append(Answer.model_validate(item))
        except ValueError:  # pydantic's ValidationError: skip it, keep the page working
            continue
    return kept


@router.put("/draft")
async def put_draft(
    body: DraftIn, rt: RuntimeDep, p: Respondent, _csrf: JsonCsrf
) -> dict[str, Any]:
    """Unfinished answers, keyed by the pseudonym (not the person); deleted on submit."""
    campaign, _ = await _respondent_context(rt, p)
    pseudo = _pseudonym(rt, campaign.id, p.subject)
    if await _submitted(rt, campaign.id, pseudo) is not None:
        raise HTTPException(409, {"error": "already_submitted"})
    await save_draft(rt, campaign.id, pseudo, [a.model_dump() for a in body.answers])
    return {"saved": len(body.answers)}


@router.get("/receipts/verify")
async def verify_receipt(rt: RuntimeDep, campaign: str, receipt: str) -> dict[str, Any]:
    """Anyone may check a receipt: it says only that a ballot was sent in this campaign on
    that day, so it is public like the results."""
    try:
        day = receipts.verify(rt.settings.ballot_key, campaign, receipt[:200])
    except MissingBallotKey as exc:
        raise HTTPException(503, {"error": "ballot_key_missing"}) from exc
    return {
        "campaign": campaign,
        "valid": day is not None,
        "submitted_on": day.isoformat() if day else None,
    }


@router.get("/draft")
async def get_draft(rt: RuntimeDep, p: Respondent) -> dict[str, Any]:
    campaign, _ = await _respondent_context(rt, p)
    pseudo = _pseudonym(rt, campaign.id, p.subject)
    return {"answers": await load_draft(rt, campaign.id, pseudo)}


# --- progress ----------------------------------------------------------------------------
@router.get("/progress")
async def get_progress(rt: RuntimeDep, p: Progress, campaign: str | None = None) -> dict[str, Any]:
    campaign_id, only_unit = progress_scope(p, campaign)
    if not campaign_id:
        raise HTTPException(422, {"error": "campaign_required"})
    return await progress(rt, campaign_id, only_unit)


def progress_scope(p: Principal, campaign: str | None) -> tuple[str | None, str | None]:
    """(campaign, only this unit) a principal may see; a focal point sees only its unit."""
    campaign_id = campaign or p.campaign_id
    scope.check(p, campaign_id)  # also checked for every route (decision 25)
    only_unit: str | None = None
    if p.role == "focal_point":
        if campaign_id and p.campaign_id and p.campaign_id != campaign_id:
            raise HTTPException(403, {"error": "other_campaign"})
        if not p.unit_code:
            raise HTTPException(403, {"error": "no_unit"})
        only_unit = p.unit_code
    return campaign_id, only_unit


async def progress(rt: Runtime, campaign_id: str, only_unit: str | None) -> dict[str, Any]:
    """The progress use case (services/survey/progress.py), its refusals as HTTP errors."""
    try:
        return await progress_report(rt, campaign_id, only_unit)
    except UnknownCampaign as exc:
        raise HTTPException(404, {"error": "unknown_campaign"}) from exc
    except MissingBallotKey as exc:
        raise HTTPException(503, {"error": "ballot_key_missing"}) from exc
