"""Dashboards (HTML, no JavaScript), exports (CSV, XLSX) and the admin's "Công bố" form.

What a reader sees depends on the publication stage (services.scoring.publication): while
the campaign runs only ballots received against quota; frozen results to admins and auditors,
marked not published; everything once an admin has published (docs/architecture.md, decision
16). Every figure comes rounded from services.scoring.figures.
"""

from __future__ import annotations

import csv
import hmac
import io
import secrets
from decimal import Decimal
from pathlib import Path

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import text

from contracts.campaign import Campaign, UnitKind
from parindex.web.auth import current_principal, require
from parindex.web.cookies import set_cookie
from parindex.web.fields import as_bytes as _b
from parindex.web.fields import bad_field
from parindex.web.i18n import LANG_COOKIE, language, templates, vi_date
from parindex.web.spreadsheet import neutral
from services.scoring.figures import (
    UnitFigures,
    all_unit_figures,
    count_table,
    csv_cell,
    deduction,
    number,
    question_table,
    result_table,
    unit_figures,
)
from services.scoring.method import Results, compute_results
from services.scoring.projection import load_campaign, load_tally
from services.scoring.publication import (
    ReleaseRefused,
    Stage,
    load_stage,
    may_see_scores,
    release,
)

router = APIRouter(tags=["dashboards"])
TEMPLATES = templates(Path(__file__).parent / "templates")
CSRF_COOKIE = "parindex_csrf"  # the double-submit cookie identity sets at login (one host)
KIND_NAMES = {
    UnitKind.department: ("Sở, ban, ngành tỉnh", "Provincial departments"),
    UnitKind.public_service_unit: ("Đơn vị sự nghiệp công lập tỉnh", "Public service units"),
    UnitKind.central_agency: (
        "Cơ quan Trung ương đặt tại tỉnh",
        "Central agencies in the province",
    ),
    UnitKind.district: ("UBND cấp huyện", "District people's committees"),
}
REFUSALS = {
    "results are not frozen yet": (
        "Chưa thể công bố: kết quả chỉ được chốt sau hạn chót khảo sát.",
        "Cannot publish: results are frozen only after the survey deadline.",
    ),
    "results are already published": (
        "Kết quả đã được công bố trước đó.",
        "The results have already been published.",
    ),
    "the digest does not match the frozen results": (
        "Mã kiểm tra không khớp với kết quả đã chốt.",
        "The digest does not match the frozen results.",
    ),
}


async def _load(request: Request, campaign: str) -> tuple[Campaign, Results, Stage]:
    async with request.app.state.rt.sessions() as session:
        camp = await load_campaign(session, campaign)
        if camp is None:
            raise HTTPException(404, f"unknown campaign {campaign}")
        tally = await load_tally(session, campaign)
        stage = await load_stage(session, campaign)
    return camp, compute_results(camp, tally), stage


def _csrf(request: Request) -> str:
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)


def _render(request: Request, template: str, status: int = 200, **ctx: object) -> HTMLResponse:
    lang = language(request)
    camp = ctx.get("camp")
    places = camp.rounding.places if isinstance(camp, Campaign) else 2
    csrf = _csrf(request)
    resp = TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "lang": lang,
            "csrf": csrf,
            "num": lambda v: number(v, places, lang),
            "ded": lambda v: deduction(v, places, lang),
            "day": vi_date,
            **ctx,
        },
        status_code=status,
    )
    if "lang" in request.query_params:
        set_cookie(request, resp, LANG_COOKIE, lang, max_age=365 * 86400)
    if request.cookies.get(CSRF_COOKIE) != csrf:
        set_cookie(request, resp, CSRF_COOKIE, csrf, httponly=True)
    return resp


def _groups(units: list[UnitFigures], ranked: bool) -> list[dict]:
    """Per unit kind; by rank when scores are shown, else by name (a rank is a score)."""
    groups = []
    for kind in UnitKind:
        members = [u for u in units if u.kind == kind.value]
        if members:
            members.sort(key=(lambda u: (u.rank, u.unit_code)) if ranked else (lambda u: u.name))
            groups.append({"kind": KIND_NAMES[kind], "rows": members})
    return groups


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard(request: Request, campaign: str | None = None) -> HTMLResponse:
    """Ranking per unit kind once visible; before that, ballots received against quota."""
    if campaign is None:
        async with request.app.state.rt.sessions() as session:
            rows = (
                await session.execute(
                    text(
                        "SELECT campaign_id, definition->>'name' FROM scoring_campaigns "
                        "ORDER BY campaign_id"
                    )
                )
            ).all()
        return _render(request, "campaigns.html", campaigns=rows)
    camp, results, stage = await _load(request, campaign)
    principal = await current_principal(request)
    show = may_see_scores(stage, principal)
    units = all_unit_figures(camp, results)
    admin = principal is not None and principal.role == "admin"
    return _render(
        request,
        "dashboard.html",
        camp=camp,
        stage=stage,
        show=show,
        staff=principal is not None and principal.role in ("admin", "auditor"),
        can_publish=stage.status == "frozen" and admin,
        groups=_groups(units, ranked=show),
    )


