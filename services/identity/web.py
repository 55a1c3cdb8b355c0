"""Identity's pages and admin API: login, logout, portal, reset request, respondent import.

Pages are server-rendered (Jinja2, no JavaScript), Vietnamese first; `?lang=en` switches and
is remembered in a cookie. Forms carry a double-submit CSRF token (a random cookie echoed in a
hidden field or the X-CSRF-Token header), checked on every state-changing request; together
with SameSite=Lax session cookies that refuses cross-site posts even from old browsers.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from contracts import subjects
from parindex.bus.deadletter import dead_letter_count
from parindex.bus.publish import ConcurrencyConflict
from parindex.web.auth import COOKIE, Principal, current_principal, issue_token, require
from parindex.web.cookies import set_cookie
from parindex.web.fields import bad_field
from parindex.web.service import Runtime
from services.identity import accounts, projection
from services.identity.importer import MAX_BYTES
from services.identity.imports import UnknownCampaign, public_respondent, run_import

log = logging.getLogger(__name__)
router = APIRouter()
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

CSRF_COOKIE = "parindex_csrf"
from parindex.web.i18n import LANG_COOKIE  # noqa: E402 - one cookie for every service

TOKEN_TTL_S = 8 * 3600

TEXT: dict[str, dict[str, str]] = {
    "vi": {
        "title": "Khảo sát Chỉ số CCHC",
        "login": "Đăng nhập",
        "username": "Tên đăng nhập",
        "password": "Mật khẩu",
        "logout": "Đăng xuất",
        "bad_login": "Tên đăng nhập hoặc mật khẩu không đúng.",
        "locked": "Tài khoản tạm khóa do đăng nhập sai nhiều lần. Vui lòng thử lại sau 15 phút.",
        "csrf": "Phiên làm việc của biểu mẫu đã hết hạn hoặc không hợp lệ. "
        "Vui lòng tải lại trang và thử lại.",
        "forgot": "Quên mật khẩu?",
        "reset": "Cấp lại mật khẩu",
        "email": "Email",
        "send": "Gửi yêu cầu",
        "reset_done": "Nếu email này có trong danh sách khảo sát, mật khẩu mới sẽ được gửi tới "
        "email đó.",
        "welcome": "Xin chào",
        "portal": "Các trang của hệ thống",
        "import": "Nhập danh sách người khảo sát",
        "campaign": "Mã đợt khảo sát",
        "file": "Tệp danh sách (.xlsx, .csv)",
        "upload": "Tải lên và kiểm tra",
        "bad_chars": "Trường «{field}» chứa ký tự không được phép (ví dụ ký tự điều khiển).",
        "dead_letters": "Sự kiện lỗi",
        "log_rewind_running": "Cảnh báo: nhật ký sự kiện ngắn hơn dữ liệu đã xử lý (đã xử lý "
        "đến vị trí {offset}, nhật ký chỉ còn đến vị trí {last}), có thể do mất điện. Dữ liệu "
        "đang được dựng lại từ nhật ký. Một số phiếu đã được xác nhận có thể đã mất: hãy báo bộ "
        "phận vận hành.",
        "log_rewind_done": "Cảnh báo: nhật ký sự kiện đã bị lùi lại (đã xử lý đến vị trí {offset}, "
        "nhật ký chỉ còn đến vị trí {last}), có thể do mất điện. Dữ liệu đã được dựng lại từ nhật "
        "ký. Một số phiếu đã được xác nhận có thể đã mất: hãy báo bộ phận vận hành.",
        "other_lang": "English",
        "other_code": "en",
    },
    "en": {
        "title": "PAR Index survey",
        "login": "Log in",
        "username": "Username",
        "password": "Password",
        "logout": "Log out",
        "bad_login": "Wrong username or password.",
        "locked": "Account temporarily locked after too many failed attempts. "
        "Try again in 15 minutes.",
        "csrf": "The form has expired or is invalid. Reload the page and try again.",
        "forgot": "Forgot your password?",
        "reset": "Request a new password",
        "email": "E-mail",
        "send": "Send request",
        "reset_done": "If this e-mail is on the survey list, a new password will be sent to it.",
        "welcome": "Welcome",
        "portal": "Pages",
        "import": "Import respondent list",
        "campaign": "Campaign id",
        "file": "List file (.xlsx, .csv)",
        "upload": "Upload and check",
        "bad_chars": "The field “{field}” contains characters that are not allowed "
        "(such as control characters).",
        "dead_letters": "Failed events",
        "log_rewind_running": "Warning: the event log is shorter than what was processed "
        "(processed up to position {offset}, the log now ends at {last}), probably after a power "
        "loss. The data is being rebuilt from the log. Some acknowledged ballots may have been "
        "lost: tell the operations team.",
        "log_rewind_done": "Warning: the event log moved back (processed up to position {offset}, "
        "the log now ends at {last}), probably after a power loss. The data has been rebuilt from "
        "the log. Some acknowledged ballots may have been lost: tell the operations team.",
        "other_lang": "Tiếng Việt",
        "other_code": "vi",
    },
}


def _rt(request: Request) -> Runtime:
    return request.app.state.rt


def _lang(request: Request) -> str:
    lang = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE) or "vi"
    return lang if lang in TEXT else "vi"


def _ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _csrf_value(request: Request) -> str:
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)


def _finish(request: Request, response: Response, csrf: str | None = None) -> Response:
    """Set the language and CSRF cookies every page needs."""
    if request.query_params.get("lang") in TEXT:
        set_cookie(request, response, LANG_COOKIE, _lang(request), max_age=365 * 86400)
    if csrf is not None and request.cookies.get(CSRF_COOKIE) != csrf:
        set_cookie(request, response, CSRF_COOKIE, csrf, httponly=True)
    return response


def _page(request: Request, name: str, status: int = 200, **ctx: Any) -> Response:
    lang = _lang(request)
    csrf = _csrf_value(request)
    resp = templates.TemplateResponse(
        request, name, {"t": TEXT[lang], "lang": lang, "csrf": csrf, **ctx}, status_code=status
    )
    return _finish(request, resp, csrf)


def csrf_ok(request: Request, submitted: str | None) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE)
    submitted = submitted or request.headers.get("x-csrf-token")
    return bool(cookie and submitted and hmac.compare_digest(cookie, submitted))


def _csrf_refused(request: Request) -> Response:
    return _page(request, "message.html", status=403, message=TEXT[_lang(request)]["csrf"])


# --- login -------------------------------------------------------------------------------
@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> Response:
    return _page(request, "login.html")


@router.post("/login")
async def login(
    request: Request,
    username: str = Form(""),
    password: str = Form(""),
    csrf: str = Form(""),
    next: str = Form(""),  # noqa: A002 - the conventional name of the return address
) -> Response:
    if not csrf_ok(request, csrf):
        return _csrf_refused(request)
    t = TEXT[_lang(request)]
    bad = bad_field({"username": username, "password": password, "next": next})
    if bad is not None:  # PostgreSQL would refuse it: a clear answer, not a 500 (decision 17)
        label = t.get(bad, t["login"])
        return _page(request, "login.html", status=400, error=t["bad_chars"].format(field=label))
    rt = _rt(request)
    result = await accounts.authenticate(
        rt.sessions, username, password, _ip(request), key=rt.extras["attempts_key"]
    )
    if result.principal is None:
        error = t["locked"] if result.locked else t["bad_login"]
        return _page(
            request,
            "login.html",
            status=429 if result.locked else 401,
            error=error,
            username=username,
        )
    token = issue_token(_rt(request).extras["private_key"], result.principal, TOKEN_TTL_S)
    resp = RedirectResponse(_safe_next(request, next, result.principal.role), status_code=303)
    set_cookie(request, resp, COOKIE, token, max_age=TOKEN_TTL_S, httponly=True)
    set_cookie(request, resp, CSRF_COOKIE, secrets.token_urlsafe(32), httponly=True)  # per session
    return resp


@router.post("/logout")
async def logout(request: Request, csrf: str = Form("")) -> Response:
    if not csrf_ok(request, csrf):
        return _csrf_refused(request)
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(COOKIE)
    return resp


def _safe_next(request: Request, target: str, role: str) -> str:
    """Only our own pages: a relative path or one of the services' base URLs (no open redirect)."""
    services = _endpoints(request)
    if target.startswith("/") and not target.startswith("//"):
        return target
    if any(target.startswith(base.rstrip("/") + "/") for base in services.values()):
        return target
    if role == "respondent" and "survey" in services:
        return services["survey"].rstrip("/") + "/survey"
    return "/"


