"""The report as DOCX, with python-docx: Word is where officials edit and sign it."""

from __future__ import annotations

import io

from docx import Document
from docx.enum.section import WD_ORIENT
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.shared import Cm, Pt, RGBColor

from services.scoring.report.chart import chart_png
from services.scoring.report.content import Chart, Paragraph, Report, Table
from services.scoring.report.fonts import Fonts

FONT = "Times New Roman"  # the font of Vietnamese administrative documents
RED = RGBColor(0xB4, 0, 0)


def render_docx(report: Report, fonts: Fonts) -> bytes:
    doc = Document()
    style = doc.styles["Normal"]
    style.font.name = FONT
    style.font.size = Pt(13)
    section = doc.sections[0]
    section.orientation = WD_ORIENT.PORTRAIT
    section.page_width, section.page_height = Cm(21), Cm(29.7)
    section.left_margin, section.right_margin = Cm(3), Cm(2)
    section.top_margin, section.bottom_margin = Cm(2), Cm(2)
    if report.draft:
        mark = section.header.paragraphs[0]
        mark.alignment = WD_ALIGN_PARAGRAPH.CENTER
        run = mark.add_run(report.draft_mark)
        run.bold, run.font.color.rgb = True, RED
    _head(doc, report)
    for sec in report.sections:
        heading = doc.add_paragraph()
        run = heading.add_run(sec.heading)
        run.bold = True
        for block in sec.blocks:
            if isinstance(block, Paragraph):
                p = doc.add_paragraph()
                p.alignment = WD_ALIGN_PARAGRAPH.JUSTIFY
                r = p.add_run(f"“{block.text}”" if block.quote else block.text)
                r.italic, r.bold = block.quote, block.strong
                if block.quote:
                    p.paragraph_format.left_indent = Cm(1)
            elif isinstance(block, Table):
                _table(doc, block)
            elif isinstance(block, Chart):
                doc.add_picture(io.BytesIO(chart_png(block, fonts)), width=Cm(16))
    digest = doc.add_paragraph()
    digest.alignment = WD_ALIGN_PARAGRAPH.CENTER
    run = digest.add_run(report.digest)
    run.font.name, run.font.size = "Courier New", Pt(9)
    _signature(doc, report)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def _cell_text(cell, text: str, *, bold: bool = False, align=None, size: float = 12) -> None:
    p = cell.paragraphs[0]
    if align is not None:
        p.alignment = align
    run = p.add_run(text)
    run.bold = bold
    run.font.size = Pt(size)


def _head(doc, r: Report) -> None:
    grid = doc.add_table(rows=1, cols=2)
    left, right = grid.rows[0].cells
    left.width, right.width = Cm(6.5), Cm(9.5)
    centre = WD_ALIGN_PARAGRAPH.CENTER
    _cell_text(left, r.parent_agency, align=centre)
    p = left.add_paragraph()
    p.alignment = centre
    p.add_run(r.agency).bold = True
    p = left.add_paragraph()
    p.alignment = centre
    p.add_run(r.number_line)
    _cell_text(right, r.nation, bold=True, align=centre)
    p = right.add_paragraph()
    p.alignment = centre
    p.add_run(r.motto).bold = True
    p = right.add_paragraph()
    p.alignment = centre
    p.add_run(r.date_line).italic = True
    for text, size in ((r.title, 15), (r.subtitle, 13)):
        p = doc.add_paragraph()
        p.alignment = centre
        run = p.add_run(text)
        run.bold, run.font.size = True, Pt(size)
    if r.draft:
        p = doc.add_paragraph()
        p.alignment = centre
        run = p.add_run(r.draft_mark)
        run.bold, run.font.color.rgb = True, RED


def _table(doc, t: Table) -> None:
    table = doc.add_table(rows=1, cols=len(t.head))
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    for cell, text in zip(table.rows[0].cells, t.head, strict=True):
        _cell_text(cell, text, bold=True, align=WD_ALIGN_PARAGRAPH.CENTER, size=11)
    for i, values in enumerate(t.rows):
        cells = table.add_row().cells
        for j, (cell, text) in enumerate(zip(cells, values, strict=True)):
            align = WD_ALIGN_PARAGRAPH.RIGHT if j in t.numeric else None
            _cell_text(cell, text, bold=i in t.strong, align=align, size=11)
    doc.add_paragraph()


def _signature(doc, r: Report) -> None:
    grid = doc.add_table(rows=1, cols=2)
    left, right = grid.rows[0].cells
    p = left.paragraphs[0]
    run = p.add_run(r.recipients_head)
    run.bold, run.italic, run.font.size = True, True, Pt(12)
    for line in r.recipients:
        left.add_paragraph().add_run("- " + line).font.size = Pt(11)
    centre = WD_ALIGN_PARAGRAPH.CENTER
    _cell_text(right, r.signer_title, bold=True, align=centre, size=13)
    for line in (r.signer_subtitle, "", "", "", r.signer_name):
        p = right.add_paragraph()
        p.alignment = centre
        p.add_run(line).bold = True
