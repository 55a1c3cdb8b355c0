"""The respondent's pages (form, draft, review, receipt) and the progress page, as HTML.

Server-rendered through the shared web kit (docs/architecture.md, decision 25): Vietnamese
first, `?lang=en` switches and is remembered, works without JavaScript (a small script only
autosaves, decision 32), and every POST carries the session-bound CSRF token. A ballot goes
through `ballots.submit_ballot`, the very path of POST /api/ballots (the use cases are in
ballots.py, docs/architecture.md, decision 31); the review page carries a server-generated
client_submission_id, so a double click or a retried "Gửi phiếu" is the same event and shows
the same receipt.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from contracts.campaign import Campaign
from contracts.events import Answer
from parindex.bus.publish import PublishUnavailable
from parindex.web import campaign_pick, csrf, scope
from parindex.web.auth import Principal
from parindex.web.deps import PrincipalDep, RuntimeDep, principal, runtime
from parindex.web.i18n import LANGS, language, vi_date
from parindex.web.pages import Pages, finish, to_login
from parindex.web.refusal import Refused
from parindex.web.service import RETRY_AFTER_SECONDS, Runtime
from services.survey import ballots
from services.survey.ballot import BALLOT_NS
from services.survey.errors import (
    AlreadySubmitted,
    DeadlinePassed,
    InvalidBallot,
    MissingBallotKey,
    NotAllowed,
    NotARespondent,
    NotOpen,
    UnknownCampaign,
)
from services.survey.progress import progress_report, progress_scope
from services.survey.projection import load_campaign
from services.survey.runtime import deps
from services.survey.storage import queries

router = APIRouter()
HERE = Path(__file__).parent
PAGES = Pages(HERE / "templates", HERE / "text")
FIELD = "a:{unit}:{question}"  # form field of one answer; codes never contain ":"
# Domain error -> the page's text: the one mapping of this adapter (decision 31).
REFUSED_KEYS: dict[type[Exception], str] = {
    NotARespondent: "sv.not_registered",
    MissingBallotKey: "sv.no_key",
}


def _message(
    request: Request, key: str, status: int = 200, title: str = "sv.survey", **ctx: Any
) -> Response:
    return PAGES.render(
        request,
        "message.html",
        status=status,
        message=PAGES.t(request, key),
        title_key=title,
        **ctx,
    )


def _text(lang: str, vi: str, en: str | None) -> str:
    return en if lang == "en" and en else vi


# --- the respondent's situation ------------------------------------------------------------
@dataclass
class Situation:
    campaign: Campaign
    form_code: str
    unit_code: str | None
    pseudonym: str
    holder: str  # the session's credential holder: whose draft (decision 48)
    open: bool
    deadline_passed: bool
    opens_on: date | None
    ballot: ballots.Logged | None
    who: ballots.Who  # with the waves and deadline read in the same query (decision 41)

    @property
    def rated(self) -> list[str]:
        return self.campaign.units_rated_by(self.form_code, self.unit_code)


async def _situation(rt: Runtime, p: Principal) -> Situation:
    """Raises NotARespondent or MissingBallotKey, as the JSON API refuses."""
    d = deps(rt)
    who = await ballots.respondent(d, p.campaign_id, p.subject)
    campaign = who.campaign
    pseudo = ballots.pseudonym_of(d, who)
    status = await ballots.status(d, who)
    wave = campaign.wave_for(who.form_code, who.unit_code)
    opens_on = wave.opens_at.astimezone(ZoneInfo(campaign.timezone)).date() if wave else None
    return Situation(
        campaign=campaign,
        form_code=who.form_code,
        unit_code=who.unit_code,
        pseudonym=pseudo,
        holder=p.holder,
        open=status.open,
        deadline_passed=status.deadline_passed,
        opens_on=opens_on,
        ballot=await ballots.submitted(d, campaign.id, pseudo),
        who=who,
    )


async def _enter(
    request: Request, refused: int = 200, submission_id: str | None = None
) -> Situation | Response:
    """The respondent's situation, or the page to show instead of the form.

    `refused` is the status of a closed-campaign page: 409 when answering a POST, as the API.
    A repeated "Gửi phiếu" (same `submission_id`) shows the same receipt again.
    """
    p = await principal(request)
    if p is None:
        return to_login(request)
    if p.role != "respondent":
        return _message(request, "sv.not_respondent", 403)
    try:
        sit = await _situation(runtime(request), p)
    except (NotARespondent, MissingBallotKey) as exc:
        return _message(request, REFUSED_KEYS[type(exc)], 403)
    if sit.ballot is not None:
        return _logged_page(request, sit, refused, submission_id)
    if sit.deadline_passed:
        return _message(request, "sv.expired", refused, deadline=sit.campaign.deadline)
    if not sit.open:
        return _message(request, "sv.not_open", opens_on=sit.opens_on)
    return sit


def _logged_page(
    request: Request, sit: Situation, refused: int, submission_id: str | None = None
) -> Response:
    """A ballot on the log: a receipt if it counts, "arrived after the deadline" if not.

    Nothing about the receipt is stored: a later visit gets a fresh receipt for the same day.
    """
    assert sit.ballot is not None
    if not sit.ballot.counted:
        return _message(request, "sv.late", refused, deadline=sit.campaign.deadline)
    day = sit.ballot.ballot.submitted_on
    if submission_id and sit.ballot.ballot.ballot_id != _ballot_id(sit, submission_id):
        # Another submission than the one on the log: 409 with the day it was received
        # (docs/architecture.md, decision 23).
        text_ = PAGES.t(request, "sv.already", day=vi_date(day))
        return PAGES.render(
            request, "message.html", status=409, message=text_, title_key="sv.survey"
        )
    code = ballots.issue_receipt(deps(runtime(request)), sit.campaign.id, day, submission_id)
    return _receipt_page(request, code, day)


def _ballot_id(sit: Situation, submission_id: str) -> str:
    """The ballot id ballot_envelope derives from this submission (services/survey/ballot.py)."""
    return str(uuid.uuid5(BALLOT_NS, f"ballot|{sit.pseudonym}|{submission_id}"))


def _receipt_page(
    request: Request, receipt: str | None, submitted_on: date | None, fresh: bool = False
) -> Response:
    """The "Biên nhận" page right after sending (fresh), "Bạn đã gửi phiếu" on any later visit."""
    return PAGES.render(
        request, "receipt.html", receipt=receipt, submitted_on=submitted_on, fresh=fresh
    )


# --- answers: form fields <-> answers <-> errors --------------------------------------------
# A ballot is paged (docs/architecture.md, decision 32): a many-units form has one rated unit
# per page (`?page=N`), or every unit on one grid (`?view=grid`); an own-unit form is one page.
# A page posts only its own units' answers, which replace those units' answers in the draft.
GRID = "all"


def _pages(sit: Situation) -> list[list[str]]:
    """The rated units shown on each page."""
    if sit.campaign.form(sit.form_code).rates == "many_units":
        return [[u] for u in sit.rated]
    return [sit.rated]


def _page_number(sit: Situation, raw: object) -> int:
    """A 1-based page number, clamped to the form's pages (anything odd is page 1)."""
    try:
        n = int(str(raw))
    except ValueError:
        return 1
    return min(max(n, 1), len(_pages(sit)))


