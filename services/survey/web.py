"""The respondent's pages (form, draft, review, receipt) and the progress page, as HTML.

Server-rendered, Vietnamese first (`?lang=en` switches and is remembered), no JavaScript.
Every POST carries identity's double-submit CSRF token: the `parindex_csrf` cookie echoed in
the hidden field `csrf` (or the X-CSRF-Token header), so one cookie serves every service on
the host. A ballot goes through `api.intake_ballot`, the very path of POST /api/ballots; the
review page carries a server-generated client_submission_id, so a double click or a retried
"Gửi phiếu" is the same event and shows the same receipt.
"""

from __future__ import annotations

import hmac
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import text

from contracts.campaign import Campaign
from contracts.events import Answer
from parindex.bus.publish import PublishUnavailable
from parindex.web.auth import Principal, current_principal
from parindex.web.cookies import set_cookie
from parindex.web.fields import as_bytes as _b
from parindex.web.i18n import LANG_COOKIE, LANGS, language, templates, vi_date
from parindex.web.service import RETRY_AFTER_SECONDS, Runtime
from services.survey import api
from services.survey.ballot import BALLOT_NS
from services.survey.projection import load_campaign

router = APIRouter()
TEMPLATES = templates(Path(__file__).parent / "templates")
CSRF_COOKIE = "parindex_csrf"  # the same cookie identity sets (services/identity/web.py)
FIELD = "a:{unit}:{question}"  # form field of one answer; codes never contain ":"

