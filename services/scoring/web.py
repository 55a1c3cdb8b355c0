"""Dashboards (HTML, no JavaScript) and exports (CSV, XLSX) of the scoring projections."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import text

from contracts.campaign import Campaign, UnitKind
from parindex.web.i18n import LANG_COOKIE, language, templates
from services.scoring.method import Results, compute_results
from services.scoring.projection import load_campaign, load_tally

router = APIRouter(tags=["dashboards"])
TEMPLATES = templates(Path(__file__).parent / "templates")
KIND_NAMES = {
    UnitKind.department: ("Sở, ban, ngành tỉnh", "Provincial departments"),
    UnitKind.public_service_unit: ("Đơn vị sự nghiệp công lập tỉnh", "Public service units"),
    UnitKind.central_agency: (
        "Cơ quan Trung ương đặt tại tỉnh",
        "Central agencies in the province",
    ),
    UnitKind.district: ("UBND cấp huyện", "District people's committees"),
}


async def _load(request: Request, campaign: str) -> tuple[Campaign, Results]:
    async with request.app.state.rt.sessions() as session:
        camp = await load_campaign(session, campaign)
        if camp is None:
            raise HTTPException(404, f"unknown campaign {campaign}")
        tally = await load_tally(session, campaign)
    return camp, compute_results(camp, tally)


def _render(request: Request, template: str, **ctx: object) -> HTMLResponse:
    lang = language(request)
    resp = TEMPLATES.TemplateResponse(request, template, {"lang": lang, **ctx})
    if "lang" in request.query_params:
        resp.set_cookie(LANG_COOKIE, lang, samesite="lax", max_age=365 * 86400)
    return resp


def _max_total(camp: Campaign, unit_code: str, results: Results) -> Decimal:
    unit = results.unit(unit_code)
    return sum((camp.form(f.form_code).max_points for f in unit.forms), Decimal(0)) or Decimal(1)


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard(request: Request, campaign: str | None = None) -> HTMLResponse:
    """Ranking per unit kind, received against quota, the quota penalty shown explicitly."""
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
    camp, results = await _load(request, campaign)
    groups = []
    for kind in UnitKind:
        units = sorted(
            (u for u in results.units if u.kind == kind), key=lambda u: (u.rank or 0, u.unit_code)
        )
        if units:
            rows = []
            for u in units:
                maxp = _max_total(camp, u.unit_code, results)
                rows.append(
                    {
                        "u": u,
                        "name": camp.unit(u.unit_code).name,
                        "pct": float(u.total_rounded / maxp * 100) if maxp else 0,
                        "max": maxp,
                        "received": sum(f.received for f in u.forms),
                        "quota": sum(f.quota or 0 for f in u.forms),
                        "penalty": sum((f.penalty_rounded for f in u.forms), Decimal(0)),
                    }
                )
            groups.append({"kind": KIND_NAMES[kind], "rows": rows})
    return _render(request, "dashboard.html", camp=camp, groups=groups, printable=False)


@router.get("/report", response_class=HTMLResponse)
async def report(request: Request, campaign: str) -> HTMLResponse:
    """The same tables laid out for printing."""
    response = await dashboard(request, campaign)
    return response


@router.get("/dashboard/units/{unit_code}", response_class=HTMLResponse)
async def unit_page(request: Request, campaign: str, unit_code: str) -> HTMLResponse:
    camp, results = await _load(request, campaign)
    try:
        unit = results.unit(unit_code)
    except (KeyError, StopIteration, ValueError):
        raise HTTPException(404, f"unit {unit_code} is not rated in {campaign}") from None
    forms = []
    for f in unit.forms:
        form = camp.form(f.form_code)
        crit_max = {c.code: c.max_points for c in form.criteria}
        crit_name = {c.code: c for c in form.criteria}
        forms.append({"f": f, "form": form, "crit_max": crit_max, "crit": crit_name})
    return _render(
        request, "unit.html", camp=camp, unit=unit, name=camp.unit(unit_code).name, forms=forms
    )


def _result_table(camp: Campaign, results: Results) -> list[list[object]]:
    head: list[object] = [
        "unit_code", "unit_name", "unit_kind", "form_code", "received", "quota",
        "raw", "penalty", "adjusted", "rank",
    ]  # fmt: skip
    rows: list[list[object]] = [head]
    for u in sorted(results.units, key=lambda u: u.unit_code):
        name = camp.unit(u.unit_code).name
        for f in u.forms:
            rows.append(
                [u.unit_code, name, u.kind.value, f.form_code, f.received, f.quota,
                 str(f.raw_rounded), str(f.penalty_rounded), str(f.adjusted_rounded), ""]
            )  # fmt: skip
        rows.append(
            [u.unit_code, name, u.kind.value, "TOTAL", sum(f.received for f in u.forms), "",
             str(u.raw_rounded), "", str(u.total_rounded), u.rank]
        )  # fmt: skip
    return rows


def _question_table(camp: Campaign, results: Results) -> list[list[object]]:
    """Per-question statistics; groups under the minimum reporting size are suppressed."""
    rows: list[list[object]] = [
        ["unit_code", "form_code", "criterion", "question_id", "answered", "dont_know",
         "mean_weight", "score"]
    ]  # fmt: skip
    for u in sorted(results.units, key=lambda u: u.unit_code):
        for f in u.forms:
            for c in f.criteria:
                for q in c.questions:
                    small = q.answered_count + q.dont_know_count < camp.min_report_size
                    rows.append(
                        [u.unit_code, f.form_code, c.code, q.question_id,
                         "<" + str(camp.min_report_size) if small else q.answered_count,
                         "" if small else q.dont_know_count,
                         "" if small or q.mean_weight is None else f"{float(q.mean_weight):.4f}",
                         str(q.score_rounded)]
                    )  # fmt: skip
    return rows


def _csv(rows: list[list[object]], filename: str) -> Response:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return Response(
        ("\ufeff" + buf.getvalue()).encode(),  # BOM: Excel opens UTF-8 Vietnamese correctly
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _xlsx(sheets: dict[str, list[list[object]]], filename: str) -> Response:
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    for title, rows in sheets.items():
        ws = wb.create_sheet(title)
        for row in rows:
            ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return Response(
        buf.getvalue(),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/export/results.csv")
async def export_results_csv(request: Request, campaign: str) -> Response:
    camp, results = await _load(request, campaign)
    return _csv(_result_table(camp, results), f"{campaign}-results.csv")


@router.get("/export/questions.csv")
async def export_questions_csv(request: Request, campaign: str) -> Response:
    camp, results = await _load(request, campaign)
    return _csv(_question_table(camp, results), f"{campaign}-questions.csv")


@router.get("/export/results.xlsx")
async def export_results_xlsx(request: Request, campaign: str) -> Response:
    camp, results = await _load(request, campaign)
    sheets = {"Kết quả": _result_table(camp, results), "Câu hỏi": _question_table(camp, results)}
    return _xlsx(sheets, f"{campaign}-results.xlsx")
