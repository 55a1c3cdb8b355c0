"""Reading respondent lists (.xlsx / .csv) into plain rows, safely.

Units send their lists as whatever Excel or LibreOffice produced, with Vietnamese or English
headers, sometimes one sheet per respondent group. This module only turns bytes into
(row number, cells) and finds which column holds what; judging the values is importer.py's job.
Files that are too big, not really spreadsheets, or badly encoded are refused here with one
clear ImportProblem instead of a traceback.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field
from typing import Any

# Limits on what one upload may make the parser do (docs/architecture.md, decision 27). An
# honest list of a province's respondents is a few thousand rows of a dozen columns; the
# worker process that runs this module (import_worker.py) adds a time and memory limit.
MAX_BYTES = 10 * 1024 * 1024
MAX_ROWS = 20_000  # data rows, every sheet together
MAX_COLUMNS = 64  # a value further right is refused, not silently dropped
MAX_CELLS = MAX_ROWS * 32  # non-empty cells, every sheet together
# Rows the reader walks, blank ones included: openpyxl yields every row number up to the last
# one, so a 4 kB file with one cell in row 1,048,576 made it walk a million empty rows.
MAX_SHEET_ROWS = 50_000
MAX_SHEETS = 32
MAX_ZIP_ENTRIES = 1000
# A 10 MB zip can inflate to gigabytes (zipfile stops each part at its declared size).
MAX_UNCOMPRESSED = 100 * 1024 * 1024
MAX_SHARED_STRINGS_BYTES = 32 * 1024 * 1024  # xl/sharedStrings.xml is loaded whole
MAX_SHARED_STRINGS = MAX_CELLS
HEADER_SCAN_ROWS = 10

# Canonical field -> header spellings, already folded by fold() (no diacritics, lowercase).
HEADERS: dict[str, tuple[str, ...]] = {
    "full_name": ("ho va ten", "ho ten", "full name", "name", "ho va ten nguoi khao sat"),
    "email": ("email", "e mail", "dia chi email", "dia chi e mail", "thu dien tu"),
    "unit": ("ma don vi", "don vi", "unit", "unit code", "co quan don vi", "don vi cong tac"),
    "form": ("phieu", "mau phieu", "nhom", "form", "form code", "ma phieu", "loai phieu"),
    "phone": ("so dien thoai", "dien thoai", "phone", "sdt", "so dt"),
    "position": ("chuc vu", "chuc danh", "position", "job title"),
    "national_id": ("cccd", "so cccd", "national id", "so can cuoc cong dan"),
    "provincial_delegate": (
        "dai bieu hdnd tinh",
        "dai bieu hdnd cap tinh",
        "provincial delegate",
    ),
    "district_delegate": (
        "dai bieu hdnd huyen",
        "dai bieu hdnd cap huyen",
        "district delegate",
    ),
    "leader": ("lanh dao", "leader"),
    "staff": ("ccvc", "cong chuc vien chuc", "staff"),
}
ROLE_FIELDS = ("provincial_delegate", "district_delegate", "leader", "staff")
# How a missing column is named in a problem: the header the template uses.
HEADER_LABEL = {
    "full_name": "Họ và tên",
    "email": "Email",
    "unit": "Mã đơn vị",
    "form": "Phiếu",
}
_ALIAS = {alias: name for name, aliases in HEADERS.items() for alias in aliases}


@dataclass(frozen=True)
class ImportProblem:
    """One thing wrong with the file, located the way the person fixing it will look for it."""

    row: int  # 1-based spreadsheet row; the header is row 1
    column: str  # the header text as in the file, or a column letter
    code: str
    message_vi: str
    message_en: str
    sheet: str | None = None  # the worksheet, when the workbook has several


@dataclass(frozen=True)
class Column:
    index: int  # 0-based
    header: str  # as written in the file


@dataclass
class Table:
    """One sheet (or the CSV): where each known field sits, and the data rows below the header."""

    sheet: str | None
    header_row: int
    columns: dict[str, Column]
    rows: list[tuple[int, list[object]]] = field(default_factory=list)


class FileRejected(Exception):
    """The whole file is unusable; carries the one problem to show."""

    def __init__(self, problem: ImportProblem) -> None:
        super().__init__(problem.message_en)
        self.problem = problem


def fold(text: str) -> str:
    """Lowercase, strip Vietnamese diacritics and punctuation so headers match however typed."""
    text = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    text = "".join(c for c in text if unicodedata.category(c) != "Mn").lower()
    return " ".join(re.split(r"[^a-z0-9]+", text)).strip()


def column_letter(index: int) -> str:
    """Spreadsheet letter for a 0-based column index (0 -> A, 26 -> AA)."""
    letters = ""
    n = index + 1
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _reject(code: str, vi: str, en: str, row: int = 1, column: str = "") -> FileRejected:
    return FileRejected(ImportProblem(row, column, code, vi, en))


def _too_many(row: int = 1, sheet: str | None = None) -> FileRejected:
    return _limit(
        "too_many_rows",
        f"Tệp có hơn {MAX_ROWS} dòng dữ liệu; hãy chia nhỏ danh sách.",
        f"The file has more than {MAX_ROWS} data rows; split the list.",
        row,
        "",
        sheet,
    )


def _limit(code: str, vi: str, en: str, row: int, column: str, sheet: str | None) -> FileRejected:
    where_vi = f"Trang «{sheet}», dòng {row}" if sheet else f"Dòng {row}"
    where_en = f"Sheet '{sheet}', row {row}" if sheet else f"Row {row}"
    if column:
        where_vi, where_en = f"{where_vi}, cột {column}", f"{where_en}, column {column}"
    problem = ImportProblem(row, column, code, f"{where_vi}: {vi}", f"{where_en}: {en}", sheet)
    return FileRejected(problem)


def _blank(cells: list[object]) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in cells)


def read_tables(content: bytes, filename: str) -> tuple[list[Table], list[ImportProblem]]:
    """Every sheet with a recognisable header, plus header-level problems.

    Raises FileRejected when the file as a whole cannot be read.
    """
    if len(content) > MAX_BYTES:
        raise _reject(
            "file_too_large",
            f"Tệp quá lớn ({len(content)} byte); tối đa {MAX_BYTES // (1024 * 1024)} MB.",
            f"File too large ({len(content)} bytes); the limit is {MAX_BYTES // (1024 * 1024)} MB.",
        )
    name = filename.lower()
    if name.endswith((".xlsx", ".xlsm")):
        sheets = _read_xlsx(content)
    elif name.endswith((".csv", ".txt")):
        sheets = [(None, _read_csv(content))]
    elif name.endswith(".xls"):
        raise _reject(
            "unsupported_file",
            "Định dạng .xls cũ không được hỗ trợ; hãy lưu lại thành .xlsx hoặc .csv (UTF-8).",
            "Old .xls files are not supported; save the list as .xlsx or UTF-8 .csv.",
        )
    else:
        raise _reject(
            "unsupported_file",
            "Chỉ nhận tệp .xlsx hoặc .csv.",
            "Only .xlsx or .csv files are accepted.",
        )
    tables: list[Table] = []
    problems: list[ImportProblem] = []
    for sheet, rows in sheets:
        found = _find_header(rows)
        if found is None:
            continue  # an instructions or summary sheet: nothing we recognise
        table, header_problems = _table(sheet, rows, found)
        tables.append(table)
        problems.extend(header_problems)
    if sum(len(t.rows) for t in tables) > MAX_ROWS:
        raise _too_many()
    if not tables:
        first = sheets[0][0] if sheets else None
        problems.extend(
            ImportProblem(
                1,
                HEADER_LABEL[f],
                "missing_column",
                f"Thiếu cột bắt buộc «{HEADER_LABEL[f]}» ở dòng tiêu đề.",
                f"Required column '{HEADER_LABEL[f]}' is missing from the header row.",
                first,
            )
            for f in ("full_name", "email")
        )
    return tables, problems


def _find_header(rows: list[tuple[int, list[object]]]) -> int | None:
    """Index in rows of the header: the first of the top rows naming the most known fields.

    Lists often carry a title ("DANH SÁCH ...") above the header; row numbers stay the
    spreadsheet's own, so problems still point at the right line.
    """
    best, best_score = None, 0
    for i, (_, cells) in enumerate(rows[:HEADER_SCAN_ROWS]):
        score = len({_ALIAS[f] for c in cells if isinstance(c, str) and (f := fold(c)) in _ALIAS})
        if score > best_score:
            best, best_score = i, score
    return best


def _table(
    sheet: str | None, rows: list[tuple[int, list[object]]], at: int
) -> tuple[Table, list[ImportProblem]]:
    header_row, cells = rows[at]
    columns: dict[str, Column] = {}
    problems: list[ImportProblem] = []
    for index, cell in enumerate(cells):
        if not isinstance(cell, str):
            continue
        known = _ALIAS.get(fold(cell))
        if known is None:
            continue  # STT, Ghi chú, ...: not ours
        if known in columns:
            problems.append(
                ImportProblem(
                    header_row,
                    cell.strip() or column_letter(index),
                    "duplicate_column",
                    f"Cột «{cell.strip()}» trùng ý nghĩa với cột «{columns[known].header}».",
                    f"Column '{cell.strip()}' duplicates column '{columns[known].header}'.",
                    sheet,
                )
            )
            continue
        columns[known] = Column(index, cell.strip())
    required = ["full_name", "email"]
    for f in required:
        if f not in columns:
            problems.append(
                ImportProblem(
                    header_row,
                    HEADER_LABEL[f],
                    "missing_column",
                    f"Thiếu cột bắt buộc «{HEADER_LABEL[f]}» ở dòng tiêu đề.",
                    f"Required column '{HEADER_LABEL[f]}' is missing from the header row.",
                    sheet,
                )
            )
    if "form" not in columns and not any(r in columns for r in ROLE_FIELDS):
        problems.append(
            ImportProblem(
                header_row,
                HEADER_LABEL["form"],
                "missing_column",
                "Thiếu cột «Phiếu» (hoặc các cột đánh dấu Đại biểu HĐND tỉnh/huyện, "
                "Lãnh đạo, CCVC) để biết người này trả lời phiếu nào.",
                "Missing the 'Phiếu' (form) column, or the role columns (provincial/district "
                "delegate, leader, staff) that say which form the person answers.",
                sheet,
            )
        )
    data = [(n, c) for n, c in rows[at + 1 :] if not _blank(c)]
    return Table(sheet, header_row, columns, data), problems


def _read_xlsx(content: bytes) -> list[tuple[str | None, list[tuple[int, list[object]]]]]:
    not_xlsx = _reject(
        "not_xlsx",
        "Tệp không phải là bảng tính .xlsx hợp lệ (có thể bị hỏng hoặc đổi đuôi).",
        "The file is not a valid .xlsx workbook (damaged, or renamed from another format).",
    )
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError, OSError):
        raise not_xlsx from None
    if not any(i.filename == "xl/workbook.xml" for i in infos):
        raise not_xlsx
    strings = sum(i.file_size for i in infos if i.filename.lower() == "xl/sharedstrings.xml")
    if (
        len(infos) > MAX_ZIP_ENTRIES
        or sum(i.file_size for i in infos) > MAX_UNCOMPRESSED
        or strings > MAX_SHARED_STRINGS_BYTES
    ):
        raise _reject(
            "file_too_large",
            f"Tệp .xlsx khi giải nén quá lớn (tối đa {MAX_UNCOMPRESSED // (1024 * 1024)} MB, "
            f"{MAX_ZIP_ENTRIES} phần); hãy lưu lại chỉ với danh sách người khảo sát.",
            f"The .xlsx file is too large once uncompressed (at most "
            f"{MAX_UNCOMPRESSED // (1024 * 1024)} MB, {MAX_ZIP_ENTRIES} parts); "
            "save only the list.",
        )
    import openpyxl  # imported here: CSV-only callers need not pay for it

    try:
        wb = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception:  # openpyxl raises many kinds for malformed parts
        raise not_xlsx from None
    sheets: list[tuple[str | None, list[tuple[int, list[object]]]]] = []
    try:
        if len(wb.worksheets) > MAX_SHEETS:
            raise _reject(
                "too_many_sheets",
                f"Tệp có {len(wb.worksheets)} trang tính; tối đa {MAX_SHEETS}.",
                f"The workbook has {len(wb.worksheets)} sheets; at most {MAX_SHEETS}.",
            )
        table: Any = getattr(wb.worksheets[0], "shared_strings", ()) if wb.worksheets else ()
        if len(table) > MAX_SHARED_STRINGS:  # read-only sheets share the loaded table
            raise _reject(
                "too_many_cells",
                f"Tệp chứa quá nhiều chuỗi ký tự (hơn {MAX_SHARED_STRINGS}).",
                f"The workbook holds too many strings (more than {MAX_SHARED_STRINGS}).",
            )
        multi = len(wb.worksheets) > 1
        data_rows = walked = cell_count = 0
        for ws in wb.worksheets:
            title = ws.title if multi else None
            rows: list[tuple[int, list[object]]] = []
            for number, values in enumerate(
                ws.iter_rows(min_row=1, max_col=MAX_COLUMNS + 1, values_only=True), start=1
            ):
                walked += 1
                if walked > MAX_SHEET_ROWS:
                    raise _limit(
                        "too_many_rows",
                        f"bảng tính có hơn {MAX_SHEET_ROWS} dòng (kể cả dòng trống); "
                        "hãy xoá các dòng trống hoặc định dạng thừa ở cuối trang.",
                        f"the workbook has more than {MAX_SHEET_ROWS} rows (blank ones "
                        "included); delete the empty or formatted rows at the end of the sheet.",
                        number,
                        "",
                        title,
                    )
                cells = list(values)
                if len(cells) > MAX_COLUMNS and not _blank(cells[MAX_COLUMNS:]):
                    raise _too_wide(number, title)
                cells = cells[:MAX_COLUMNS]
                if _blank(cells):
                    continue
                rows.append((number, cells))
                data_rows += 1
                cell_count += sum(not _blank([c]) for c in cells)
                if data_rows > MAX_ROWS + HEADER_SCAN_ROWS * len(wb.worksheets):
                    raise _too_many(number, title)  # a header or two cannot explain this
                if cell_count > MAX_CELLS:
                    raise _too_many_cells(number, title)
            sheets.append((title, rows))
    except FileRejected:
        raise
    except Exception:
        raise not_xlsx from None
    finally:
        wb.close()
    return sheets


def _too_wide(row: int, sheet: str | None) -> FileRejected:
    return _limit(
        "too_many_columns",
        f"có dữ liệu ở bên phải cột {column_letter(MAX_COLUMNS - 1)}; danh sách chỉ được "
        f"có tối đa {MAX_COLUMNS} cột.",
        f"there is data to the right of column {column_letter(MAX_COLUMNS - 1)}; a list has "
        f"at most {MAX_COLUMNS} columns.",
        row,
        column_letter(MAX_COLUMNS),
        sheet,
    )


def _too_many_cells(row: int, sheet: str | None) -> FileRejected:
    return _limit(
        "too_many_cells",
        f"tệp có hơn {MAX_CELLS} ô có dữ liệu; hãy bỏ các cột không cần thiết.",
        f"the file has more than {MAX_CELLS} non-empty cells; remove the columns not needed.",
        row,
        "",
        sheet,
    )


def _read_csv(content: bytes) -> list[tuple[int, list[object]]]:
    """UTF-8 with or without BOM; ',' ';' or tab, whichever the header line uses most."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _reject(
            "bad_encoding",
            "Tệp CSV không ở mã UTF-8; hãy lưu lại với «CSV UTF-8».",
            "The CSV file is not UTF-8; save it again as 'CSV UTF-8'.",
        ) from None
    if "\x00" in text:
        raise _reject(
            "bad_encoding",
            "Tệp CSV chứa ký tự rỗng (NUL); có thể là tệp nhị phân.",
            "The CSV file contains NUL characters; it may be a binary file.",
        )
    first = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    rows: list[tuple[int, list[object]]] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        # Numbered by record, as Excel shows the file (a quoted newline stays in one row).
        cell_count = 0
        for number, cells in enumerate(reader, start=1):
            if len(rows) > MAX_ROWS + HEADER_SCAN_ROWS:
                raise _too_many(number)
            if len(cells) > MAX_COLUMNS and not _blank(list(cells[MAX_COLUMNS:])):
                raise _too_wide(number, None)
            row: list[object] = list(cells[:MAX_COLUMNS])
            if not _blank(row):
                rows.append((number, row))
                cell_count += sum(bool(c.strip()) for c in cells[:MAX_COLUMNS])
                if cell_count > MAX_CELLS:
                    raise _too_many_cells(number, None)
    except csv.Error as exc:
        raise _reject(
            "bad_csv",
            f"Tệp CSV sai định dạng ở dòng {reader.line_num}: {exc}",
            f"Malformed CSV at line {reader.line_num}: {exc}",
            row=reader.line_num,
        ) from None
    return rows