def _answers_from_form(
    sit: Situation, form: Any, units: list[str] | None = None
) -> tuple[dict[tuple[str, str], str], dict]:
    """Chosen options by (unit, question) and errors by (unit, question) — the message keys."""
    chosen: dict[tuple[str, str], str] = {}
    errors: dict[tuple[str, str], str] = {}
    questions = sit.campaign.form(sit.form_code).questions()
    for unit in sit.rated if units is None else units:
        for q in questions:
            value = form.get(FIELD.format(unit=unit, question=q.id))
            if not value:
                if q.required:
                    errors[(unit, q.id)] = "missing"
            elif value in {o.code for o in q.options}:
                chosen[(unit, q.id)] = str(value)
            else:
                errors[(unit, q.id)] = "invalid"
    return chosen, errors


def _missing(sit: Situation, chosen: dict[tuple[str, str], str]) -> dict[tuple[str, str], str]:
    """Every required question without an answer, over the whole ballot."""
    return {
        (u, q.id): "missing"
        for u in sit.rated
        for q in sit.campaign.form(sit.form_code).questions()
        if q.required and (u, q.id) not in chosen
    }


def _first_error_page(sit: Situation, errors: dict) -> int:
    """The page holding the first question in error."""
    wrong = {u for u, _ in errors}
    return next((i for i, p in enumerate(_pages(sit), 1) if wrong & set(p)), 1)


def _answers(chosen: dict[tuple[str, str], str]) -> list[Answer]:
    return [Answer(unit_code=u, question_id=q, option_code=o) for (u, q), o in chosen.items()]


