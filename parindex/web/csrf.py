"""Cross-site request forgery, refused once for every service (docs/architecture.md, decision 25).

Form posts carry a token tied to the caller's session: HMAC(CSRF key, session cookie), or, before
login, HMAC(CSRF key, an anonymous nonce cookie). A token read from another browser or session
is refused, and so is a token an attacker planted together with a cookie of its choosing on a
sibling subdomain, since it cannot compute the HMAC for the victim's session. The token rides in
the hidden field `csrf` or the `X-CSRF-Token` header.

JSON writes need a header a cross-site form cannot send (`X-Requested-With: parindex`, or a valid
`X-CSRF-Token`): a page elsewhere would need a CORS preflight, which no service grants.

The key is `PARINDEX_CSRF_KEY` (compose) or `<state-dir>/secrets/csrf_key`, created once and
shared by every service started by `parindex up`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute

from parindex.settings import Settings
from parindex.web.auth import COOKIE
from parindex.web.fields import as_bytes
from parindex.web.refusal import Refused

FIELD = "csrf"
HEADER = "x-csrf-token"
NONCE_COOKIE = "parindex_csrf"  # the anonymous nonce: login and reset pages, before a session
JSON_HEADER = "x-requested-with"
JSON_HEADER_VALUE = "parindex"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def load_key(settings: Settings) -> bytes:
    """The environment's key, or the state directory's (made once, race-free across services)."""
    if settings.csrf_key:
        return settings.csrf_key.encode()
    path = Path(settings.state_dir) / "secrets" / "csrf_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".csrf_key.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32))
        try:
            os.link(tmp, path)  # atomic: the first service to get here wins, others read it
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip().encode()


def key_of(request: Request) -> bytes:
    key: bytes | None = getattr(request.app.state, "csrf_key", None)
    if key is None:
        key = request.app.state.csrf_key = load_key(request.app.state.settings)
    return key


def token_for(key: bytes, *, session: str | None = None, nonce: str | None = None) -> str:
    """The form token of a session (or, without one, of an anonymous nonce)."""
    binding = f"s:{session}" if session else f"a:{nonce or ''}"
    mac = hmac.new(key, binding.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def form_token(request: Request) -> str:
    """The token for the page being drawn; a new anonymous nonce is set by the page (pages.py)."""
    session = request.cookies.get(COOKIE)
    nonce = request.cookies.get(NONCE_COOKIE)
    if not session and not nonce:
        nonce = getattr(request.state, "new_csrf_nonce", None) or secrets.token_urlsafe(32)
        request.state.new_csrf_nonce = nonce
    return token_for(key_of(request), session=session, nonce=nonce)


def valid(request: Request, submitted: str | None) -> bool:
    """With a session cookie only the session's token counts, never a nonce's."""
    session = request.cookies.get(COOKIE)
    nonce = request.cookies.get(NONCE_COOKIE)
    if not submitted or not (session or nonce):
        return False
    expected = token_for(key_of(request), session=session, nonce=nonce)
    return hmac.compare_digest(expected.encode(), as_bytes(submitted))  # non-ASCII: no 500


async def form_csrf(request: Request) -> None:
    """Dependency of every form post: the field `csrf` or the X-CSRF-Token header."""
    if valid(request, request.headers.get(HEADER)):
        return
    submitted = None
    if request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(FIELD)
        submitted = value if isinstance(value, str) else None
    if not valid(request, submitted):
        raise Refused(403, "invalid or missing CSRF token", key="err.csrf")


async def json_csrf(request: Request) -> None:
    """Dependency of every JSON write: a header no cross-site form can send."""
    if request.headers.get(JSON_HEADER, "").lower() == JSON_HEADER_VALUE:
        return
    if valid(request, request.headers.get(HEADER)):
        return
    raise Refused(
        403,
        "state-changing API calls need the header 'X-Requested-With: parindex' "
        "(or the session's X-CSRF-Token)",
        key="err.csrf",
    )


# As route parameters after the role's, so an anonymous caller is told 401 before 403.
FormCsrf = Annotated[None, Depends(form_csrf)]
JsonCsrf = Annotated[None, Depends(json_csrf)]


def unprotected_writes(app: FastAPI) -> list[str]:
    """Routes that change state without either dependency: create_app refuses to start."""
    guards = {form_csrf, json_csrf}

    def guarded(dependant: object) -> bool:
        for dep in getattr(dependant, "dependencies", []):
            if getattr(dep, "call", None) in guards or guarded(dep):
                return True
        return False

    out = []
    for route in routes(app):
        methods = set(getattr(route, "methods", None) or ())
        dependant = getattr(route, "dependant", None)
        if methods & UNSAFE and dependant is not None and not guarded(dependant):
            out.append(f"{sorted(methods)} {getattr(route, 'path', '?')}")
    return out


def routes(app: FastAPI) -> list[object]:
    """app.routes with included routers expanded (FastAPI includes them lazily)."""
    out: list[object] = []
    for route in app.routes:
        if hasattr(route, "effective_route_contexts"):
            out += list(route.effective_route_contexts())
        elif isinstance(route, APIRoute):
            out.append(route)
    return out
