"""Dashboards (HTML, no JavaScript), exports (CSV, XLSX) and the admin's "Công bố" form.

What a reader sees depends on the publication stage (services.scoring.publication): while
the campaign runs only ballots received against quota; frozen results to admins and auditors,
marked not published; everything once an admin has published (docs/architecture.md, decision
16). Every figure comes rounded from services.scoring.figures.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import text

from contracts.campaign import Campaign, UnitKind
from parindex.web import campaign_pick, scope
from parindex.web.csrf import form_csrf
from parindex.web.deps import Admin, PrincipalDep, RuntimeDep
from parindex.web.fields import bad_field
from parindex.web.i18n import VN, language, vi_date
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
from services.scoring.method import Results, compute_results, digest, result_rows
from services.scoring.projection import load_campaign, load_tally
from services.scoring.publication import (
    ReleaseRefused,
    Stage,
    load_stage,
    may_see_scores,
    release,
)
from services.scoring.report.chart import chart_png
from services.scoring.report.content import Chart, Report, Table, build_report
from services.scoring.report.docx import render_docx
from services.scoring.report.fonts import FontMissing, Fonts, find_fonts
from services.scoring.report.pdf import render_pdf

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
        staff = principal is not None and principal.role in campaign_pick.STAFF
        pick = campaign_pick.picked(request, principal) if staff else None  # decision 39
        if pick is None or pick not in {r[0] for r in rows}:
            return _render(request, "campaigns.html", campaigns=scope.visible(principal, rows))
        campaign = pick
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
    """The official report on screen, with its DOCX and PDF; before it may be seen, the
    dashboard's counts (docs/architecture.md, decisions 16 and 33)."""
    camp, results, stage = await _load(rt, campaign)
    if not may_see_scores(stage, principal):
        return await dashboard(request, rt, principal, campaign)
    built = _built_report(request, camp, results, stage)
    if isinstance(built, Response):
        return built
    rp, fonts = built
    blocks: dict[int, dict[str, Any]] = {}
    for sec in rp.sections:
        for b in sec.blocks:
            if isinstance(b, Chart):
                png = base64.b64encode(chart_png(b, fonts)).decode()
                blocks[id(b)] = {"kind": "chart", "title": b.title, "bars": b.bars, "png": png}
            elif isinstance(b, Table):
                blocks[id(b)] = {"kind": "table", **b.__dict__}
            else:
                blocks[id(b)] = {"kind": "p", **b.__dict__}
    view = rp.__dict__ | {
        "sections": [
            {"heading": sec.heading, "blocks": [blocks[id(b)] for b in sec.blocks]}
            for sec in rp.sections
        ]
    }
    return _render(request, "report.html", camp=camp, stage=stage, rp=view)


def _built_report(
    request: Request, camp: Campaign, results: Results, stage: Stage
) -> tuple[Report, Fonts] | Response:
    """The report of the frozen results, or the page that says why there is none.

    The figures are recomputed from the projection, so they are checked against the frozen
    digest first: a report whose numbers are not the frozen ones is refused, never printed.
    """
    if digest(result_rows(results)) != stage.digest:
        message = PAGES.t(request, "sc.report_refused")
        return _render(request, "refused.html", status=409, camp=camp, message=message)
    try:
        fonts = find_fonts()
    except FontMissing:
        message = PAGES.t(request, "sc.report_no_font")
        return _render(request, "refused.html", status=503, camp=camp, message=message)
    today = datetime.now(VN).date()
    return build_report(camp, results, stage, today, language(request)), fonts


async def _report_file(
    request: Request, rt: Runtime, principal: PrincipalDep, campaign: str, kind: str
) -> Response:
    """Staff may download the frozen report marked as a draft; the public once published."""
    camp, results, stage = await _load(rt, campaign)
    if not may_see_scores(stage, principal):
        raise HTTPException(404, "results are not published")
    built = _built_report(request, camp, results, stage)
    if isinstance(built, Response):
        return built
    rp, fonts = built
    # Off the event loop: a report of 40 units takes a CPU-bound moment to lay out.
    if kind == "pdf":
        body, media = await asyncio.to_thread(render_pdf, rp, fonts), "application/pdf"
    else:
        body = await asyncio.to_thread(render_docx, rp, fonts)
        media = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    return Response(
        body,
        media_type=media,
        headers={
            "Content-Disposition": f'attachment; filename="{rp.file_stem}.{kind}"',
            "Cache-Control": "no-store",  # a draft must not outlive its publication in a cache
        },
    )


@router.get("/export/report.pdf")
async def export_report_pdf(
    request: Request, rt: RuntimeDep, principal: PrincipalDep, campaign: str
) -> Response:
    return await _report_file(request, rt, principal, campaign, "pdf")


@router.get("/export/report.docx")
async def export_report_docx(
    request: Request, rt: RuntimeDep, principal: PrincipalDep, campaign: str
) -> Response:
    return await _report_file(request, rt, principal, campaign, "docx")


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
async def export_results_csv(
    request: Request, rt: RuntimeDep, principal: PrincipalDep, campaign: str
) -> Response:
    """Scores once visible to the caller; before that, ballots received against quota only.
    Headers in Vietnamese, English on the English switch (?lang=en)."""
    camp, results, show = await _export(rt, principal, campaign)
    lang = language(request)
    table = result_table(camp, results, lang) if show else count_table(camp, results, lang)
    return _csv(table, f"{campaign}-results.csv")


@router.get("/export/questions.csv")
async def export_questions_csv(
    request: Request, rt: RuntimeDep, principal: PrincipalDep, campaign: str
) -> Response:
    camp, results, show = await _export(rt, principal, campaign)
    if not show:
        raise HTTPException(404, "results are not published")
    return _csv(question_table(camp, results, language(request)), f"{campaign}-questions.csv")


@router.get("/export/results.xlsx")
async def export_results_xlsx(
    request: Request, rt: RuntimeDep, principal: PrincipalDep, campaign: str
) -> Response:
    camp, results, show = await _export(rt, principal, campaign)
    lang = language(request)

    def sheet(key: str) -> str:
        return PAGES.t(lang, f"sc.sheet.{key}")

    if show:
        sheets = {
            sheet("results"): result_table(camp, results, lang),
            sheet("questions"): question_table(camp, results, lang),
        }
    else:
        sheets = {sheet("counts"): count_table(camp, results, lang)}
    return _xlsx(sheets, f"{campaign}-results.xlsx")
