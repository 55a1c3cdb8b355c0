"""Identity's pages and admin API: login, logout, portal, reset request, respondent import.

Pages are server-rendered (Jinja2, no JavaScript) through the shared web kit: Vietnamese first,
`?lang=en` switches and is remembered, every form post carries the session-bound CSRF token
(docs/architecture.md, decision 25).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import text

from contracts import rpc as rpc_contract
from contracts.lifecycle import Stage, accepts_imports
from contracts.rpc import ResetRequest
from parindex.bus.deadletter import dead_letter_count
from parindex.bus.publish import ConcurrencyConflict
from parindex.web import campaign_pick
from parindex.web import csrf as csrf_check
from parindex.web.auth import COOKIE, Principal, issue_token
from parindex.web.cookies import set_cookie
from parindex.web.deps import Admin, PrincipalDep, RuntimeDep, SessionDep
from parindex.web.fields import bad_field
from parindex.web.pages import Pages, endpoints, finish
from parindex.web.service import Runtime
from services.identity import accounts, projection
from services.identity.import_previews import Previews, Upload
from services.identity.import_worker import ImportBusy, one_at_a_time
from services.identity.importer import MAX_BYTES
from services.identity.imports import (
    CampaignClosedToImports,
    Prepared,
    PreviewOutdated,
    UnknownCampaign,
    prepare_import,
    public_respondent,
    run_import,
)

log = logging.getLogger(__name__)
router = APIRouter()
HERE = Path(__file__).parent
PAGES = Pages(HERE / "templates", HERE / "text")
CHECK_CSRF = Depends(csrf_check.form_csrf)  # first: before the form is even read

TOKEN_TTL_S = 8 * 3600


def _ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


# --- login -------------------------------------------------------------------------------
@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> Response:
    return PAGES.render(request, "login.html")


@router.post("/login", dependencies=[CHECK_CSRF])
async def login(
    request: Request,
    rt: RuntimeDep,
    username: str = Form(""),
    password: str = Form(""),
    next: str = Form(""),  # noqa: A002 - the conventional name of the return address
) -> Response:
    bad = bad_field({"username": username, "password": password, "next": next})
    if bad is not None:  # PostgreSQL would refuse it: a clear answer, not a 500 (decision 17)
        label = PAGES.t(request, f"id.{bad}") if bad != "next" else PAGES.t(request, "app.login")
        error = PAGES.t(request, "app.bad_chars", field=label)
        return PAGES.render(request, "login.html", status=400, error=error)
    result = await accounts.authenticate(
        rt.sessions, username, password, _ip(request), key=rt.extras["attempts_key"]
    )
    if result.principal is None:
        error = PAGES.t(request, "id.locked" if result.locked else "id.bad_login")
        return PAGES.render(
            request,
            "login.html",
            status=429 if result.locked else 401,
            error=error,
            username=username,
            failed=True,
            helplines=await helplines(rt),
        )
    token = issue_token(rt.extras["private_key"], result.principal, TOKEN_TTL_S)
    resp = RedirectResponse(_safe_next(request, next, result.principal.role), status_code=303)
    set_cookie(request, resp, COOKIE, token, max_age=TOKEN_TTL_S, httponly=True)
    # Forms are now bound to the session; the anonymous nonce is replaced all the same.
    nonce = secrets.token_urlsafe(32)
    set_cookie(request, resp, csrf_check.NONCE_COOKIE, nonce, httponly=True)
    return resp


async def helplines(rt: Runtime) -> list[str]:
    """The helplines of the latest campaigns, for a person whose password failed.

    The login page does not know the person's campaign, so it names the three distinct
    helplines of the campaigns with the latest deadlines (usually one; campaign time may be
    accelerated, so not wall-clock "open" ones). Campaigns without a helpline are skipped
    before counting, so they cannot push the one a person needs off the page
    (docs/architecture.md, decision 37).
    """
    async with rt.sessions() as s:
        rows = await s.execute(
            text(
                "SELECT definition->>'helpline' AS h FROM identity_campaigns "
                "WHERE coalesce(definition->>'helpline', '') <> '' "
                "GROUP BY h ORDER BY max((definition->>'deadline')::timestamptz) DESC, h LIMIT 3"
            )
        )
        return [h for (h,) in rows.all()]


@router.post("/logout", dependencies=[CHECK_CSRF])
async def logout(request: Request) -> Response:
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(COOKIE)
    return resp


def _safe_next(request: Request, target: str, role: str) -> str:
    """Only our own pages: a relative path or one of the services' base URLs (no open redirect)."""
    services = endpoints(request)
    if target.startswith("/") and not target.startswith("//"):
        return target
    if any(target.startswith(base.rstrip("/") + "/") for base in services.values()):
        return target
    if role == "respondent" and "survey" in services:
        return services["survey"].rstrip("/") + "/survey"
    return "/"


