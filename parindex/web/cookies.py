"""Every cookie any service sets goes through here, so none forgets `Secure`.

docs/architecture.md, decision 22.
"""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response


def set_cookie(
    request: Request,
    response: Response,
    key: str,
    value: str,
    *,
    max_age: int | None = None,
    httponly: bool = False,
) -> None:
    """SameSite=Lax always; Secure when PARINDEX_COOKIE_SECURE=1."""
    response.set_cookie(
        key,
        value,
        max_age=max_age,
        httponly=httponly,
        samesite="lax",
        secure=request.app.state.settings.cookie_secure,
    )
