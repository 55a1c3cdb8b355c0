"""Staff accounts page (admin of every campaign): list, create, disable, reset (decision 34).

A campaign-scoped admin may not manage accounts: it could otherwise make an unscoped one and
leave its scope. A new or reset password is shown once on the answer page and kept nowhere
but as its argon2 hash; the page is `no-store`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from parindex.web import csrf as csrf_check
from parindex.web.auth import Principal
from parindex.web.deps import Admin, RuntimeDep
from parindex.web.fields import bad_field
from parindex.web.pages import finish
from parindex.web.refusal import Refused
from services.identity import staff
from services.identity.staff import StaffRefused
from services.identity.web import PAGES

router = APIRouter()
CHECK_CSRF = Depends(csrf_check.form_csrf)


def _unscoped(admin: Principal) -> None:
    if admin.campaign_id:
        raise Refused(403, "staff accounts need an admin of every campaign", key="err.403")


async def _page(request: Request, rt: RuntimeDep, status: int = 200, **ctx: Any) -> Response:
    return PAGES.render(
        request,
        "staff.html",
        status,
        users=await staff.users(rt.sessions),
        roles=staff.ROLES,
        **ctx,
    )


@router.get("/admin/staff", response_class=HTMLResponse)
async def staff_page(request: Request, rt: RuntimeDep, admin: Admin) -> Response:
    _unscoped(admin)
    return await _page(request, rt)


@router.post("/admin/staff", dependencies=[CHECK_CSRF])
async def create(
    request: Request,
    rt: RuntimeDep,
    admin: Admin,
    username: str = Form(""),
    role: str = Form(""),
    unit_code: str = Form(""),
    scope_campaign: str = Form(""),
    password: str = Form(""),
) -> Response:
    _unscoped(admin)
    fields = {"username": username, "role": role, "unit_code": unit_code}
    if bad_field({**fields, "scope_campaign": scope_campaign, "password": password}):
        return await _page(request, rt, 400, error=PAGES.t(request, "id.staff.bad_username"))
    try:
        shown = await staff.create(
            rt.js,
            rt.sessions,
            username=username,
            role=role,
            unit_code=unit_code,
            campaign_id=scope_campaign,
            password=password,
            by=admin.subject,
        )
    except StaffRefused as exc:
        return await _page(request, rt, 422, error=PAGES.t(request, exc.key), form=fields)
    return await _page(
        request,
        rt,
        message=PAGES.t(request, "id.staff.created", username=username.strip().lower()),
        new_password=shown,
    )


@router.post("/admin/staff/disable", dependencies=[CHECK_CSRF])
async def disable(
    request: Request, rt: RuntimeDep, admin: Admin, username: str = Form("")
) -> Response:
    _unscoped(admin)
    try:
        if bad_field({"username": username}):
            raise StaffRefused("id.staff.unknown")
        await staff.disable(rt.js, rt.sessions, username, admin.subject)
    except StaffRefused as exc:
        return await _page(request, rt, 409, error=PAGES.t(request, exc.key))
    return finish(request, RedirectResponse("/admin/staff", status_code=303))


@router.post("/admin/staff/reset", dependencies=[CHECK_CSRF])
async def reset(
    request: Request, rt: RuntimeDep, admin: Admin, username: str = Form("")
) -> Response:
    _unscoped(admin)
    try:
        if bad_field({"username": username}):
            raise StaffRefused("id.staff.unknown")
        password = await staff.reset_password(rt.js, rt.sessions, username, admin.subject)
    except StaffRefused as exc:
        return await _page(request, rt, 409, error=PAGES.t(request, exc.key))
    return await _page(
        request,
        rt,
        message=PAGES.t(request, "id.staff.reset_done", username=username),
        new_password=password,
    )
