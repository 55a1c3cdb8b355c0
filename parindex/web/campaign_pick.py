"""Which campaign a staff page shows: the one picked in the bar, remembered in a cookie.

A staff account tied to one campaign always gets that one (decision 25). Otherwise the page's
`?campaign=` (a link or the bar's picker), then the remembered choice, then the most recently
defined campaign. Campaigns come from the service's `CampaignWatch` (the log), so every service
offers the same list and names the same stage (docs/architecture.md, decision 39).
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from contracts.lifecycle import Stage
from parindex.bus.campaign_watch import CampaignWatch
from parindex.web import scope
from parindex.web.auth import Principal
from parindex.web.cookies import set_cookie

COOKIE = "parindex_campaign"
STAFF = ("admin", "auditor", "focal_point")


def watch(request: Request) -> CampaignWatch | None:
    return getattr(request.app.state, "campaign_watch", None)


def choices(request: Request, p: Principal | None) -> list[str]:
    """The campaigns this person may pick, newest first."""
    w = watch(request)
    return scope.visible(p, w.campaigns()) if w is not None else []


def picked(request: Request, p: Principal | None) -> str | None:
    """The campaign the page shows for `p` (None: no campaign on the log yet)."""
    only = scope.scoped_to(p)
    if only is not None:
        return only
    known = choices(request, p)
    for wanted in (request.query_params.get("campaign"), request.cookies.get(COOKIE)):
        if wanted and wanted in known:
            return wanted
    return known[0] if known else None


def stage(request: Request, campaign: str | None) -> Stage | None:
    """None for a campaign the log does not hold (a mistyped `?campaign=`): no stage to say."""
    w = watch(request)
    if w is None or not campaign or campaign not in w.facts:
        return None
    return w.stage(campaign)


def remember(request: Request, response: Response) -> None:
    """Keep a `?campaign=` an unscoped staff member picked for the next pages."""
    p = getattr(request.state, "principal", None)
    wanted = request.query_params.get("campaign")
    if p is None or p.role not in STAFF or scope.scoped_to(p) is not None or not wanted:
        return
    if wanted in choices(request, p) and wanted != request.cookies.get(COOKIE):
        set_cookie(request, response, COOKIE, wanted, max_age=365 * 86400, httponly=True)
