"""The campaign workbook pages (admin): template, export, upload → preview → publish, clone.

Sở Nội vụ staff make a year's campaign in Excel, not in YAML (docs/architecture.md, decision
38). An upload is read in a bounded child process (decision 27); its problems come back by
sheet, row and column in the reader's language; a clean workbook becomes a draft kept in
survey's database and shown as a preview (quota table, waves on a timeline, deadline, dedupe
rule in words); "Công bố" publishes it through define.define_campaign (refused once a wave
opened). A scoped admin handles its own campaign only (decision 25).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from parindex.bus.publish import ConcurrencyConflict
from parindex.web import csrf, scope
from parindex.web.auth import Principal
from parindex.web.deps import Admin, RuntimeDep
from parindex.web.fields import bad_field
from parindex.web.pages import finish
from parindex.web.refusal import Refused
from parindex.web.service import RETRY_AFTER_SECONDS
from services.survey import campaign_drafts
from services.survey.campaign_drafts import AlreadyPublished, UnknownDraft
from services.survey.define import CampaignFrozen
from services.survey.projection import load_campaign
from services.survey.web import PAGES
from services.survey.workbook import export
from services.survey.workbook.preview import clone, preview
from services.survey.workbook.read import MAX_BYTES
from services.survey.workbook.rules import Problem
from services.survey.workbook.worker import WorkbookBusy, one_at_a_time, read_off_loop

router = APIRouter()
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
UploadForm = Annotated[UploadFile, File(...)]
CHECK_CSRF = Depends(csrf.form_csrf)


def _xlsx(content: bytes, name: str) -> Response:
    return Response(
        content,
        media_type=XLSX,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


async def _home(
    request: Request, rt: RuntimeDep, admin: Principal, status: int = 200, **ctx: Any
) -> Response:
    only = scope.scoped_to(admin)  # a scoped admin lists its own campaign only (decision 25)
    campaigns = [c for c in await campaign_drafts.on_log(rt.sessions) if only in (None, c["id"])]
    pending = [
        d for d in await campaign_drafts.pending(rt.sessions) if only in (None, d["campaign_id"])
    ]
    return PAGES.render(
        request, "campaigns.html", status, campaigns=campaigns, drafts=pending, **ctx
    )


@router.get("/admin/campaigns", response_class=HTMLResponse)
async def campaigns_page(request: Request, rt: RuntimeDep, admin: Admin) -> Response:
    return await _home(request, rt, admin)


@router.get("/admin/campaigns/template.xlsx")
async def template(admin: Admin) -> Response:
    return _xlsx(export.template(), "so-tay-dot-khao-sat.xlsx")


@router.get("/admin/campaigns/workbook.xlsx")
async def export_campaign(rt: RuntimeDep, admin: Admin, campaign: str = "") -> Response:
    scope.check(admin, campaign)
    async with rt.sessions() as s:
        found = None if bad_field({"campaign": campaign}) else await load_campaign(s, campaign)
    if found is None:
        raise Refused(404, "unknown campaign", key="err.404")
    return _xlsx(export.build(found), f"so-tay-{found.id}.xlsx")


@router.post("/admin/campaigns/upload", dependencies=[CHECK_CSRF])
async def upload(request: Request, rt: RuntimeDep, admin: Admin, file: UploadForm) -> Response:
    content = await file.read(MAX_BYTES + 1)
    try:
        async with one_at_a_time(request.app):
            campaign, problems = await read_off_loop(content)
    except WorkbookBusy:
        return PAGES.render(
            request,
            "message.html",
            503,
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
            message=PAGES.t(request, "sv.wb.busy"),
            title_key="sv.wb.title",
        )
    if campaign is None:
        return _problems(request, problems)
    scope.check(admin, campaign.id)  # a scoped admin defines its own campaign only
    draft_id = await campaign_drafts.keep(rt.sessions, campaign, "workbook", admin.subject)
    return finish(request, RedirectResponse(f"/admin/campaigns/drafts/{draft_id}", 303))


def _problems(request: Request, problems: list[Problem]) -> Response:
    return PAGES.render(request, "campaign_problems.html", 422, problems=problems)


@router.post("/admin/campaigns/clone", dependencies=[CHECK_CSRF])
async def clone_campaign(
    request: Request,
    rt: RuntimeDep,
    admin: Admin,
    campaign: str = Form(""),
    new_id: str = Form(""),
    new_year: str = Form(""),
) -> Response:
    if bad_field({"campaign": campaign, "new_id": new_id, "new_year": new_year}):
        return await _home(request, rt, admin, 422, error=PAGES.t(request, "sv.wb.clone_bad"))
    async with rt.sessions() as s:
        source = await load_campaign(s, campaign)
    if source is None:
        return await _home(request, rt, admin, 404, error=PAGES.t(request, "sv.wb.unknown"))
    new_id = new_id.strip()
    scope.check(admin, new_id)
    try:
        copied = clone(source, new_id, int(new_year.strip()))
    except (ValueError, ValidationError):
        return await _home(request, rt, admin, 422, error=PAGES.t(request, "sv.wb.clone_bad"))
    if copied.id == source.id:
        return await _home(request, rt, admin, 422, error=PAGES.t(request, "sv.wb.clone_same"))
    draft_id = await campaign_drafts.keep(rt.sessions, copied, f"clone:{source.id}", admin.subject)
    return finish(request, RedirectResponse(f"/admin/campaigns/drafts/{draft_id}", 303))


async def _draft(rt: RuntimeDep, admin: Principal, draft_id: str) -> campaign_drafts.Draft:
    if bad_field({"draft": draft_id}) or len(draft_id) > 64:
        raise Refused(404, "unknown draft", key="err.404")
    try:
        draft = await campaign_drafts.get(rt.sessions, draft_id)
    except UnknownDraft:
        raise Refused(404, "unknown draft", key="err.404") from None
    scope.check(admin, draft.campaign.id)
    return draft


@router.get("/admin/campaigns/drafts/{draft_id}", response_class=HTMLResponse)
async def draft_page(request: Request, rt: RuntimeDep, admin: Admin, draft_id: str) -> Response:
    draft = await _draft(rt, admin, draft_id)
    return _preview(request, draft)


def _preview(
    request: Request, draft: campaign_drafts.Draft, status: int = 200, **ctx: Any
) -> Response:
    return PAGES.render(
        request,
        "campaign_preview.html",
        status,
        draft=draft,
        c=draft.campaign,
        view=preview(draft.campaign),
        **ctx,
    )


@router.get("/admin/campaigns/drafts/{draft_id}/workbook.xlsx")
async def draft_workbook(rt: RuntimeDep, admin: Admin, draft_id: str) -> Response:
    draft = await _draft(rt, admin, draft_id)
    return _xlsx(export.build(draft.campaign), f"so-tay-{draft.campaign.id}.xlsx")


@router.post("/admin/campaigns/drafts/{draft_id}/publish", dependencies=[CHECK_CSRF])
async def publish(request: Request, rt: RuntimeDep, admin: Admin, draft_id: str) -> Response:
    draft = await _draft(rt, admin, draft_id)
    try:
        defined = await campaign_drafts.publish(rt.js, rt.sessions, draft_id)
    except CampaignFrozen:
        return _preview(request, draft, 409, error=PAGES.t(request, "sv.wb.frozen"))
    except AlreadyPublished as exc:
        msg = PAGES.t(request, "sv.wb.already", version=exc.version)
        return _preview(request, draft, 409, error=msg)
    except ConcurrencyConflict:
        return _preview(request, draft, 409, error=PAGES.t(request, "sv.wb.conflict"))
    return PAGES.render(
        request,
        "message.html",
        message=PAGES.t(request, "sv.wb.published", id=defined.id, version=defined.version),
        title_key="sv.wb.title",
        campaign=defined.id,
    )
