"""Refusals and failures as a person or a program expects them (docs/architecture.md, 25).

A page request (not under /api/, from a client that does not ask for JSON only) gets a page in
the user's language with the shared layout; an anonymous one that needs a login is sent to
identity's login page with `next`. API and JSON clients get `{"detail": ...}` in English. Nobody
gets a traceback or a raw code.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from parindex.web.pages import Pages, to_login
from parindex.web.refusal import Refused

_pages: Pages | None = None
KNOWN = frozenset({400, 401, 403, 404, 405, 409, 413, 422, 429, 500, 503})


def pages() -> Pages:
    global _pages
    if _pages is None:
        _pages = Pages()
    return _pages


def wants_html(request: Request) -> bool:
    path = request.url.path
    if path == "/api" or path.startswith("/api/"):
        return False
    accept = request.headers.get("accept", "")
    return not ("application/json" in accept and "text/html" not in accept)


def error_page(
    request: Request, status: int, key: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    key = key or (f"err.{status}" if status in KNOWN else "err.other")
    return pages().render(
        request,
        "error.html",
        status=status,
        headers=headers,
        with_form=False,
        status_key=key,
        code=status,
    )


def answer(
    request: Request,
    status: int,
    detail: object,
    key: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The page or the JSON for one refusal."""
    headers = dict(headers) if headers else None
    if wants_html(request):
        return error_page(request, status, key, headers)
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def refused(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 401 and wants_html(request):
            return to_login(request)
        key = exc.key if isinstance(exc, Refused) else None
        return answer(request, exc.status_code, exc.detail, key, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        # Never echo the raw input back: it may be undecodable bytes (or someone's answers).
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return answer(request, 422, errors)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> Response:
        # Starlette logs the traceback after this answer; the person sees none of it.
        return answer(request, 500, "internal error")
