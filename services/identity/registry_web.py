"""The respondent registry page (admin): search, e-mail correction, resend, reminders, export.

Server-rendered with the web kit (docs/architecture.md, decisions 25 and 34). Answered is yes/no
from survey's non-respondents, asked when the page is drawn; never when, never what.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import text

from contracts.rpc import RESET, ResetRequest
from parindex.bus import rpc
from parindex.web import campaign_pick
from parindex.web import csrf as csrf_check
from parindex.web.deps import Admin, RuntimeDep
from parindex.web.fields import bad_field
from parindex.web.i18n import language
from parindex.web.pages import finish
from parindex.web.scope import scoped_to
from parindex.web.service import Runtime
from services.identity import registry
from services.identity.registry import RegistryRefused
from services.identity.web import PAGES, wait_applied

router = APIRouter()
CHECK_CSRF = Depends(csrf_check.form_csrf)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def _campaigns(rt: Runtime, admin: Any) -> list[str]:
    only = scoped_to(admin)
    async with rt.sessions() as s:
        rows = await s.execute(text("SELECT id FROM identity_campaigns ORDER BY id DESC"))
        found = [r for (r,) in rows.all()]
    return [c for c in found if only is None or c == only]


async def _known(rt: Runtime, admin: Any, campaign: str) -> bool:
    """A campaign identity knows and this admin may act on (the scope check ran already)."""
    return not bad_field({"campaign": campaign}) and campaign in await _campaigns(rt, admin)


def _clean(**fields: str) -> dict[str, str]:
    """Search terms and ids as typed; a control character makes them empty (decision 17)."""
    return {k: ("" if bad_field({k: v}) else v[:200]) for k, v in fields.items()}


@router.get("/admin/registry", response_class=HTMLResponse)
async def registry_page(
    request: Request,
    rt: RuntimeDep,
    admin: Admin,
    campaign: str = "",
    name: str = "",
    unit: str = "",
    email: str = "",
    page: int = Query(1, ge=1, le=100_000),
    done: str = "",
    asked: int = Query(0, ge=0, le=1_000_000),
) -> Response:
    terms = _clean(campaign=campaign, name=name, unit=unit, email=email)
    campaigns = await _campaigns(rt, admin)
    chosen = terms["campaign"] if terms["campaign"] in campaigns else ""
    pick = campaign_pick.picked(request, admin)  # the bar's pick (decision 39)
    chosen = chosen or (pick if pick in campaigns else "") or (campaigns[0] if campaigns else "")
    found = None
    missing: set[str] | None = None
    if chosen:
        async with rt.sessions() as s:
            found = await registry.search(
                s, chosen, name=terms["name"], unit=terms["unit"], email=terms["email"], page=page
            )
        missing = await registry.not_answered(rt.nc, chosen)
    query = {k: v for k, v in terms.items() if k != "campaign" and v}
    return PAGES.render(
        request,
        "registry.html",
        campaign=chosen,
        campaigns=campaigns,
        found=found,
        missing=missing,
        terms=terms,
        query=urlencode({"campaign": chosen, **query}),
        message=PAGES.t(request, done, asked=asked) if done in DONE_KEYS else "",
    )


DONE_KEYS = ("id.reg.email_done", "id.reg.resend_done", "id.reg.remind_done")


def _back(request: Request, campaign: str, key: str, **extra: str) -> Response:
    params = urlencode({"campaign": campaign, "done": key, **extra})
    return finish(request, RedirectResponse(f"/admin/registry?{params}", status_code=303))


def _refused(request: Request, key: str, status: int = 409, **values: object) -> Response:
    return PAGES.render(request, "message.html", status, message=PAGES.t(request, key, **values))


@router.post("/admin/registry/email", dependencies=[CHECK_CSRF])
async def correct_email(
    request: Request,
    rt: RuntimeDep,
    admin: Admin,
    campaign: str = Form(...),
    respondent_id: str = Form(...),
    email: str = Form(""),
) -> Response:
    if bad_field({"campaign": campaign, "respondent_id": respondent_id, "email": email}):
        return _refused(request, "id.reg.bad_email", 400)
    if not await _known(rt, admin, campaign):
        return _refused(request, "id.reg.unknown_campaign", 404)
    try:
        seq = await registry.correct_email(
            rt.js, rt.sessions, campaign, respondent_id, email, admin.subject
        )
    except RegistryRefused as exc:
        return _refused(request, exc.key, 404 if exc.key == "id.reg.unknown" else 422)
    await wait_applied(rt, seq)  # the page that follows shows the new address
    return _back(request, campaign, "id.reg.email_done")


@router.post("/admin/registry/resend", dependencies=[CHECK_CSRF])
async def resend(
    request: Request,
    rt: RuntimeDep,
    admin: Admin,
    campaign: str = Form(...),
    respondent_id: str = Form(...),
) -> Response:
    """Notify's existing resend: a new invitation with a new credential (contracts.rpc.RESET)."""
    if bad_field({"campaign": campaign, "respondent_id": respondent_id}):
        return _refused(request, "id.reg.unknown", 400)
    if not await _known(rt, admin, campaign):
        return _refused(request, "id.reg.unknown_campaign", 404)
    async with rt.sessions() as s:
        if await registry.person(s, campaign, respondent_id) is None:
            return _refused(request, "id.reg.unknown", 404)
    request_ = ResetRequest(campaign_id=campaign, respondent_id=respondent_id)
    try:
        await rpc.call(rt.nc, RESET, request_, timeout=10)
    except rpc.RpcUnavailable:
        return _refused(request, "id.reg.notify_down", 503)
    except rpc.RpcError:
        return _refused(request, "id.reg.resend_refused", 409)
    return _back(request, campaign, "id.reg.resend_done")