def _blocks(
    sit: Situation,
    lang: str,
    chosen: dict[tuple[str, str], str],
    errors: dict | None = None,
    units: list[str] | None = None,
) -> list[dict[str, Any]]:
    """What the templates draw: per rated unit, per criterion, each question with its options.

    Sections and questions are numbered; no criterion or question code is shown.
    """
    c = sit.campaign
    form = c.form(sit.form_code)
    total = len(form.questions())
    blocks = []
    for unit_code in sit.rated if units is None else units:
        unit = c.unit(unit_code)
        criteria = []
        number = 0
        for s, crit in enumerate(form.criteria, 1):
            questions = []
            for q in crit.questions:
                number += 1
                pick = chosen.get((unit_code, q.id))
                options = [
                    {
                        "code": o.code,
                        "label": _text(lang, o.label, o.label_en),
                        "id": f"o-{unit_code}-{q.id}-{o.code}",
                    }
                    for o in q.options
                ]
                error = (errors or {}).get((unit_code, q.id))
                questions.append(
                    {
                        "id": q.id,
                        "number": number,
                        "numbered": PAGES.t(lang, "sv.question_n", i=number, n=total),
                        "dom": f"q-{unit_code}-{q.id}",
                        "field": FIELD.format(unit=unit_code, question=q.id),
                        "text": _text(lang, q.text, q.text_en),
                        "options": options,
                        "chosen": pick,
                        "chosen_label": next(
                            (o["label"] for o in options if o["code"] == pick),
                            PAGES.t(lang, "sv.no_answer"),
                        ),
                        "error": PAGES.t(lang, f"sv.{error}") if error else None,
                    }
                )
            criteria.append(
                {
                    "section": PAGES.t(lang, "sv.section_n", i=s, n=len(form.criteria)),
                    "name": _text(lang, crit.name, crit.name_en),
                    "questions": questions,
                }
            )
        blocks.append(
            {
                "unit_code": unit_code,
                "unit_name": _text(lang, unit.name, unit.name_en),
                "criteria": criteria,
            }
        )
    return blocks


def _summary(sit: Situation, lang: str, errors: dict, page: int | str) -> list[dict[str, str]]:
    """One link per missing question, to its page and its anchor: "Câu 12 – Đơn vị X"."""
    numbers = {q.id: i for i, q in enumerate(sit.campaign.form(sit.form_code).questions(), 1)}
    page_of = {u: i for i, units in enumerate(_pages(sit), 1) for u in units}
    links = []
    for (unit_code, qid), _ in sorted(
        errors.items(), key=lambda e: (page_of.get(e[0][0], 0), numbers.get(e[0][1], 0))
    ):
        unit = sit.campaign.unit(unit_code)
        target = page_of.get(unit_code, 1)
        here = page == GRID or target == page
        anchor = f"#q-{unit_code}-{qid}"
        links.append(
            {
                "href": anchor if here else f"/survey?page={target}{anchor}",
                "text": PAGES.t(
                    lang,
                    "sv.missing_link",
                    n=numbers.get(qid, 0),
                    unit=_text(lang, unit.name, unit.name_en),
                ),
            }
        )
    return links


def _form_page(
    request: Request,
    sit: Situation,
    chosen: dict[tuple[str, str], str],
    errors: dict | None = None,
    status: int = 200,
    saved: bool = False,
    busy: bool = False,
    page: int | str = 1,
) -> Response:
    lang = language(request)
    form = sit.campaign.form(sit.form_code)
    pages = _pages(sit)
    grid = page == GRID
    units = sit.rated if grid else pages[int(page) - 1]
    blocks = _blocks(sit, lang, chosen, errors, units)
    total = len(sit.rated) * len(form.questions())
    answered = sum(1 for k in chosen if k[0] in sit.rated)
    return PAGES.render(
        request,
        "survey_form.html",
        status=status,
        campaign=sit.campaign,
        form_name=_text(lang, form.name, form.name_en),
        many=form.rates == "many_units",
        blocks=blocks,
        grid=grid,
        grid_rows=_grid_rows(blocks) if grid else [],
        page=page,
        pages=len(pages),
        units=",".join(units),
        answered=PAGES.t(lang, "sv.answered", done=answered, total=total),
        answered_pct=f"{answered * 100 / total:.0f}" if total else "0",
        error_count=len(errors or {}),
        summary=_summary(sit, lang, errors or {}, page)[:SUMMARY_MAX],
        summary_more=max(0, len(errors or {}) - SUMMARY_MAX),
        saved=saved,
        busy=busy,
    )