# --- portal ------------------------------------------------------------------------------
def _endpoints(request: Request) -> dict[str, str]:
    path = Path(request.app.state.settings.state_dir) / "endpoints.json"
    try:
        return dict(json.loads(path.read_text()).get("services", {}))
    except (OSError, ValueError):
        return {}


PORTAL_LINKS = {  # service -> (path, vi, en), shown by role
    "survey": ("/survey", "Trả lời phiếu khảo sát", "Answer the survey"),
    "scoring": ("/dashboard", "Kết quả", "Results"),
    "notify": ("/deliveries", "Thư mời và nhắc nhở", "Invitations and reminders"),
}


@router.get("/", response_class=HTMLResponse)
async def portal(request: Request) -> Response:
    p = await current_principal(request)
    if p is None:
        return _finish(request, RedirectResponse("/login", status_code=303))
    lang = _lang(request)
    links = []
    for service, base in _endpoints(request).items():
        if service in PORTAL_LINKS and (service == "survey" or p.role != "respondent"):
            path, vi, en = PORTAL_LINKS[service]
            if service == "survey" and p.role != "respondent":
                path, vi, en = "/progress", "Tiến độ khảo sát", "Survey progress"
            links.append({"href": base.rstrip("/") + path, "label": vi if lang == "vi" else en})
    failed = None
    log_alarm = None
    if p.role == "admin":
        links.append({"href": "/admin/import", "label": TEXT[lang]["import"]})
        try:  # the dead-letter stream's message count (docs/architecture.md, decision 17)
            failed = await dead_letter_count(_rt(request).js)
        except Exception:  # NATS unavailable: the portal still opens
            log.warning("could not count dead letters", exc_info=True)
        log_alarm = _log_alarm(request, lang)
    return _page(
        request, "portal.html", principal=p, links=links, failed=failed, log_alarm=log_alarm
    )


