"""Admin page: what was sent, queued and failed per unit and wave, and a resend button."""

from __future__ import annotations

import secrets
from pathlib import Path

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import text

from parindex.web.auth import Principal, current_principal, require
from parindex.web.cookies import set_cookie
from parindex.web.fields import as_bytes as _b
from parindex.web.i18n import language, templates
from services.notify.api import ResendRequest, deliveries, resend

router = APIRouter(tags=["deliveries"])
TEMPLATES = templates(Path(__file__).parent / "web_templates")
CSRF_COOKIE = "parindex_csrf"  # the same double-submit cookie identity and survey use


@router.get("/deliveries", response_class=HTMLResponse)
async def deliveries_page(request: Request, campaign: str | None = None) -> Response:
    principal = await current_principal(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    if principal.role != "admin":
        raise HTTPException(403, "forbidden for role " + principal.role)
    if campaign is None:  # the only campaign, or the newest: what an admin usually wants
        async with request.app.state.rt.sessions() as s:
            campaign = await s.scalar(
                text("SELECT campaign_id FROM notify_campaigns ORDER BY campaign_id DESC LIMIT 1")
            )
        if campaign is None:
            raise HTTPException(404, "no campaign yet")
    data = await deliveries(request, campaign, principal)
    csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    resp = TEMPLATES.TemplateResponse(
        request,
        "deliveries.html",
        {"lang": language(request), "data": data, "campaign": campaign, "csrf": csrf},
    )
    if request.cookies.get(CSRF_COOKIE) != csrf:
        set_cookie(request, resp, CSRF_COOKIE, csrf, httponly=True)
    return resp


@router.post("/deliveries/resend")
async def resend_form(
    request: Request,
    campaign_id: str = Form(...),
    respondent_id: str = Form(...),
    csrf: str = Form(""),
    principal: Principal = Depends(require("admin")),
) -> Response:
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not secrets.compare_digest(_b(cookie), _b(csrf)):
        raise HTTPException(403, "Phiên biểu mẫu không hợp lệ / invalid form token")
    try:
        body = ResendRequest(campaign_id=campaign_id, respondent_id=respondent_id)
    except ValidationError as exc:  # a control character, say: 422, not 500 (decision 17)
        raise HTTPException(
            422, "Mã đợt khảo sát hoặc mã người khảo sát không hợp lệ / invalid id"
        ) from exc
    await resend(body, request, principal)
    return RedirectResponse(f"/deliveries?campaign={campaign_id}", status_code=303)