@router.get("/report", response_class=HTMLResponse)
async def report(request: Request, campaign: str) -> HTMLResponse:
    """The same tables laid out for printing."""
    return await dashboard(request, campaign)


@router.get("/dashboard/units/{unit_code}", response_class=HTMLResponse)
async def unit_page(request: Request, campaign: str, unit_code: str) -> HTMLResponse:
    camp, results, stage = await _load(request, campaign)
    try:
        unit = results.unit(unit_code)
    except (KeyError, StopIteration, ValueError):
        raise HTTPException(404, f"unit {unit_code} is not rated in {campaign}") from None
    show = may_see_scores(stage, await current_principal(request))
    form_results = {f.form_code: f for f in unit.forms}
    crit = {f.form_code: {c.code: c for c in camp.form(f.form_code).criteria} for f in unit.forms}
    return _render(
        request,
        "unit.html",
        camp=camp,
        stage=stage,
        show=show,
        u=unit_figures(camp, unit),
        criteria={code: r.criteria for code, r in form_results.items()} if show else {},
        crit=crit,
    )


@router.post("/publish")
async def publish(
    request: Request,
    campaign: str = Form(""),
    digest: str = Form(""),
    csrf: str = Form(""),
) -> Response:
    """An admin publishes the frozen results: ResultsReleased, once, for the frozen digest.

    The CSRF token is checked first, so a forged form is refused whoever's cookie rides along.
    """
    lang = language(request)
    cookie = request.cookies.get(CSRF_COOKIE)
    if not (cookie and csrf and hmac.compare_digest(_b(cookie), _b(csrf))):
        raise HTTPException(403, "invalid or missing CSRF token")
    principal = await require("admin")(request)
    field = bad_field({"campaign": campaign, "digest": digest})
    if field is not None:  # PostgreSQL would refuse a NUL: 400, not 500 (decision 17)
        raise HTTPException(400, f"«{field}»: ký tự không được phép / characters not allowed")
    camp, _results, stage = await _load(request, campaign)
    try:
        await release(request.app.state.rt.js, stage, campaign, digest, principal.subject)
    except ReleaseRefused as exc:
        vi, en = REFUSALS[str(exc)]
        return _render(
            request, "refused.html", status=409, camp=camp, message=en if lang == "en" else vi
        )
    return RedirectResponse(f"/dashboard?campaign={campaign}", status_code=303)


# --- exports -----------------------------------------------------------------------------
def _csv(rows: list[list[object]], filename: str) -> Response:
    buf = io.StringIO()
    csv.writer(buf).writerows([[csv_cell(v) for v in row] for row in rows])
    return Response(
        ("\ufeff" + buf.getvalue()).encode(),  # BOM: Excel opens UTF-8 Vietnamese correctly
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _xlsx(sheets: dict[str, list[list[object]]], filename: str) -> Response:
    """Figures are numeric cells with a number format, so Excel can sum and sort them."""
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    for title, rows in sheets.items():
        ws = wb.create_sheet(title)
        for row in rows:
            ws.append([float(v) if isinstance(v, Decimal) else neutral(v) for v in row])
            for cell, value in zip(ws[ws.max_row], row, strict=True):
                if isinstance(value, Decimal):
                    places = max(0, -int(value.as_tuple().exponent))
                    cell.number_format = "0." + "0" * places if places else "0"
    buf = io.BytesIO()
    wb.save(buf)
    return Response(
        buf.getvalue(),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def _export(request: Request, campaign: str) -> tuple[Campaign, Results, bool]:
    camp, results, stage = await _load(request, campaign)
    return camp, results, may_see_scores(stage, await current_principal(request))


@router.get("/export/results.csv")
async def export_results_csv(request: Request, campaign: str) -> Response:
    """Scores once visible to the caller; before that, ballots received against quota only."""
    camp, results, show = await _export(request, campaign)
    table = result_table(camp, results) if show else count_table(camp, results)
    return _csv(table, f"{campaign}-results.csv")


@router.get("/export/questions.csv")
async def export_questions_csv(request: Request, campaign: str) -> Response:
    camp, results, show = await _export(request, campaign)
    if not show:
        raise HTTPException(404, "results are not published")
    return _csv(question_table(camp, results), f"{campaign}-questions.csv")


@router.get("/export/results.xlsx")
async def export_results_xlsx(request: Request, campaign: str) -> Response:
    camp, results, show = await _export(request, campaign)
    if show:
        sheets = {"Kết quả": result_table(camp, results), "Câu hỏi": question_table(camp, results)}
    else:
        sheets = {"Số phiếu": count_table(camp, results)}
    return _xlsx(sheets, f"{campaign}-results.xlsx")