TEXT: dict[str, dict[str, str]] = {
    "vi": {
        "survey": "Phiếu khảo sát Chỉ số CCHC",
        "progress": "Tiến độ thu phiếu",
        "csrf": "Phiên làm việc của biểu mẫu đã hết hạn hoặc không hợp lệ. "
        "Vui lòng tải lại trang và thử lại.",
        "not_respondent": "Trang này chỉ dành cho người được mời trả lời phiếu khảo sát.",
        "not_registered": "Bạn không có trong danh sách trả lời phiếu của đợt khảo sát này.",
        "no_key": "Hệ thống chưa sẵn sàng nhận phiếu. Vui lòng thử lại sau.",
        "not_open": "Phiếu khảo sát của bạn chưa mở.",
        "opens_on": "Phiếu sẽ mở từ ngày",
        "expired": "Đợt khảo sát đã hết hạn: không thể gửi phiếu nữa.",
        "deadline": "Hạn gửi phiếu",
        "submitted": "Bạn đã gửi phiếu. Cảm ơn bạn đã tham gia khảo sát.",
        "already": "Phiếu của bạn đã được ghi nhận ngày {day}.",
        "busy": "Hệ thống đang bận nên phiếu chưa được gửi. Câu trả lời của bạn đã được lưu "
        "nháp; vui lòng thử gửi lại sau ít phút.",
        "receipt": "Biên nhận",
        "receipt_id": "Mã biên nhận",
        "receipt_date": "Ngày gửi",
        "receipt_note": "Mã biên nhận chứng minh bạn đã gửi phiếu vào ngày trên, không cho biết "
        "bạn đã trả lời thế nào. Câu trả lời của bạn được giữ bí mật.",
        "late": "Phiếu của bạn đến sau khi đợt khảo sát đã hết hạn nên không được tính. "
        "Không có biên nhận cho phiếu này.",
        "intro": "Với mỗi câu hỏi, hãy chọn một câu trả lời. Nếu không rõ, hãy chọn “Không biết”.",
        "rated_unit": "Đơn vị được đánh giá",
        "save_draft": "Lưu nháp",
        "review": "Xem lại trước khi gửi",
        "draft_saved": "Đã lưu nháp.",
        "errors": "Còn {n} câu hỏi cần được trả lời. Vui lòng xem các thông báo bên dưới.",
        "missing": "Vui lòng chọn một câu trả lời",
        "invalid": "Câu trả lời không hợp lệ, vui lòng chọn lại",
        "review_title": "Xem lại câu trả lời",
        "review_intro": "Kiểm tra các câu trả lời dưới đây. Sau khi gửi, phiếu không thể "
        "sửa được nữa.",
        "submit": "Gửi phiếu",
        "edit": "Quay lại sửa",
        "no_answer": "(chưa trả lời)",
        "login": "Đăng nhập",
        "forbidden": "Bạn không có quyền xem trang này.",
        "unknown_campaign": "Không tìm thấy đợt khảo sát này.",
        "choose_campaign": "Chọn đợt khảo sát",
        "no_campaigns": "Chưa có đợt khảo sát nào.",
        "unit": "Đơn vị",
        "form": "Phiếu",
        "received": "Đã nhận / chỉ tiêu",
        "rate": "Tỷ lệ",
        "deadline_passed": "Đã hết hạn thu phiếu.",
        "not_answered": "Người chưa trả lời phiếu",
        "everyone_answered": "Tất cả mọi người đã trả lời phiếu.",
        "back": "Về trang phiếu",
    },
    "en": {
        "survey": "PAR Index survey form",
        "progress": "Collection progress",
        "csrf": "The form has expired or is invalid. Reload the page and try again.",
        "not_respondent": "This page is only for people invited to answer the survey.",
        "not_registered": "You are not on the respondent list of this survey.",
        "no_key": "The system is not ready to take ballots. Please try again later.",
        "not_open": "Your survey form is not open yet.",
        "opens_on": "The form opens on",
        "expired": "The survey has expired: ballots can no longer be sent.",
        "deadline": "Deadline",
        "submitted": "You have sent your ballot. Thank you for taking part.",
        "already": "Your ballot was recorded on {day}.",
        "busy": "The system is busy, so your ballot was not sent. Your answers are saved as a "
        "draft; please try sending again in a few minutes.",
        "receipt": "Receipt",
        "receipt_id": "Receipt number",
        "receipt_date": "Sent on",
        "receipt_note": "The receipt proves you sent a ballot on this day, not how you "
        "answered. Your answers are kept secret.",
        "late": "Your ballot arrived after the survey's deadline, so it is not counted. "
        "There is no receipt for it.",
        "intro": "Choose one answer for every question. If unsure, choose “Don't know”.",
        "rated_unit": "Unit rated",
        "save_draft": "Save draft",
        "review": "Review before sending",
        "draft_saved": "Draft saved.",
        "errors": "{n} questions still need an answer. See the messages below.",
        "missing": "Please choose an answer",
        "invalid": "This answer is not valid, please choose again",
        "review_title": "Review your answers",
        "review_intro": "Check the answers below. Once sent, the ballot cannot be changed.",
        "submit": "Send ballot",
        "edit": "Go back and edit",
        "no_answer": "(not answered)",
        "login": "Log in",
        "forbidden": "You may not see this page.",
        "unknown_campaign": "This survey was not found.",
        "choose_campaign": "Choose a survey",
        "no_campaigns": "No survey yet.",
        "unit": "Unit",
        "form": "Form",
        "received": "Received / quota",
        "rate": "Rate",
        "deadline_passed": "Collection has closed.",
        "not_answered": "People who have not answered",
        "everyone_answered": "Everyone has answered.",
        "back": "Back to the form",
    },
}


def _rt(request: Request) -> Runtime:
    return request.app.state.rt


# --- page plumbing -------------------------------------------------------------------------
def _csrf_value(request: Request) -> str:
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)


def csrf_ok(request: Request, submitted: str | None) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE)
    submitted = submitted or request.headers.get("x-csrf-token")
    return bool(cookie and submitted and hmac.compare_digest(_b(cookie), _b(submitted)))


def _finish(request: Request, response: Response, csrf: str | None = None) -> Response:
    if request.query_params.get("lang") in LANGS:
        set_cookie(request, response, LANG_COOKIE, language(request), max_age=365 * 86400)
    if csrf is not None and request.cookies.get(CSRF_COOKIE) != csrf:
        set_cookie(request, response, CSRF_COOKIE, csrf, httponly=True)
    return response


def _page(request: Request, name: str, status: int = 200, **ctx: Any) -> Response:
    lang = language(request)
    csrf = _csrf_value(request)
    resp = TEMPLATES.TemplateResponse(
        request,
        name,
        {"t": TEXT[lang], "lang": lang, "csrf": csrf, **ctx},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )
    return _finish(request, resp, csrf)