@router.post("/admin/registry/remind", dependencies=[CHECK_CSRF])
async def remind(
    request: Request,
    rt: RuntimeDep,
    admin: Admin,
    campaign: str = Form(...),
    respondent_id: str = Form(""),
    unit: str = Form(""),
) -> Response:
    """One person, or every non-respondent of a unit; at most once per person and day."""
    if bad_field({"campaign": campaign, "respondent_id": respondent_id, "unit": unit}):
        return _refused(request, "id.reg.unknown", 400)
    if not await _known(rt, admin, campaign):
        return _refused(request, "id.reg.unknown_campaign", 404)
    missing = await registry.not_answered(rt.nc, campaign, unit or None)
    if missing is None:
        return _refused(request, "id.reg.survey_down", 503)
    if respondent_id:
        async with rt.sessions() as s:
            if await registry.person(s, campaign, respondent_id) is None:
                return _refused(request, "id.reg.unknown", 404)
        if respondent_id not in missing:
            return _refused(request, "id.reg.already_answered", 409)
        targets = [respondent_id]
    elif unit:
        targets = sorted(missing)
    else:
        return _refused(request, "id.reg.unknown", 400)
    asked, skipped = await registry.request_reminders(
        rt.js, rt.sessions, campaign, targets, admin.subject
    )
    if respondent_id and skipped:
        return _refused(request, "id.reg.remind_limit", 429)
    return _back(request, campaign, "id.reg.remind_done", asked=str(len(asked)))


@router.get("/admin/registry/nonrespondents.xlsx")
async def nonrespondents_export(
    request: Request, rt: RuntimeDep, admin: Admin, campaign: str, unit: str
) -> Response:
    if bad_field({"campaign": campaign, "unit": unit}):
        return _refused(request, "id.reg.unknown", 400)
    if not await _known(rt, admin, campaign):
        return _refused(request, "id.reg.unknown_campaign", 404)
    missing = await registry.not_answered(rt.nc, campaign, unit)
    if missing is None:
        return _refused(request, "id.reg.survey_down", 503)
    async with rt.sessions() as s:
        rows = await registry.nonrespondent_rows(s, campaign, unit, missing)
    content = registry.nonrespondents_xlsx(rows, language(request))
    safe = "".join(ch for ch in f"{campaign}-{unit}" if ch.isalnum() or ch in "-_")
    return Response(
        content,
        media_type=XLSX,
        headers={
            "Content-Disposition": f'attachment; filename="chua-tra-loi-{safe}.xlsx"',
            "Cache-Control": "no-store",
        },
    )