SUMMARY_MAX = 30  # links in the error summary; the rest are marked on their pages


def _grid_rows(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The paper form's grid: one row per question, one cell per rated unit."""
    rows: list[dict[str, Any]] = []
    if not blocks:
        return rows
    for ci, crit in enumerate(blocks[0]["criteria"]):
        for qi, q in enumerate(crit["questions"]):
            rows.append(
                {
                    "section": crit["section"] + ": " + crit["name"] if qi == 0 else None,
                    "q": q,
                    "cells": [b["criteria"][ci]["questions"][qi] for b in blocks],
                }
            )
    return rows


# --- routes -----------------------------------------------------------------------------
@router.get("/", include_in_schema=False)
async def root(request: Request) -> Response:
    return finish(request, RedirectResponse("/survey", status_code=303))


@router.get("/survey", response_class=HTMLResponse)
async def survey_page(
    request: Request, rt: RuntimeDep, page: str | None = None, view: str | None = None
) -> Response:
    sit = await _enter(request)
    if isinstance(sit, Response):
        return sit
    draft = await ballots.load_draft(deps(rt), sit.campaign.id, sit.pseudonym, sit.holder)
    shown: int | str = GRID if view == "grid" and len(_pages(sit)) > 1 else _page_number(sit, page)
    return _form_page(request, sit, _draft_choices(draft), page=shown)


def _draft_choices(draft: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """The draft's picks; its rows are Answer dumps, and anything else is skipped."""
    chosen: dict[tuple[str, str], str] = {}
    for a in draft:
        if isinstance(a, dict):
            u, q, o = a.get("unit_code"), a.get("question_id"), a.get("option_code")
            if isinstance(u, str) and isinstance(q, str) and isinstance(o, str):
                chosen[(u, q)] = o
    return chosen


async def _save(rt: Runtime, sit: Situation, chosen: dict[tuple[str, str], str]) -> None:
    answers = [a.model_dump() for a in _answers(chosen)]
    await ballots.store_draft(deps(rt), sit.campaign.id, sit.pseudonym, sit.holder, answers)


def _go(request: Request, page: int | str, lang: str | None = None) -> Response:
    """After a page's answers are saved: on to another page (a GET, so a reload is harmless)."""
    query = "view=grid" if page == GRID else f"page={page}"
    if lang in LANGS:
        query += f"&lang={lang}"
    return finish(request, RedirectResponse(f"/survey?{query}", status_code=303))


async def _page_post(
    request: Request, rt: RuntimeDep, sit: Situation, form: Any, action: str
) -> Response:
    """A post from a form page: its answers join the draft, then the action moves on."""
    raw = form.get("page")
    page: int | str = GRID if raw == GRID and len(_pages(sit)) > 1 else _page_number(sit, raw)
    units = sit.rated if page == GRID else _pages(sit)[int(page) - 1]
    mine, _ = _answers_from_form(sit, form, units)
    chosen = {
        k: v
        for k, v in _draft_choices(
            await ballots.load_draft(deps(rt), sit.campaign.id, sit.pseudonym, sit.holder)
        ).items()
        if k[0] in sit.rated and k[0] not in units
    }
    chosen.update(mine)
    await _save(rt, sit, chosen)  # every navigation keeps the answers (decision 32)
    if action.startswith("lang:"):
        return _go(request, page, action.removeprefix("lang:"))
    if action in ("next", "prev") and page != GRID:
        return _go(request, _page_number(sit, int(page) + (1 if action == "next" else -1)))
    if action == "review":
        errors = _missing(sit, chosen)
        if errors:
            shown = page if page == GRID else _first_error_page(sit, errors)
            return _form_page(request, sit, chosen, errors, status=422, page=shown)
        return _review_page(request, sit, chosen)
    return _form_page(request, sit, chosen, saved=action == "draft", page=page)


def _review_page(request: Request, sit: Situation, chosen: dict[tuple[str, str], str]) -> Response:
    lang = language(request)
    return PAGES.render(
        request,
        "survey_review.html",
        campaign=sit.campaign,
        blocks=_blocks(sit, lang, chosen),
        many=sit.campaign.form(sit.form_code).rates == "many_units",
        submission_id=uuid.uuid4().hex,  # once per review: a retry is the same event
    )


@router.post("/survey", response_class=HTMLResponse, dependencies=[Depends(csrf.form_csrf)])
async def survey_post(request: Request, rt: RuntimeDep) -> Response:
    form = await request.form()
    action = str(form.get("action") or "")
    submission = form.get("client_submission_id")
    submission_id = submission[:100] if isinstance(submission, str) and submission else None
    sit = await _enter(request, refused=409, submission_id=submission_id)
    if isinstance(sit, Response):
        return sit
    if form.get("page") is not None and action != "submit":
        return await _page_post(request, rt, sit, form, action)
    # The review page (and any client without pages) posts the whole ballot.
    chosen, errors = _answers_from_form(sit, form)
    if action == "draft":
        await _save(rt, sit, chosen)
        return _form_page(request, sit, chosen, saved=True)
    if action == "edit":
        await _save(rt, sit, chosen)
        return _form_page(request, sit, chosen)
    if action == "review":
        if errors:
            first = _first_error_page(sit, errors)
            return _form_page(request, sit, chosen, errors, status=422, page=first)
        return _review_page(request, sit, chosen)
    if action == "submit":
        if errors:
            first = _first_error_page(sit, errors)
            return _form_page(request, sit, chosen, errors, status=422, page=first)
        d = deps(rt)
        who = sit.who
        try:
            accepted = await ballots.submit_ballot(d, who, _answers(chosen), submission_id)
        except PublishUnavailable:
            # Keep the answers: saved as a draft and shown again (decision 23).
            answers = [a.model_dump() for a in _answers(chosen)]
            await ballots.store_draft(d, sit.campaign.id, sit.pseudonym, sit.holder, answers)
            page = _form_page(request, sit, chosen, status=503, busy=True)
            page.headers["Retry-After"] = RETRY_AFTER_SECONDS
            return page
        except (AlreadySubmitted, DeadlinePassed) as exc:
            sit.ballot = await ballots.submitted(d, sit.campaign.id, sit.pseudonym)
            if sit.ballot is not None:
                return _logged_page(request, sit, 409, submission_id)
            if isinstance(exc, AlreadySubmitted):
                return _message(request, "sv.submitted", 409)
            return _message(request, "sv.expired", 409, deadline=sit.campaign.deadline)
        except NotOpen:
            return _message(request, "sv.not_open", 403, opens_on=sit.opens_on)
        except InvalidBallot:
            first = _first_error_page(sit, errors)
            return _form_page(request, sit, chosen, errors, status=422, page=first)
        return _receipt_page(request, accepted.receipt, accepted.submitted_on, fresh=True)
    return _form_page(request, sit, chosen)


@router.get("/progress", response_class=HTMLResponse)
async def progress_page(
    request: Request, rt: RuntimeDep, p: PrincipalDep, campaign: str | None = None
) -> Response:
    if p is None:
        return to_login(request)
    if p.role not in ("admin", "auditor", "focal_point"):
        return _message(request, "err.403", 403, title="sv.progress")
    campaign = campaign or campaign_pick.picked(request, p)  # the bar's pick (decision 39)
    try:
        scope.check(p, campaign or p.campaign_id)
        campaign_id, only_unit = progress_scope(p.role, p.campaign_id, p.unit_code, campaign)
    except (Refused, NotAllowed):
        return _message(request, "err.403", 403, title="sv.progress")
    if not campaign_id:  # e.g. after the language switch dropped ?campaign=
        async with rt.sessions() as s:
            rows = await queries.campaign_names(s)
        shown = [{"id": i, "name": n} for i, n in scope.visible(p, rows)]
        return PAGES.render(request, "progress.html", campaigns=shown)
    try:
        data = await progress_report(deps(rt), campaign_id, only_unit)
    except (UnknownCampaign, MissingBallotKey):
        return _message(request, "sv.unknown_campaign", 404, title="sv.progress")
    lang = language(request)
    async with rt.sessions() as s:
        c = await load_campaign(s, campaign_id)
    assert c is not None
    for row in data["units"]:
        quota, received = row["quota"], row["received"]
        unit = c.unit(row["unit_code"])
        form = c.form(row["form_code"])
        row["unit_label"] = _text(lang, unit.name, unit.name_en)
        row["form_label"] = form.short_name(lang)
        row["form_title"] = _text(lang, form.name, form.name_en)
        row["width"] = f"{min(100.0, received * 100 / quota):.1f}" if quota else "0"
        row["short"] = bool(data["deadline_passed"] and quota and received < quota)
    return PAGES.render(
        request,
        "progress.html",
        campaign=c,
        data=data,
        focal=only_unit is not None,
    )
