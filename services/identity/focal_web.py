"""The focal point's (đầu mối) page: the unit's list against quota, non-respondents, reminders.

Server-rendered with the web kit (docs/architecture.md, decisions 25 and 37). A focal point acts
on its own unit and campaign only; refusals are sentences from the catalog, and a person who is
not among the unit's non-respondents gets one neutral answer, whoever they are.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from parindex.web import csrf as csrf_check
from parindex.web.auth import Principal
from parindex.web.deps import RuntimeDep, require
from parindex.web.fields import bad_field
from parindex.web.i18n import language, vi_date
from parindex.web.pages import finish
from services.identity import focal, registry
from services.identity.registry_web import XLSX
from services.identity.web import PAGES

router = APIRouter()
CHECK_CSRF = Depends(csrf_check.form_csrf)
FocalPoint = Annotated[Principal, Depends(require("focal_point"))]
DONE_KEYS = ("id.focal.remind_done",)


def _plural(key: str, n: int) -> str:
    """English needs "1 person" apart from "2 people"; Vietnamese has both keys alike."""
    return f"{key}_one" if n == 1 else key


def _refused(request: Request, key: str, status: int, **values: object) -> Response:
    return PAGES.render(request, "message.html", status, message=PAGES.t(request, key, **values))


@router.get("/focal", response_class=HTMLResponse)
async def focal_page(
    request: Request,
    rt: RuntimeDep,
    p: FocalPoint,
    campaign: str = "",
    done: str = "",
    asked: int = Query(0, ge=0, le=1_000_000),
    skipped: int = Query(0, ge=0, le=1_000_000),
) -> Response:
    wanted = "" if bad_field({"campaign": campaign}) else campaign
    async with rt.sessions() as s:
        found = await focal.campaign_for(s, p, wanted)
        lines = await focal.form_lines(s, rt.nc, found, p.unit_code or "") if found else []
    missing = await registry.not_answered(rt.nc, found.id, p.unit_code) if found else None
    rows = []
    if found is not None and missing is not None:
        async with rt.sessions() as s:
            rows = await registry.nonrespondent_rows(s, found.id, p.unit_code or "", missing)
    today = registry.today()
    message = ""
    if done in DONE_KEYS:
        message = PAGES.t(request, _plural(done, asked), asked=asked)
        if skipped > 0:
            message += " " + PAGES.t(request, _plural("id.focal.skipped", skipped), skipped=skipped)
    return PAGES.render(
        request,
        "focal.html",
        campaign=found,
        unit=found.unit(p.unit_code) if found and p.unit_code else None,
        lines=lines,
        rows=rows,
        missing=missing,
        today=today,
        message=message,
    )


@router.post("/focal/remind", dependencies=[CHECK_CSRF])
async def focal_remind(
    request: Request,
    rt: RuntimeDep,
    p: FocalPoint,
    campaign: str = Form(...),
    respondent_id: str = Form(""),
    everyone: str = Form(""),
) -> Response:
    """One person, or every non-respondent of the focal point's unit; once per person a day."""
    if bad_field({"campaign": campaign, "respondent_id": respondent_id, "everyone": everyone}):
        return _refused(request, "id.focal.not_listed", 400)
    async with rt.sessions() as s:
        found = await focal.campaign_for(s, p, campaign)
    if found is None or found.id != campaign or not p.unit_code:
        return _refused(request, "id.reg.unknown_campaign", 404)
    missing = await registry.not_answered(rt.nc, campaign, p.unit_code)
    if missing is None:
        return _refused(request, "id.reg.survey_down", 503)
    async with rt.sessions() as s:
        listed = {
            r["respondent_id"]
            for r in await registry.nonrespondent_rows(s, campaign, p.unit_code, missing)
        }
    if respondent_id:
        # Not listed: answered, withdrawn or another unit's; one answer for all (decision 37).
        if respondent_id not in listed:
            return _refused(request, "id.focal.not_listed", 404)
        targets = [respondent_id]
    elif everyone:
        targets = sorted(listed)
    else:
        return _refused(request, "id.focal.not_listed", 400)
    asked, skipped = await registry.request_reminders(
        rt.js, rt.sessions, campaign, targets, p.subject
    )
    if respondent_id and skipped:
        tomorrow = vi_date(registry.today() + timedelta(days=1))
        return _refused(request, "id.focal.remind_limit", 429, day=tomorrow)
    params = {"done": DONE_KEYS[0], "asked": len(asked), "skipped": len(skipped)}
    return finish(request, RedirectResponse(f"/focal?{urlencode(params)}", status_code=303))


@router.get("/focal/nonrespondents.xlsx")
async def focal_export(
    request: Request, rt: RuntimeDep, p: FocalPoint, campaign: str = ""
) -> Response:
    wanted = "" if bad_field({"campaign": campaign}) else campaign
    async with rt.sessions() as s:
        found = await focal.campaign_for(s, p, wanted)
    if found is None or not p.unit_code:
        return _refused(request, "id.reg.unknown_campaign", 404)
    missing = await registry.not_answered(rt.nc, found.id, p.unit_code)
    if missing is None:
        return _refused(request, "id.reg.survey_down", 503)
    async with rt.sessions() as s:
        rows = await registry.nonrespondent_rows(s, found.id, p.unit_code, missing)
    content = registry.nonrespondents_xlsx(rows, language(request))
    safe = "".join(ch for ch in f"{found.id}-{p.unit_code}" if ch.isalnum() or ch in "-_")
    return Response(
        content,
        media_type=XLSX,
        headers={
            "Content-Disposition": f'attachment; filename="chua-tra-loi-{safe}.xlsx"',
            "Cache-Control": "no-store",
        },
    )
