"""The report as PDF, with fpdf2 (pure Python, maintained) and an embedded DejaVu font."""

from __future__ import annotations

import io

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace

from services.scoring.report.chart import chart_png
from services.scoring.report.content import Chart, Paragraph, Report, Table
from services.scoring.report.fonts import Fonts

BODY = 11


class _Doc(FPDF):
    report: Report

    def header(self) -> None:
        if self.report.draft:  # every page of a staff copy says it is not published
            self.set_font("dv", "B", 9)
            self.set_text_color(180, 0, 0)
            self.cell(0, 5, self.report.draft_mark, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            self.set_text_color(0, 0, 0)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("dv", "", 8)
        self.cell(0, 5, f"{self.page_no()}/{{nb}}", align="C")


def render_pdf(report: Report, fonts: Fonts) -> bytes:
    pdf = _Doc(format="A4")
    pdf.report = report
    pdf.set_margins(20, 15, 15)
    pdf.set_auto_page_break(True, 18)
    pdf.add_font("dv", "", str(fonts.regular))
    pdf.add_font("dv", "B", str(fonts.bold))
    pdf.add_font("mono", "", str(fonts.mono))
    pdf.set_title(report.title)
    pdf.alias_nb_pages()
    pdf.add_page()
    _head(pdf, report)
    for section in report.sections:
        pdf.ln(3)
        pdf.set_font("dv", "B", 12)
        pdf.multi_cell(0, 6, section.heading, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        for block in section.blocks:
            if isinstance(block, Paragraph):
                _paragraph(pdf, block)
            elif isinstance(block, Table):
                _table(pdf, block)
            elif isinstance(block, Chart):
                _chart(pdf, block, fonts)
    pdf.ln(3)
    pdf.set_font("mono", "", 9)
    pdf.multi_cell(0, 5, report.digest, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    _signature(pdf, report)
    return bytes(pdf.output())


def _head(pdf: FPDF, r: Report) -> None:
    left, right, y = 75.0, 100.0, pdf.get_y()
    pdf.set_font("dv", "", 10)
    pdf.multi_cell(left, 5, r.parent_agency, align="C", new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_font("dv", "B", 10)
    pdf.multi_cell(left, 5, r.agency, align="C", new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_font("dv", "", 10)
    pdf.multi_cell(left, 6, r.number_line, align="C", new_x=XPos.LEFT, new_y=YPos.NEXT)
    bottom = pdf.get_y()
    pdf.set_xy(pdf.l_margin + left, y)
    pdf.set_font("dv", "B", 10)
    pdf.multi_cell(right, 5, r.nation, align="C", new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.multi_cell(right, 5, r.motto, align="C", new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_font("dv", "", 10)
    pdf.multi_cell(right, 6, r.date_line, align="C", new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_xy(pdf.l_margin, max(bottom, pdf.get_y()) + 4)
    pdf.set_font("dv", "B", 14)
    pdf.multi_cell(0, 7, r.title, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("dv", "B", 11)
    pdf.multi_cell(0, 6, r.subtitle, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if r.draft:
        pdf.set_text_color(180, 0, 0)
        pdf.set_font("dv", "B", 12)
        pdf.multi_cell(0, 7, r.draft_mark, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_text_color(0, 0, 0)


def _paragraph(pdf: FPDF, p: Paragraph) -> None:
    pdf.set_font("dv", "B" if p.strong else "", BODY - (1 if p.quote else 0))
    if p.quote:
        pdf.set_x(pdf.l_margin + 8)
        pdf.multi_cell(pdf.epw - 16, 5.5, f"“{p.text}”", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    else:
        pdf.multi_cell(0, 5.5, p.text, align="J", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(1)


def _table(pdf: FPDF, t: Table) -> None:
    pdf.set_font("dv", "", 9)
    widths = t.widths or tuple(1.0 for _ in t.head)
    align = tuple("RIGHT" if i in t.numeric else "LEFT" for i in range(len(t.head)))
    bold = FontFace(emphasis="BOLD")
    with pdf.table(
        col_widths=widths,
        text_align=align,
        line_height=5,
        headings_style=FontFace(emphasis="BOLD", fill_color=(235, 235, 235)),
        padding=1,
    ) as table:
        table.row(t.head)  # the heading row, repeated on every page the table spans
        for i, values in enumerate(t.rows):
            table.row(values, style=bold if i in t.strong else None)
    pdf.ln(2)


def _chart(pdf: FPDF, chart: Chart, fonts: Fonts) -> None:
    png = chart_png(chart, fonts)
    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        w, h = img.size
    height = pdf.epw * h / w
    if pdf.get_y() + height > pdf.h - pdf.b_margin:
        pdf.add_page()
    pdf.image(io.BytesIO(png), x=pdf.l_margin, w=pdf.epw)
    pdf.ln(2)


def _signature(pdf: FPDF, r: Report) -> None:
    if pdf.get_y() + 45 > pdf.h - pdf.b_margin:
        pdf.add_page()
    pdf.ln(4)
    y = pdf.get_y()
    pdf.set_font("dv", "B", 9)
    pdf.multi_cell(80, 5, r.recipients_head, new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_font("dv", "", 9)
    for line in r.recipients:
        pdf.multi_cell(80, 5, "- " + line, new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_xy(pdf.l_margin + 85, y)
    pdf.set_font("dv", "B", 11)
    for line in (r.signer_title, r.signer_subtitle):
        if line:
            pdf.multi_cell(pdf.epw - 85, 6, line, align="C", new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.ln(20)
    pdf.set_x(pdf.l_margin + 85)
    if r.signer_name:
        pdf.multi_cell(pdf.epw - 85, 6, r.signer_name, align="C")