def _message(
    request: Request, key: str, status: int = 200, title: str = "survey", **ctx: Any
) -> Response:
    return _page(
        request,
        "message.html",
        status=status,
        message=TEXT[language(request)][key],
        title_key=title,
        **ctx,
    )


def _endpoints(request: Request) -> dict[str, str]:
    path = Path(request.app.state.settings.state_dir) / "endpoints.json"
    try:
        return dict(json.loads(path.read_text()).get("services", {}))
    except (OSError, ValueError, AttributeError):
        return {}


def login_url(request: Request) -> str:
    """Identity's login page (from endpoints.json), coming back here afterwards."""
    base = _endpoints(request).get("identity", "").rstrip("/")
    here = (
        str(request.url)
        if base
        else request.url.path + (f"?{request.url.query}" if request.url.query else "")
    )
    return f"{base}/login?next={quote(here, safe='')}"


def _to_login(request: Request) -> Response:
    return _finish(request, RedirectResponse(login_url(request), status_code=303))


def _text(lang: str, vi: str, en: str | None) -> str:
    return en if lang == "en" and en else vi


# --- the respondent's situation ------------------------------------------------------------
@dataclass
class Situation:
    campaign: Campaign
    form_code: str
    unit_code: str | None
    pseudonym: str
    open: bool
    deadline_passed: bool
    opens_on: date | None
    ballot: api.Logged | None

    @property
    def rated(self) -> list[str]:
        return self.campaign.units_rated_by(self.form_code, self.unit_code)


async def _situation(rt: Runtime, p: Principal) -> Situation:
    """Raises HTTPException (403 not a respondent, 503 no ballot key), as the JSON API does."""
    campaign, who = await api._respondent_context(rt, p)
    pseudo = api._pseudonym(rt, campaign.id, p.subject)
    status = await api._status(rt, campaign, who)
    wave = campaign.wave_for(who["form_code"], who["unit_code"])
    opens_on = wave.opens_at.astimezone(ZoneInfo(campaign.timezone)).date() if wave else None
    return Situation(
        campaign=campaign,
        form_code=who["form_code"],
        unit_code=who["unit_code"],
        pseudonym=pseudo,
        open=status["open"],
        deadline_passed=status["deadline_passed"],
        opens_on=opens_on,
        ballot=await api._submitted(rt, campaign.id, pseudo),
    )


async def _enter(
    request: Request, refused: int = 200, submission_id: str | None = None
) -> Situation | Response:
    """The respondent's situation, or the page to show instead of the form.

    `refused` is the status of a closed-campaign page: 409 when answering a POST, as the API.
    A repeated "Gửi phiếu" (same `submission_id`) shows the same receipt again.
    """
    p = await current_principal(request)
    if p is None:
        return _to_login(request)
    if p.role != "respondent":
        return _message(request, "not_respondent", 403)
    try:
        sit = await _situation(_rt(request), p)
    except HTTPException as exc:
        return _message(request, "no_key" if exc.status_code == 503 else "not_registered", 403)
    if sit.ballot is not None:
        return _logged_page(request, sit, refused, submission_id)
    if sit.deadline_passed:
        return _message(request, "expired", refused, deadline=sit.campaign.deadline)
    if not sit.open:
        return _message(request, "not_open", opens_on=sit.opens_on)
    return sit


def _logged_page(
    request: Request, sit: Situation, refused: int, submission_id: str | None = None
) -> Response:
    """A ballot on the log: a receipt if it counts, "arrived after the deadline" if not.

    Nothing about the receipt is stored: a later visit gets a fresh receipt for the same day.
    """
    assert sit.ballot is not None
    if not sit.ballot.counted:
        return _message(request, "late", refused, deadline=sit.campaign.deadline)
    day = sit.ballot.ballot.submitted_on
    if submission_id and sit.ballot.ballot.ballot_id != _ballot_id(sit, submission_id):
        # Another submission than the one on the log: 409 with the day it was received
        # (docs/architecture.md, decision 23).
        text_ = TEXT[language(request)]["already"].format(day=vi_date(day))
        return _page(request, "message.html", status=409, message=text_, title_key="survey")
    code = api.issue_receipt(_rt(request), sit.campaign.id, day, submission_id)
    return _receipt_page(request, code, day)