# --- portal ------------------------------------------------------------------------------
PORTAL_LINKS = {"survey": "/survey", "scoring": "/dashboard", "notify": "/deliveries"}


@router.get("/", response_class=HTMLResponse)
async def portal(request: Request, rt: RuntimeDep, p: PrincipalDep) -> Response:
    if p is None:
        return finish(request, RedirectResponse("/login", status_code=303))
    links = []
    for service, base in endpoints(request).items():
        if service == "notify" and p.role != "admin":
            continue  # the deliveries page is the admins' alone: no link to a refusal
        if service in PORTAL_LINKS and (service == "survey" or p.role != "respondent"):
            path, label = PORTAL_LINKS[service], f"id.link.{service}"
            if service == "survey" and p.role != "respondent":
                path, label = "/progress", "id.link.progress"
            links.append({"href": base.rstrip("/") + path, "label": label})
    if p.role == "focal_point":  # the page they come for (docs/architecture.md, decision 37)
        links.insert(0, {"href": "/focal", "label": "id.focal.title"})
    failed = None
    log_alarm = None
    if p.role == "admin":
        links.append({"href": "/admin/import", "label": "id.import"})
        try:  # the dead-letter stream's message count (docs/architecture.md, decision 17)
            failed = await dead_letter_count(rt.js)
        except Exception:  # NATS unavailable: the portal still opens
            log.warning("could not count dead letters", exc_info=True)
        log_alarm = _log_alarm(rt)
    return PAGES.render(
        request, "portal.html", principal=p, links=links, failed=failed, log_alarm=log_alarm
    )


def _log_alarm(rt: Runtime) -> dict[str, object] | None:
    """The log was found behind identity's projection since start (docs/architecture.md,
    decision 26): identity reads the whole log, so it sees the same rewind as every service."""
    runner = rt.extras.get("projection")
    found = getattr(runner, "last_mismatch", None)
    if found is None:
        return None
    rebuilding = getattr(runner, "log_mismatch", False)
    key = "id.log_rewind_running" if rebuilding else "id.log_rewind_done"
    return {"key": key, "offset": found[0], "last": found[1]}


# --- reset -------------------------------------------------------------------------------
@router.get("/reset", response_class=HTMLResponse)
async def reset_form(request: Request) -> Response:
    return PAGES.render(request, "reset.html")


@router.post("/reset", response_class=HTMLResponse, dependencies=[CHECK_CSRF])
async def reset(request: Request, rt: RuntimeDep, email: str = Form("")) -> Response:
    """Only records the request: notify picks requests up and asks for a credential by RPC.

    The answer is the same whether or not the address is known (no account enumeration), and
    nothing is published here: CredentialsIssued appears when notify actually requests one.
    """
    if bad_field({"email": email}) is not None:
        error = PAGES.t(request, "app.bad_chars", field=PAGES.t(request, "id.email"))
        return PAGES.render(request, "reset.html", status=400, error=error)
    if email.strip():
        if await accounts.record_reset_request(rt.sessions, email, _ip(request)):
            for c, rid in await accounts.open_registrations(rt.sessions, email):
                body = ResetRequest(campaign_id=c, respondent_id=rid).model_dump_json()
                # Fire and forget: notify e-mails it, and the page says the same either way.
                await rt.nc.publish(rpc_contract.RESET.subject, body.encode())
    return PAGES.render(request, "message.html", message=PAGES.t(request, "id.reset_done"))


