"""A staff account tied to one campaign sees and changes that campaign only.

`Principal.campaign_id` set on an admin, auditor or focal point means "this campaign only"
(`parindex users add --campaign`). Every service router carries `campaign_scope`, which reads the
campaign a request names — path, query, form or JSON body, under `campaign` or `campaign_id` — and
answers 403 when it is another. Routes that list campaigns keep only the scoped one
(`visible`), and a route whose body names a campaign otherwise (a campaign definition's `id`)
calls `check` itself (docs/architecture.md, decision 25).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TypeVar

from fastapi import Request

from parindex.web.auth import COOKIE, Principal
from parindex.web.deps import principal
from parindex.web.refusal import Refused

SCOPED_ROLES = ("admin", "auditor", "focal_point")
NAMES = ("campaign", "campaign_id")
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
T = TypeVar("T")


def scoped_to(p: Principal | None) -> str | None:
    """The one campaign this principal may act on, or None for "every campaign"."""
    if p is not None and p.role in SCOPED_ROLES and p.campaign_id:
        return p.campaign_id
    return None


def check(p: Principal | None, campaign: str | None) -> None:
    only = scoped_to(p)
    if only is not None and campaign is not None and campaign != only:
        raise Refused(403, "this account is limited to another campaign", key="err.scope")


def visible(p: Principal | None, campaigns: Iterable[T], key: str | None = None) -> list[T]:
    """The campaigns (ids, or rows whose first column / `key` attribute is the id) p may see."""
    only = scoped_to(p)
    rows = list(campaigns)
    if only is None:
        return rows

    def cid(row: T) -> object:
        if isinstance(row, str):
            return row
        return getattr(row, key) if key else row[0]  # type: ignore[index]  # a result row

    return [r for r in rows if cid(r) == only]


async def named_campaigns(request: Request) -> set[str]:
    named: set[str] = set()
    for name in NAMES:
        value = request.path_params.get(name)
        if isinstance(value, str):
            named.add(value)
        named.update(request.query_params.getlist(name))
    kind = request.headers.get("content-type", "")
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        if kind.startswith(FORM_TYPES):
            form = await request.form()
            for name in NAMES:
                named.update(v for v in form.getlist(name) if isinstance(v, str))
        else:
            # Any other body is read as JSON whatever its Content-Type says: FastAPI parses a
            # body without one as JSON, and a route may call request.json() itself.
            try:
                body = json.loads(await request.body() or b"null")
            except (ValueError, UnicodeDecodeError, RecursionError):
                body = None  # not JSON: the route refuses it or reads no campaign from it
            if isinstance(body, dict):
                named.update(body[n] for n in NAMES if isinstance(body.get(n), str))
    return named


async def campaign_scope(request: Request) -> None:
    """Router dependency of every service route: 403 for a campaign outside the caller's scope."""
    if COOKIE not in request.cookies:
        return  # anonymous: no scope to enforce, and no token to verify
    p = await principal(request)  # verified once per request; the route reads it too
    if scoped_to(p) is None:
        return  # a respondent or unscoped staff: no need to parse a ballot's body twice
    for campaign in await named_campaigns(request):
        check(p, campaign)
