"""Dashboards (HTML, no JavaScript), exports (CSV, XLSX) and the admin's "Công bố" form.

What a reader sees depends on the publication stage (services.scoring.publication): while
the campaign runs only ballots received against quota; frozen results to admins and auditors,
marked not published; everything once an admin has published (docs/architecture.md, decision
16). Every figure comes rounded from services.scoring.figures.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import text

from contracts.campaign import Campaign, UnitKind
from parindex.web import scope
from parindex.web.csrf import form_csrf
from parindex.web.deps import Admin, PrincipalDep, RuntimeDep
from parindex.web.fields import bad_field
from parindex.web.i18n import language, vi_date
from parindex.web.pages import Pages
from parindex.web.service import Runtime
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
HERE = Path(__file__).parent
PAGES = Pages(HERE / "templates", HERE / "text")
REFUSALS = {  # ReleaseRefused's reason -> the catalog's text
    "results are not frozen yet": "sc.refused.not_frozen",
    "results are already published": "sc.refused.already",
    "the digest does not match the frozen results": "sc.refused.digest",
}


async def _load(rt: Runtime, campaign: str) -> tuple[Campaign, Results, Stage]:
    async with rt.sessions() as session:
        camp = await load_campaign(session, campaign)
        if camp is None:
            raise HTTPException(404, f"unknown campaign {campaign}")
        tally = await load_tally(session, campaign)
        stage = await load_stage(session, campaign)
    return camp, compute_results(camp, tally), stage


def _render(request: Request, template: str, status: int = 200, **ctx: Any) -> Response:
    lang = language(request)
    camp = ctx.get("camp")
    places = camp.rounding.places if isinstance(camp, Campaign) else 2
    return PAGES.render(
        request,
        template,
        status=status,
        num=lambda v: number(v, places, lang),
        ded=lambda v: deduction(v, places, lang),
        day=vi_date,
        **ctx,
    )


def _groups(units: list[UnitFigures], ranked: bool) -> list[dict]:
    """Per unit kind; by rank when scores are shown, else by name (a rank is a score)."""
    groups = []
    for kind in UnitKind:
        members = [u for u in units if u.kind == kind.value]
        if members:
            members.sort(key=(lambda u: (u.rank, u.unit_code)) if ranked else (lambda u: u.name))
            groups.append({"kind": f"sc.kind.{kind.value}", "rows": members})
    return groups


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard(
    request: Request, rt: RuntimeDep, principal: PrincipalDep, campaign: str | None = None
) -> Response:
    """Ranking per unit kind once visible; before that, ballots received against quota."""
    if campaign is None:
        async with rt.sessions() as session:
            rows = (
                await session.execute(
                    text(
                        "SELECT campaign_id, definition->>'name' FROM scoring_campaigns "
                        "ORDER BY campaign_id"
                    )
                )
            ).all()
        return _render(request, "campaigns.html", campaigns=scope.visible(principal, rows))
    camp, results, stage = await _load(rt, campaign)
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
async def report(
    request: Request, rt: RuntimeDep, principal: PrincipalDep, campaign: str
) -> Response:
    """The same tables laid out for printing."""
    return await dashboard(request, rt, principal, campaign)


@router.get("/dashboard/units/{unit_code}", response_class=HTMLResponse)
async def unit_page(
    request: Request, rt: RuntimeDep, principal: PrincipalDep, campaign: str, unit_code: str
) -> Response:
    camp, results, stage = await _load(rt, campaign)
    try:
        unit = results.unit(unit_code)
    except (KeyError, StopIteration, ValueError):
        raise HTTPException(404, f"unit {unit_code} is not rated in {campaign}") from None
    show = may_see_scores(stage, principal)
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


@router.post("/publish", dependencies=[Depends(form_csrf)])
async def publish(
    request: Request,
    rt: RuntimeDep,
    principal: Admin,
    campaign: str = Form(""),
    digest: str = Form(""),
) -> Response:
    """An admin publishes the frozen results: ResultsReleased, once, for the frozen digest.

    The CSRF token is checked first (a dependency), so a forged form is refused whoever's
    cookie rides along.
    """
    field = bad_field({"campaign": campaign, "digest": digest})
    if field is not None:  # PostgreSQL would refuse a NUL: 400, not 500 (decision 17)
        raise HTTPException(400, f"«{field}»: characters not allowed")
    camp, _results, stage = await _load(rt, campaign)
    try:
        await release(rt.js, stage, campaign, digest, principal.subject)
    except ReleaseRefused as exc:
        message = PAGES.t(request, REFUSALS[str(exc)])
        return _render(request, "refused.html", status=409, camp=camp, message=message)
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


async def _export(
    rt: Runtime, principal: PrincipalDep, campaign: str
) -> tuple[Campaign, Results, bool]:
    camp, results, stage = await _load(rt, campaign)
    return camp, results, may_see_scores(stage, principal)


@router.get("/export/results.csv")
async def export_results_csv(rt: RuntimeDep, principal: PrincipalDep, campaign: str) -> Response:
    """Scores once visible to the caller; before that, ballots received against quota only."""
    camp, results, show = await _export(rt, principal, campaign)
    table = result_table(camp, results) if show else count_table(camp, results)
    return _csv(table, f"{campaign}-results.csv")


@router.get("/export/questions.csv")
async def export_questions_csv(rt: RuntimeDep, principal: PrincipalDep, campaign: str) -> Response:
    camp, results, show = await _export(rt, principal, campaign)
    if not show:
        raise HTTPException(404, "results are not published")
    return _csv(question_table(camp, results), f"{campaign}-questions.csv")


@router.get("/export/results.xlsx")
async def export_results_xlsx(rt: RuntimeDep, principal: PrincipalDep, campaign: str) -> Response:
    camp, results, show = await _export(rt, principal, campaign)
    if show:
        sheets = {"Kết quả": result_table(camp, results), "Câu hỏi": question_table(camp, results)}
    else:
        sheets = {"Số phiếu": count_table(camp, results)}
    return _xlsx(sheets, f"{campaign}-results.xlsx")
