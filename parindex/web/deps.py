"""Typed FastAPI dependencies every route uses (docs/architecture.md, decision 25).

`RuntimeDep` instead of `request.app.state.rt`, `PrincipalDep` for the caller (verified once per
request and kept on request.state), `SessionDep` for a read session of the service's database,
and `Staff`/`Admin`/`Respondent` for the roles a route needs (401 anonymous, 403 wrong role).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from parindex.web.auth import Principal, current_principal
from parindex.web.refusal import Refused
from parindex.web.service import Runtime


def runtime(request: Request) -> Runtime:
    return request.app.state.rt


async def _runtime(request: Request) -> Runtime:
    """Async, so FastAPI does not hop to a worker thread for it on every request."""
    return runtime(request)


RuntimeDep = Annotated[Runtime, Depends(_runtime)]


async def principal(request: Request) -> Principal | None:
    """The session's principal or None; verified once per request."""
    if not hasattr(request.state, "principal"):
        request.state.principal = await current_principal(request)
    return request.state.principal


PrincipalDep = Annotated[Principal | None, Depends(principal)]


async def db_session(rt: RuntimeDep) -> AsyncIterator[AsyncSession]:
    async with rt.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(db_session)]


def require(*roles: str) -> Callable[[Request], Awaitable[Principal]]:
    """The caller's principal: 401 if anonymous (a page sends it to the login), 403 wrong role."""

    async def dependency(request: Request) -> Principal:
        p = await principal(request)
        if p is None:
            raise Refused(401, "login required", key="err.401")
        if roles and p.role not in roles:
            raise Refused(403, "forbidden for role " + p.role, key="err.403")
        return p

    return dependency


Admin = Annotated[Principal, Depends(require("admin"))]
Respondent = Annotated[Principal, Depends(require("respondent"))]
Progress = Annotated[Principal, Depends(require("admin", "auditor", "focal_point"))]