def _ballot_id(sit: Situation, submission_id: str) -> str:
    """The ballot id ballot_envelope derives from this submission (services/survey/ballot.py)."""
    return str(uuid.uuid5(BALLOT_NS, f"ballot|{sit.pseudonym}|{submission_id}"))


def _receipt_page(
    request: Request, receipt: str | None, submitted_on: date | None, fresh: bool = False
) -> Response:
    """The "Biên nhận" page right after sending (fresh), "Bạn đã gửi phiếu" on any later visit."""
    return _page(request, "receipt.html", receipt=receipt, submitted_on=submitted_on, fresh=fresh)


# --- answers: form fields <-> answers <-> errors --------------------------------------------
def _answers_from_form(sit: Situation, form: Any) -> tuple[dict[tuple[str, str], str], dict]:
    """Chosen options by (unit, question) and errors by (unit, question) — the message keys."""
    chosen: dict[tuple[str, str], str] = {}
    errors: dict[tuple[str, str], str] = {}
    questions = sit.campaign.form(sit.form_code).questions()
    for unit in sit.rated:
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


def _answers(chosen: dict[tuple[str, str], str]) -> list[Answer]:
    return [Answer(unit_code=u, question_id=q, option_code=o) for (u, q), o in chosen.items()]


def _blocks(
    sit: Situation, lang: str, chosen: dict[tuple[str, str], str], errors: dict | None = None
) -> list[dict[str, Any]]:
    """What the templates draw: per rated unit, per criterion, each question with its options."""
    t = TEXT[lang]
    c = sit.campaign
    form = c.form(sit.form_code)
    blocks = []
    for unit_code in sit.rated:
        unit = c.unit(unit_code)
        criteria = []
        for crit in form.criteria:
            questions = []
            for q in crit.questions:
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
                        "dom": f"q-{unit_code}-{q.id}",
                        "field": FIELD.format(unit=unit_code, question=q.id),
                        "text": _text(lang, q.text, q.text_en),
                        "options": options,
                        "chosen": pick,
                        "chosen_label": next(
                            (o["label"] for o in options if o["code"] == pick), t["no_answer"]
                        ),
                        "error": t[error] if error else None,
                    }
                )
            criteria.append(
                {
                    "code": crit.code,
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


def _form_page(
    request: Request,
    sit: Situation,
    chosen: dict[tuple[str, str], str],
    errors: dict | None = None,
    status: int = 200,
    saved: bool = False,
    busy: bool = False,
) -> Response:
    lang = language(request)
    form = sit.campaign.form(sit.form_code)
    return _page(
        request,
        "survey_form.html",
        status=status,
        campaign=sit.campaign,
        form_name=_text(lang, form.name, form.name_en),
        many=form.rates == "many_units",
        blocks=_blocks(sit, lang, chosen, errors),
        error_count=len(errors or {}),
        saved=saved,
        busy=busy,
    )


# --- routes -----------------------------------------------------------------------------
@router.get("/", include_in_schema=False)
async def root(request: Request) -> Response:
    return _finish(request, RedirectResponse("/survey", status_code=303))


@router.get("/survey", response_class=HTMLResponse)
async def survey_page(request: Request) -> Response:
    sit = await _enter(request)
    if isinstance(sit, Response):
        return sit
    draft = await api.load_draft(_rt(request), sit.campaign.id, sit.pseudonym)
    return _form_page(request, sit, _draft_choices(draft))


def _draft_choices(draft: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """The draft's picks; its rows are Answer dumps, and anything else is skipped."""
    chosen: dict[tuple[str, str], str] = {}
    for a in draft:
        if isinstance(a, dict):
            u, q, o = a.get("unit_code"), a.get("question_id"), a.get("option_code")
            if isinstance(u, str) and isinstance(q, str) and isinstance(o, str):
                chosen[(u, q)] = o
    return chosen


@router.post("/survey", response_class=HTMLResponse)
async def survey_post(request: Request) -> Response:
    form = await request.form()
    csrf = form.get("csrf")
    if not csrf_ok(request, csrf if isinstance(csrf, str) else None):
        return _message(request, "csrf", 403)
    action = form.get("action")
    submission = form.get("client_submission_id")
    submission_id = submission[:100] if isinstance(submission, str) and submission else None
    sit = await _enter(request, refused=409, submission_id=submission_id)
    if isinstance(sit, Response):
        return sit
    rt = _rt(request)
    chosen, errors = _answers_from_form(sit, form)
    if action == "draft":
        answers = [a.model_dump() for a in _answers(chosen)]
        await api.save_draft(rt, sit.campaign.id, sit.pseudonym, answers)
        return _form_page(request, sit, chosen, saved=True)
    if action == "edit":
        return _form_page(request, sit, chosen)
    if action == "review":
        if errors:
            return _form_page(request, sit, chosen, errors, status=422)
        lang = language(request)
        return _page(
            request,
            "survey_review.html",
            campaign=sit.campaign,
            blocks=_blocks(sit, lang, chosen),
            many=sit.campaign.form(sit.form_code).rates == "many_units",
            submission_id=uuid.uuid4().hex,  # once per review: a retry is the same event
        )
    if action == "submit":
        if errors:
            return _form_page(request, sit, chosen, errors, status=422)
        p = await current_principal(request)
        assert p is not None
        try:
            result = await api.intake_ballot(rt, p, _answers(chosen), submission_id)
        except PublishUnavailable:
            # Keep the answers: saved as a draft and shown again (decision 23).
            answers = [a.model_dump() for a in _answers(chosen)]
            await api.save_draft(rt, sit.campaign.id, sit.pseudonym, answers)
            page = _form_page(request, sit, chosen, status=503, busy=True)
            page.headers["Retry-After"] = RETRY_AFTER_SECONDS
            return page
        if result.outcome == "accepted":
            return _receipt_page(request, result.receipt, result.submitted_on, fresh=True)
        if result.outcome in ("already_submitted", "deadline_passed"):
            sit.ballot = await api._submitted(rt, sit.campaign.id, sit.pseudonym)
            if sit.ballot is not None:
                return _logged_page(request, sit, 409, submission_id)
            if result.outcome == "already_submitted":
                return _message(request, "submitted", 409)
            return _message(request, "expired", 409, deadline=sit.campaign.deadline)
        if result.outcome == "wave_not_open":
            return _message(request, "not_open", 403, opens_on=sit.opens_on)
        return _form_page(request, sit, chosen, errors, status=422)
    return _form_page(request, sit, chosen)


@router.get("/progress", response_class=HTMLResponse)
async def progress_page(request: Request, campaign: str | None = None) -> Response:
    p = await current_principal(request)
    if p is None:
        return _to_login(request)
    if p.role not in ("admin", "auditor", "focal_point"):
        return _message(request, "forbidden", 403, title="progress")
    try:
        campaign_id, only_unit = api.progress_scope(p, campaign)
    except HTTPException:
        return _message(request, "forbidden", 403, title="progress")
    rt = _rt(request)
    if not campaign_id:  # e.g. after the language switch dropped ?campaign=
        async with rt.sessions() as s:
            rows = (
                await s.execute(
                    text("SELECT id, definition->>'name' FROM survey_campaigns ORDER BY id")
                )
            ).all()
        return _page(request, "progress.html", campaigns=[{"id": i, "name": n} for i, n in rows])
    try:
        data = await api.progress(rt, campaign_id, only_unit)
    except HTTPException:
        return _message(request, "unknown_campaign", 404, title="progress")
    lang = language(request)
    async with rt.sessions() as s:
        c = await load_campaign(s, campaign_id)
    assert c is not None
    for row in data["units"]:
        quota, received = row["quota"], row["received"]
        unit = c.unit(row["unit_code"])
        form = c.form(row["form_code"])
        row["unit_label"] = _text(lang, unit.name, unit.name_en)
        row["form_label"] = _text(lang, form.name, form.name_en)
        row["width"] = f"{min(100.0, received * 100 / quota):.1f}" if quota else "0"
        row["short"] = bool(data["deadline_passed"] and quota and received < quota)
    return _page(
        request,
        "progress.html",
        campaign=c,
        data=data,
        focal=only_unit is not None,
    )