# --- admin -------------------------------------------------------------------------------
@router.get("/admin/import", response_class=HTMLResponse)
async def import_form(request: Request, p: Admin) -> Response:
    """The picked campaign's import; none once it is closed (docs/architecture.md, decision 39)."""
    campaign = campaign_pick.picked(request, p)
    stage = campaign_pick.stage(request, campaign)
    closed = stage is not None and not accepts_imports(stage) and stage != Stage.DRAFT
    return PAGES.render(request, "import.html", principal=p, campaign=campaign, closed=closed)


async def wait_applied(rt: Runtime, seq: int, timeout: float = 30.0) -> None:
    """Until identity's projection (any instance) has applied `seq`."""
    deadline = time.monotonic() + timeout
    while True:
        async with rt.sessions() as s:
            if await projection.applied_offset(s) >= seq:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"projection did not reach sequence {seq}")
        await asyncio.sleep(0.05)


async def _import(
    request: Request,
    rt: Runtime,
    campaign: str,
    content: bytes,
    filename: str,
    admin: Principal,
    *,
    dry_run: bool = False,
    withdraw: bool = False,
    expect_digest: str | None = None,
) -> tuple[int, dict, Prepared | None]:
    """(status, report dict, prepared import) shared by the JSON API and the HTML pages.

    `dry_run` only checks and diffs (the preview); otherwise the changes are published.
    """
    if bad_field({"campaign": campaign}) is not None:
        field = PAGES.t(request, "id.campaign")
        return 422, {"detail": PAGES.t(request, "app.bad_chars", field=field)}, None
    prepared: Prepared | None = None
    try:
        async with one_at_a_time(request.app):  # parsed in a bounded child (decision 27)
            if dry_run:
                prepared = await prepare_import(
                    rt.js,
                    rt.sessions,
                    campaign,
                    content,
                    filename,
                    wait_applied=lambda seq: wait_applied(rt, seq),
                )
                report = prepared.report
            else:
                report = await run_import(
                    rt.js,
                    rt.sessions,
                    campaign,
                    content,
                    filename,
                    wait_applied=lambda seq: wait_applied(rt, seq),
                    correlation_id=f"import:{admin.subject}",
                    withdraw_missing=withdraw,
                    expect_digest=expect_digest,
                )
    except ImportBusy:
        return 503, {"error": "import_busy", "detail": PAGES.t(request, "id.busy")}, None
    except UnknownCampaign:
        return 404, {"detail": f"unknown campaign {campaign}"}, None
    except CampaignClosedToImports:
        return 409, {"error": "campaign_closed", "detail": f"campaign {campaign} is closed"}, None
    except (ConcurrencyConflict, PreviewOutdated) as exc:
        return 409, {"detail": f"registry changed meanwhile, retry ({exc})"}, None
    if not dry_run:
        log.info(
            "import into %s by %s: %d new, %d updated, %d withdrawn, %d problems",
            campaign,
            admin.subject,
            len(report.new),
            len(report.updated),
            len(report.missing) if withdraw else 0,
            len(report.problems),
        )
    return (200 if report.ok else 422), report.to_dict(), prepared


UploadForm = Annotated[UploadFile, File(...)]
PAGE_REFUSALS = {404: "id.unknown_campaign", 409: "id.registry_changed"}