def _log_alarm(request: Request, lang: str) -> str | None:
    """The log was found behind identity's projection since start (docs/architecture.md,
    decision 26): identity reads the whole log, so it sees the same rewind as every service."""
    runner = _rt(request).extras.get("projection")
    found = getattr(runner, "last_mismatch", None)
    if found is None:
        return None
    key = "log_rewind_running" if getattr(runner, "log_mismatch", False) else "log_rewind_done"
    return TEXT[lang][key].format(offset=found[0], last=found[1])


# --- reset -------------------------------------------------------------------------------
@router.get("/reset", response_class=HTMLResponse)
async def reset_form(request: Request) -> Response:
    return _page(request, "reset.html")


@router.post("/reset", response_class=HTMLResponse)
async def reset(request: Request, email: str = Form(""), csrf: str = Form("")) -> Response:
    """Only records the request: notify picks requests up and asks for a credential by RPC.

    The answer is the same whether or not the address is known (no account enumeration), and
    nothing is published here: CredentialsIssued appears when notify actually requests one.
    """
    if not csrf_ok(request, csrf):
        return _csrf_refused(request)
    if bad_field({"email": email}) is not None:
        t = TEXT[_lang(request)]
        error = t["bad_chars"].format(field=t["email"])
        return _page(request, "reset.html", status=400, error=error)
    if email.strip():
        rt = _rt(request)
        if await accounts.record_reset_request(rt.sessions, email, _ip(request)):
            for c, rid in await accounts.open_registrations(rt.sessions, email):
                body = json.dumps({"campaign_id": c, "respondent_id": rid}).encode()
                await rt.nc.publish(subjects.RPC_NOTIFY_RESET, body)  # notify e-mails it
    return _page(request, "message.html", message=TEXT[_lang(request)]["reset_done"])


# --- admin -------------------------------------------------------------------------------
@router.get("/admin/import", response_class=HTMLResponse)
async def import_form(request: Request) -> Response:
    p = await current_principal(request)
    if p is None:
        return RedirectResponse("/login", status_code=303)
    if p.role != "admin":
        raise HTTPException(403, "admin only")
    return _page(request, "import.html", principal=p)


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
    request: Request, campaign: str, file: UploadFile, admin: Principal
) -> tuple[int, dict, object | None]:
    """(status, report dict, report) shared by the JSON API and the HTML page."""
    if bad_field({"campaign": campaign}) is not None:
        t = TEXT[_lang(request)]
        return 422, {"detail": t["bad_chars"].format(field=t["campaign"])}, None
    content = await file.read(MAX_BYTES + 1)
    rt = _rt(request)
    try:
        report = await run_import(
            rt.js,
            rt.sessions,
            campaign,
            content,
            file.filename or "upload",
            wait_applied=lambda seq: wait_applied(rt, seq),
            correlation_id=f"import:{admin.subject}",
        )
    except UnknownCampaign:
        return 404, {"detail": f"unknown campaign {campaign}"}, None
    except ConcurrencyConflict as exc:
        return 409, {"detail": f"registry changed meanwhile, retry ({exc})"}, None
    log.info(
        "import into %s by %s: %d new, %d updated, %d problems",
        campaign,
        admin.subject,
        len(report.new),
        len(report.updated),
        len(report.problems),
    )
    return (200 if report.ok else 422), report.to_dict(), report


@router.post("/api/respondents/import")
async def import_respondents(
    request: Request,
    campaign: str = Form(...),
    file: UploadFile = File(...),
    csrf: str = Form(""),
    admin: Principal = Depends(require("admin")),
) -> Response:
    if not csrf_ok(request, csrf):
        return JSONResponse({"detail": TEXT["vi"]["csrf"]}, status_code=403)
    status, body, _ = await _import(request, campaign, file, admin)
    return JSONResponse(body, status_code=status)


@router.post("/admin/import", response_class=HTMLResponse)
async def import_page(
    request: Request,
    campaign: str = Form(...),
    file: UploadFile = File(...),
    csrf: str = Form(""),
    admin: Principal = Depends(require("admin")),
) -> Response:
    """The same import, answered as a readable report (problems by row and column)."""
    if not csrf_ok(request, csrf):
        return _csrf_refused(request)
    status, body, _ = await _import(request, campaign, file, admin)
    return _page(request, "import_report.html", status=status, report=body, principal=admin)


@router.get("/api/respondents")
async def list_respondents(
    request: Request,
    campaign: str,
    unit: str | None = None,
    _: Principal = Depends(require("admin")),
) -> dict[str, Any]:
    async with _rt(request).sessions() as s:
        rows = await projection.respondents(s, campaign, unit_code=unit)
    return {"campaign_id": campaign, "respondents": [public_respondent(r) for r in rows]}
