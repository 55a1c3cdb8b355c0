"""Admin page: what was sent, queued and failed per unit and wave, and a resend button.

Drawn through the shared web kit (docs/architecture.md, decision 25).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from parindex.web import campaign_pick, scope
from parindex.web.csrf import FormCsrf
from parindex.web.deps import Admin, RuntimeDep
from parindex.web.pages import Pages
from services.notify.api import ResendRequest, queue_resend_or_refuse
from services.notify.deliveries import delivery_counts
from services.notify.purposes import purpose_label
from services.notify.storage import queries

router = APIRouter(tags=["deliveries"])
HERE = Path(__file__).parent
PAGES = Pages(HERE / "web_templates", HERE / "text")


@router.get("/deliveries", response_class=HTMLResponse)
async def deliveries_page(
    request: Request, rt: RuntimeDep, admin: Admin, campaign: str | None = None
) -> Response:
    campaign = campaign or campaign_pick.picked(request, admin)  # the bar's pick (decision 39)
    if campaign is None:  # the log not read yet: the newest campaign notify knows
        async with rt.sessions() as s:
            ids = await queries.campaign_ids(s)
        shown = scope.visible(admin, ids)
        campaign = shown[0] if shown else None
    data = await delivery_counts(rt.sessions, campaign) if campaign is not None else None
    rows: dict[tuple[str, str], dict[str, int]] = {}
    for c in data["counts"] if data else []:  # one row per unit and kind of letter, in words
        key, values = purpose_label(c["purpose"])
        bucket = rows.setdefault((c["unit_code"] or "", PAGES.t(request, key, **values)), {})
        for status, n in c["by_status"].items():
            bucket[status] = bucket.get(status, 0) + n
    failed = []
    for f in data["failed"] if data else []:
        key, values = purpose_label(f["purpose"])
        failed.append(dict(f, purpose_text=PAGES.t(request, key, **values)))
    return PAGES.render(
        request, "deliveries.html", data=data, campaign=campaign, rows=rows, failed=failed
    )


@router.post("/deliveries/resend")
async def resend_form(
    rt: RuntimeDep,
    _: Admin,
    __: FormCsrf,
    campaign_id: str = Form(...),
    respondent_id: str = Form(...),
) -> Response:
    try:
        body = ResendRequest(campaign_id=campaign_id, respondent_id=respondent_id)
    except ValidationError as exc:  # a control character, say: 422, not 500 (decision 17)
        raise HTTPException(422, "invalid campaign or respondent id") from exc
    await queue_resend_or_refuse(rt, body)
    return RedirectResponse(f"/deliveries?campaign={campaign_id}", status_code=303)