@router.post("/api/respondents/import")
async def import_respondents(
    request: Request,
    rt: RuntimeDep,
    admin: Admin,
    _csrf: csrf_check.FormCsrf,
    file: UploadForm,
    campaign: str = Form(...),
    dry_run: bool = Form(False),
) -> Response:
    """One step for scripts; `dry_run` answers what would change and publishes nothing."""
    content = await file.read(MAX_BYTES + 1)
    status, body, prepared = await _import(
        request, rt, campaign, content, file.filename or "upload", admin, dry_run=dry_run
    )
    if prepared is not None:
        body["preview"] = prepared.preview()
    return JSONResponse(body, status_code=status, headers=_retry_after(status))


def _refusal_page(request: Request, status: int, body: dict, admin: Principal) -> Response:
    if status == 503:
        headers = _retry_after(status)
        return PAGES.render(request, "message.html", 503, headers, message=body["detail"])
    key = "id.import_closed" if body.get("error") == "campaign_closed" else PAGE_REFUSALS[status]
    body = {"detail": PAGES.t(request, key)}  # the catalog's words, not the API's English
    return PAGES.render(request, "import_report.html", status=status, report=body, principal=admin)


def _previews(request: Request) -> Previews:
    """This process's kept uploads (services/identity/import_previews.py)."""
    if not hasattr(request.app.state, "import_previews"):
        request.app.state.import_previews = Previews()
    return request.app.state.import_previews


@router.post("/admin/import", response_class=HTMLResponse)
async def import_page(
    request: Request,
    rt: RuntimeDep,
    admin: Admin,
    _csrf: csrf_check.FormCsrf,
    file: UploadForm,
    campaign: str = Form(...),
) -> Response:
    """Upload: check and diff, publish nothing; show what a confirm would add, change and
    withdraw (docs/architecture.md, decision 39)."""
    content = await file.read(MAX_BYTES + 1)
    filename = file.filename or "upload"
    status, body, prepared = await _import(
        request, rt, campaign, content, filename, admin, dry_run=True
    )
    if status in PAGE_REFUSALS or status == 503:
        return _refusal_page(request, status, body, admin)
    if prepared is None or not prepared.report.ok:
        return PAGES.render(
            request, "import_report.html", status=status, report=body, principal=admin
        )
    previews = _previews(request)
    token = previews.keep(Upload(admin.subject, campaign, filename, content, prepared.digest))
    return PAGES.render(
        request,
        "import_preview.html",
        report=body,
        rows=prepared.preview(),
        token=token,
        digest=prepared.digest,
        campaign=campaign,
        filename=filename,
        principal=admin,
    )


@router.post("/admin/import/confirm", response_class=HTMLResponse, dependencies=[CHECK_CSRF])
async def import_confirm(
    request: Request,
    rt: RuntimeDep,
    admin: Admin,
    campaign: str = Form(...),
    token: str = Form(..., max_length=64),
    digest: str = Form(..., max_length=64),
    withdraw: bool = Form(False),
) -> Response:
    """Publish exactly the previewed changes, or nothing if the registry moved meanwhile."""
    previews = _previews(request)
    kept = previews.get(token, admin.subject, campaign)
    if kept is None or kept.digest != digest:
        message = PAGES.t(request, "id.preview_expired")
        return PAGES.render(request, "message.html", 409, message=message)
    status, body, _ = await _import(
        request,
        rt,
        campaign,
        kept.content,
        kept.filename,
        admin,
        withdraw=withdraw,
        expect_digest=digest,
    )
    if status in PAGE_REFUSALS or status == 503:
        if status != 503:
            previews.drop(token)
        return _refusal_page(request, status, body, admin)
    previews.drop(token)
    return PAGES.render(request, "import_report.html", status=status, report=body, principal=admin)


def _retry_after(status: int) -> dict[str, str]:
    return {"Retry-After": "30"} if status == 503 else {}


@router.get("/api/respondents")
async def list_respondents(
    s: SessionDep, _: Admin, campaign: str, unit: str | None = None
) -> dict[str, Any]:
    rows = await projection.respondents(s, campaign, unit_code=unit)
    return {"campaign_id": campaign, "respondents": [public_respondent(r) for r in rows]}
