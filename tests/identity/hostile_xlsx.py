"""Workbooks written part by part, for the import limits: huge but small, slow, far-reaching.

openpyxl cannot write a 1.3-million-cell sheet quickly or a lying zip at all, so these write
the five XML parts of a minimal .xlsx directly (inline strings, no shared-strings table).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from xml.sax.saxutils import escape

from services.identity.importer_read import column_letter

CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    'relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.spreadsheetml.worksheet+xml"/>'
    "</Types>"
)
RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>'
)
WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="DS" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>'
)
SHEET_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
)
SHEET_TAIL = "</sheetData></worksheet>"


def row_xml(number: int, values: Iterable[object]) -> str:
    cells = []
    for i, value in enumerate(values):
        ref = f"{column_letter(i)}{number}"
        if value is None:
            continue
        if isinstance(value, int | float):
            cells.append(f'<c r="{ref}"><v>{value}</v></c>')
        else:
            cells.append(f'<c r="{ref}" t="inlineStr"><is><t>{escape(str(value))}</t></is></c>')
    return f'<row r="{number}">{"".join(cells)}</row>'


def xlsx(sheet_parts: Iterable[str]) -> bytes:
    """A minimal workbook whose one sheet is SHEET_HEAD + the given parts + SHEET_TAIL."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", CONTENT_TYPES)
        z.writestr("_rels/.rels", RELS)
        z.writestr("xl/workbook.xml", WORKBOOK)
        z.writestr("xl/_rels/workbook.xml.rels", WORKBOOK_RELS)
        with z.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as f:
            f.write(SHEET_HEAD.encode())
            for part in sheet_parts:
                f.write(part.encode())
            f.write(SHEET_TAIL.encode())
    return buf.getvalue()


def rows_of(header: list[object], rows: Iterable[list[object]]) -> Iterable[str]:
    yield row_xml(1, header)
    for number, values in enumerate(rows, start=2):
        yield row_xml(number, values)


def zip_bomb(uncompressed_mb: int = 150) -> bytes:
    """A few hundred kB that inflate to `uncompressed_mb` MB of blank sheet XML."""
    blank = " " * (1024 * 1024)
    return xlsx(blank for _ in range(uncompressed_mb))


def far_row(row: int = 1_048_576) -> bytes:
    """One header and one cell in the sheet's last row: openpyxl walks every row between."""
    return xlsx([row_xml(1, ["Họ và tên", "Email"]), row_xml(row, ["x"])])
