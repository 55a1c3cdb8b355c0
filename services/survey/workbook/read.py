"""An uploaded campaign workbook -> a Campaign, or every problem by sheet, row and column.

A methodologist fixes the file in one pass, so nothing stops at the first problem: each sheet
is read, codes are cross-checked (unknown unit in a quota, duplicate ids, waves after the
deadline, points that do not add up), and what is left is validated by the Campaign model,
whose errors are put back on the cell they came from and said in Vietnamese. Limits on what
an upload may make the parser do are those of decision 27 (docs/architecture.md).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from contracts.campaign import Campaign
from parindex.web.spreadsheet import FORMULA_STARTS
from services.survey.workbook import rules as r

MAX_BYTES = 5 * 1024 * 1024
MAX_ZIP_ENTRIES = 500
MAX_UNCOMPRESSED = 60 * 1024 * 1024
MAX_SHEETS = 16
MAX_COLUMNS = 32
MAX_CELLS = 200_000

Loc = tuple[int | str, ...]
Rows = list[tuple[int, list[object]]]
# A list of the model that a whole sheet holds ("at least one unit" is said on that sheet).
_SHEET_LOC: dict[str, Loc] = {
    r.UNITS: ("units",),
    r.FORMS: ("forms",),
    r.QUOTAS: ("quotas",),
    r.WAVES: ("waves",),
}


class Rejected(Exception):
    def __init__(self, problem: r.Problem) -> None:
        super().__init__(problem.message_en)
        self.problem = problem


def _whole(vi: str, en: str) -> Rejected:
    return Rejected(r.Problem("", 0, "", vi, en))


def load_sheets(content: bytes) -> dict[str, Rows]:
    """Every sheet's non-blank rows (1-based numbers kept), within the upload limits."""
    if len(content) > MAX_BYTES:
        raise _whole(
            f"Tệp quá lớn; tối đa {MAX_BYTES // (1024 * 1024)} MB.",
            f"File too large; at most {MAX_BYTES // (1024 * 1024)} MB.",
        )
    not_xlsx = _whole(
        "Tệp không phải là bảng tính .xlsx hợp lệ; hãy lưu lại bằng Excel (.xlsx) và thử lại.",
        "The file is not a valid .xlsx workbook; save it again as .xlsx and retry.",
    )
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError, OSError):
        raise not_xlsx from None
    if not any(i.filename == "xl/workbook.xml" for i in infos):
        raise not_xlsx
    if len(infos) > MAX_ZIP_ENTRIES or sum(i.file_size for i in infos) > MAX_UNCOMPRESSED:
        raise _whole(
            "Tệp .xlsx khi giải nén quá lớn; hãy lưu lại chỉ với các trang của sổ tay.",
            "The .xlsx file is too large once uncompressed; keep only the workbook's sheets.",
        )
    import openpyxl  # a heavy import, needed only here

    try:
        wb = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception:  # openpyxl raises many kinds for malformed parts
        raise not_xlsx from None
    sheets: dict[str, Rows] = {}
    cells = 0
    try:
        if len(wb.worksheets) > MAX_SHEETS:
            raise _whole(
                f"Tệp có {len(wb.worksheets)} trang tính; tối đa {MAX_SHEETS}.",
                f"The workbook has {len(wb.worksheets)} sheets; at most {MAX_SHEETS}.",
            )
        for ws in wb.worksheets:
            rows: Rows = []
            values_rows = ws.iter_rows(min_row=1, max_col=MAX_COLUMNS + 1, values_only=True)
            for number, values in enumerate(values_rows, start=1):
                if number > r.MAX_ROWS_PER_SHEET:
                    raise Rejected(
                        r.Problem(
                            ws.title,
                            number,
                            "",
                            f"Trang có hơn {r.MAX_ROWS_PER_SHEET} dòng (kể cả dòng trống); "
                            "hãy xoá các dòng thừa ở cuối trang.",
                            f"The sheet has more than {r.MAX_ROWS_PER_SHEET} rows (blank ones "
                            "included); delete the extra rows at its end.",
                        )
                    )
                row = [_plain(v) for v in values]
                if len(row) > MAX_COLUMNS and not all(r.is_blank(v) for v in row[MAX_COLUMNS:]):
                    raise Rejected(
                        r.Problem(
                            ws.title,
                            number,
                            "",
                            f"Có dữ liệu ở bên phải cột thứ {MAX_COLUMNS}.",
                            f"There is data right of column {MAX_COLUMNS}.",
                        )
                    )
                row = row[:MAX_COLUMNS]
                if all(r.is_blank(v) for v in row):
                    continue
                cells += sum(not r.is_blank(v) for v in row)
                if cells > MAX_CELLS:
                    raise _whole(
                        f"Tệp có hơn {MAX_CELLS} ô có dữ liệu.",
                        f"The file has more than {MAX_CELLS} non-empty cells.",
                    )
                rows.append((number, row))
            sheets[ws.title.strip()] = rows
    except Rejected:
        raise
    except Exception:
        raise not_xlsx from None
    finally:
        wb.close()
    return sheets


def _plain(value: object) -> object:
    """Undo the export's formula neutralising ('=x -> =x); strip text."""
    if isinstance(value, str):
        value = value.strip()
        if len(value) > 1 and value[0] == "'" and value[1] in FORMULA_STARTS:
            return value[1:]
    return value


@dataclass
class Where:
    """Which cell each part of the campaign came from, to put model errors back on it."""

    cells: dict[Loc, tuple[str, int, str]] = field(default_factory=dict)

    def put(self, loc: Loc, sheet: str, row: int, column: str = "") -> None:
        self.cells[loc] = (sheet, row, column)

    def find(self, loc: Loc) -> tuple[str, int, str]:
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.cells:
                return self.cells[loc[:end]]
        return ("", 0, "")


@dataclass
class Table:
    sheet: str
    header_row: int
    columns: dict[str, int]  # field -> 0-based index
    rows: Rows

    def get(self, cells: list[object], name: str) -> object:
        index = self.columns.get(name)
        return cells[index] if index is not None and index < len(cells) else None

    def header(self, name: str) -> str:
        return r.HEADERS[self.sheet][name]


class Reader:
    def __init__(self, sheets: dict[str, Rows]) -> None:
        self.sheets = {r.fold(name): rows for name, rows in sheets.items()}
        self.problems: list[r.Problem] = []
        self.where = Where()

    def problem(self, sheet: str, row: int, column: str, vi: str, en: str) -> None:
        item = r.Problem(sheet, row, column, vi, en)
        if item not in self.problems:
            self.problems.append(item)

    def bad(self, table: Table, row: int, name: str, exc: r.BadCell) -> None:
        self.problem(table.sheet, row, table.header(name), exc.vi[:1].upper() + exc.vi[1:], exc.en)

    def table(self, sheet: str) -> Table | None:
        rows = self.sheets.get(r.fold(sheet))
        if rows is None:
            self.problem(
                sheet,
                0,
                "",
                f"Thiếu trang «{sheet}»; hãy dùng sổ tay tải từ hệ thống.",
                f"The sheet '{sheet}' is missing; start from the workbook the system offers.",
            )
            return None
        headers = r.HEADERS[sheet]
        sheet_loc = _SHEET_LOC.get(sheet)
        if sheet_loc:
            self.where.put(sheet_loc, sheet, rows[0][0] if rows else 1)
        by_label = {r.fold(label): name for name, label in headers.items()}
        header_row, cells = rows[0] if rows else (1, [])
        columns: dict[str, int] = {}
        for index, cell in enumerate(cells):
            name = by_label.get(r.fold(r.text(cell)))
            if name is not None and name not in columns:
                columns[name] = index
        for name, label in headers.items():
            if name not in columns and name not in r.OPTIONAL:
                self.problem(
                    sheet,
                    header_row,
                    label,
                    f"Thiếu cột «{label}» ở dòng tiêu đề.",
                    f"The column '{label}' is missing from the header row.",
                )
        return Table(sheet, header_row, columns, rows[1:])

    def cell(
        self, table: Table, row: int, cells: list[object], name: str, read: Callable[[Any], Any]
    ) -> Any:
        """The cell read by `read`; None (and a problem) when it cannot be read; blank -> None."""
        value = table.get(cells, name)
        if r.is_blank(value):
            return None
        try:
            return read(value)
        except r.BadCell as exc:
            self.bad(table, row, name, exc)
            return None

    def needed(
        self, table: Table, row: int, cells: list[object], name: str, read: Callable[[Any], Any]
    ) -> Any:
        """Like `cell`, and a blank cell is a problem too (one problem per cell, never two)."""
        if r.is_blank(table.get(cells, name)):
            return self.required(table, row, name, None)
        return self.cell(table, row, cells, name, read)

    def required(self, table: Table, row: int, name: str, value: Any) -> Any:
        if value is None or value == "":
            label = table.header(name)
            self.problem(
                table.sheet,
                row,
                label,
                f"Ô «{label}» không được để trống.",
                f"The cell '{label}' must not be empty.",
            )
        return value

    def duplicate(self, table: Table, row: int, name: str, value: str, first: int) -> None:
        label = table.header(name)
        self.problem(
            table.sheet,
            row,
            label,
            f"«{value}» trùng với dòng {first}.",
            f"'{value}' repeats row {first}.",
        )

    def unknown(self, table: Table, row: int, name: str, value: str, where: str) -> None:
        label = table.header(name)
        self.problem(
            table.sheet,
            row,
            label,
            f"«{value}» không có trong trang «{where}».",
            f"'{value}' is not on the sheet '{where}'.",
        )


def read_workbook(content: bytes) -> tuple[Campaign | None, list[r.Problem]]:
    """The campaign in the workbook, or None and every problem found."""
    try:
        sheets = load_sheets(content)
    except Rejected as exc:
        return None, [exc.problem]
    reader = Reader(sheets)
    data = _read(reader)
    own = bool(reader.problems)
    try:
        campaign = Campaign.model_validate(_clean(data))
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            _model_problem(reader, err, own)
        if not reader.problems:  # nothing located: still say something a person can act on
            reader.problem(
                "",
                0,
                "",
                "Sổ tay chưa hợp lệ; hãy kiểm tra lại các trang.",
                "The workbook is not valid.",
            )
        return None, reader.problems
    if reader.problems:
        return None, reader.problems
    return campaign, []


def _clean(value: Any) -> Any:
    """Drop the reader's bookkeeping (keys starting with "_") before validation."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


# --- sheets -------------------------------------------------------------------------------
def _read(rd: Reader) -> dict[str, Any]:
    data: dict[str, Any] = {}
    tz = _settings(rd, data)
    units = _units(rd, data)
    forms = _forms(rd, data, units)
    scales = _scales(rd)
    _questions(rd, data, forms, scales)
    _quotas(rd, data, units, forms)
    _waves(rd, data, units, forms, tz)
    priority = data.get("form_priority") or []
    known = {f["code"] for f in data.get("forms", [])}
    for code in priority:
        if forms is not None and code not in known:
            sheet, row, column = rd.where.find(("form_priority",))
            rd.problem(
                sheet,
                row,
                column,
                f"Mã phiếu «{code}» trong thứ tự ưu tiên không có trong trang «{r.FORMS}».",
                f"Form '{code}' in the priority order is not on the sheet '{r.FORMS}'.",
            )
    return data


def _settings(rd: Reader, data: dict[str, Any]) -> ZoneInfo:
    tz = ZoneInfo("Asia/Ho_Chi_Minh")
    table = rd.table(r.SETTINGS)
    if table is None:
        return tz
    by_label = {r.fold(label): name for name, label in r.SETTING_LABELS.items()}
    found: dict[str, tuple[int, object]] = {}
    for row, cells in table.rows:
        item = r.text(table.get(cells, "item"))
        name = by_label.get(r.fold(item))
        if name is None:
            if item:
                rd.problem(
                    r.SETTINGS,
                    row,
                    table.header("item"),
                    f"Mục «{item}» không có trong sổ tay.",
                    f"Unknown item '{item}'.",
                )
            continue
        if name in found:
            rd.duplicate(table, row, "item", item, found[name][0])
            continue
        found[name] = (row, table.get(cells, "value"))
    value_header = table.header("value")
    for name in r.REQUIRED_SETTINGS:
        if name not in found or r.is_blank(found[name][1]):
            row = found[name][0] if name in found else table.header_row
            label = r.SETTING_LABELS[name]
            rd.problem(
                r.SETTINGS,
                row,
                value_header,
                f"Chưa ghi «{label}».",
                f"'{label}' is not filled in.",
            )

    def read(name: str, how: Callable[[Any], Any], loc: Loc) -> Any:
        if name not in found or r.is_blank(found[name][1]):
            return None
        row, value = found[name]
        rd.where.put(loc, r.SETTINGS, row, value_header)
        try:
            return how(value)
        except r.BadCell as exc:
            label = r.SETTING_LABELS[name]
            rd.problem(r.SETTINGS, row, value_header, f"{label}: {exc.vi}", f"{label}: {exc.en}")
            return None

    tz_name = read("timezone", r.text, ("timezone",))
    if tz_name is not None:
        data["timezone"] = tz_name
        zone = read("timezone", r.zone, ("timezone",))
        tz = zone or tz
    simple: dict[str, tuple[Callable[[Any], Any], Loc]] = {
        "id": (r.text, ("id",)),
        "version": (r.integer, ("version",)),
        "name": (r.text, ("name",)),
        "province": (r.text, ("province",)),
        "year": (r.integer, ("year",)),
        "deadline": (lambda v: r.moment(v, tz), ("deadline",)),
        "dedupe_rule": (lambda v: r.choice(v, r.DEDUPE_LABELS), ("dedupe_rule",)),
        "form_priority": (r.items, ("form_priority",)),
        "reminder_offsets_days": (
            lambda v: [r.integer(x) for x in r.items(v)],
            ("reminder_offsets_days",),
        ),
        "min_report_size": (r.integer, ("min_report_size",)),
    }
    for name, (how, loc) in simple.items():
        value = read(name, how, loc)
        if value is not None:
            data[name] = value
    if "reminder_offsets_days" in found and r.is_blank(found["reminder_offsets_days"][1]):
        data["reminder_offsets_days"] = []  # an empty cell: no reminders
    rounding: dict[str, Any] = {}
    places = read("rounding_places", r.integer, ("rounding", "places"))
    if places is not None:
        rounding["places"] = places
    mode = read("rounding_mode", lambda v: r.choice(v, r.ROUNDING_LABELS), ("rounding", "mode"))
    if mode is not None:
        rounding["mode"] = mode
    data["rounding"] = rounding
    report: dict[str, Any] = {}
    for name in r.SETTING_LABELS:
        if name.startswith("report."):
            value = read(name, r.text, ("report", name[7:]))
            if value:
                report[name[7:]] = value
    data["report"] = report
    return tz


def _units(rd: Reader, data: dict[str, Any]) -> dict[str, int] | None:
    """Unit code -> its row (None when the sheet is missing: references are not checked)."""
    table = rd.table(r.UNITS)
    if table is None:
        return None
    seen: dict[str, int] = {}
    units: list[dict[str, Any]] = []
    for row, cells in table.rows:
        code = rd.required(table, row, "code", r.text(table.get(cells, "code")))
        if code and code in seen:
            rd.duplicate(table, row, "code", code, seen[code])
            continue
        if code:
            seen[code] = row
        unit: dict[str, Any] = {"code": code, "name": r.text(table.get(cells, "name"))}
        rd.required(table, row, "name", unit["name"])
        if not r.is_blank(table.get(cells, "name_en")):
            unit["name_en"] = r.text(table.get(cells, "name_en"))
        kind = rd.cell(table, row, cells, "kind", lambda v: r.choice(v, r.KIND_LABELS))
        if kind is None and r.is_blank(table.get(cells, "kind")):
            rd.required(table, row, "kind", None)
        unit["kind"] = kind
        i = len(units)
        _put_row(rd, ("units", i), table, row)
        units.append(unit)
    data["units"] = units
    return seen


def _put_row(rd: Reader, loc: Loc, table: Table, row: int) -> None:
    rd.where.put(loc, table.sheet, row)
    for name, label in r.HEADERS[table.sheet].items():
        rd.where.put((*loc, _FIELD.get((table.sheet, name), name)), table.sheet, row, label)


# Header field -> the model's field, where they differ.
_FIELD: dict[tuple[str, str], str] = {
    (r.QUOTAS, "form"): "form_code",
    (r.QUOTAS, "unit"): "unit_code",
    (r.QUESTIONS, "points"): "max_points",
    (r.QUESTIONS, "scale"): "options",
    (r.SCALES, "code"): "code",
}


def _forms(
    rd: Reader, data: dict[str, Any], units: dict[str, int] | None
) -> dict[str, dict[str, Any]] | None:
    table = rd.table(r.FORMS)
    if table is None:
        return None
    seen: dict[str, int] = {}
    forms: dict[str, dict[str, Any]] = {}
    for row, cells in table.rows:
        code = rd.required(table, row, "code", r.text(table.get(cells, "code")))
        if code and code in seen:
            rd.duplicate(table, row, "code", code, seen[code])
            continue
        form: dict[str, Any] = {
            "code": code,
            "name": rd.required(table, row, "name", r.text(table.get(cells, "name"))),
            "group": rd.required(table, row, "group", r.text(table.get(cells, "group"))),
            "criteria": [],
            "_row": row,
        }
        if not r.is_blank(table.get(cells, "name_en")):
            form["name_en"] = r.text(table.get(cells, "name_en"))
        rates = rd.cell(table, row, cells, "rates", lambda v: r.choice(v, r.RATES_LABELS))
        if rates is None and r.is_blank(table.get(cells, "rates")):
            rd.required(table, row, "rates", None)
        form["rates"] = rates
        kinds = rd.cell(
            table,
            row,
            cells,
            "respondent_unit_kinds",
            lambda v: [r.choice(k, r.KIND_LABELS) for k in r.items(v)],
        )
        form["respondent_unit_kinds"] = kinds or []
        rated = r.items(table.get(cells, "rated_units"))
        for unit in rated:
            if units is not None and unit not in units:
                rd.unknown(table, row, "rated_units", unit, r.UNITS)
        form["rated_units"] = rated
        if rates == "many_units" and not rated:
            rd.problem(
                r.FORMS,
                row,
                table.header("rated_units"),
                "Phiếu đánh giá nhiều đơn vị phải ghi các mã đơn vị được đánh giá.",
                "A form rating many units must list the units it rates.",
            )
        if code:
            seen[code] = row
            forms[code] = form
    data["forms"] = list(forms.values())
    for i, form in enumerate(data["forms"]):
        _put_row(rd, ("forms", i), table, form["_row"])
    return forms


@dataclass
class Scale:
    row: int
    options: list[dict[str, Any]]


def _scales(rd: Reader) -> dict[str, Scale] | None:
    table = rd.table(r.SCALES)
    if table is None:
        return None
    scales: dict[str, Scale] = {}
    codes: dict[tuple[str, str], int] = {}
    for row, cells in table.rows:
        name = rd.required(table, row, "scale", r.text(table.get(cells, "scale")))
        code = rd.required(table, row, "code", r.text(table.get(cells, "code")))
        if not name:
            continue
        if code and (name, code) in codes:
            rd.duplicate(table, row, "code", code, codes[(name, code)])
            continue
        codes[(name, code)] = row
        option: dict[str, Any] = {
            "code": code,
            "label": rd.required(table, row, "label", r.text(table.get(cells, "label"))),
            "weight": rd.cell(table, row, cells, "weight", r.decimal),
        }
        if not r.is_blank(table.get(cells, "label_en")):
            option["label_en"] = r.text(table.get(cells, "label_en"))
        scale = scales.setdefault(name, Scale(row, []))
        scale.options.append(option)
    for name, scale in scales.items():
        if len(scale.options) < 2:
            rd.problem(
                r.SCALES,
                scale.row,
                table.header("scale"),
                f"Thang «{name}» cần ít nhất 2 phương án.",
                f"Scale '{name}' needs at least 2 options.",
            )
        elif all(o["weight"] is None for o in scale.options):
            rd.problem(
                r.SCALES,
                scale.row,
                table.header("weight"),
                f"Thang «{name}» không có phương án nào có trọng số.",
                f"Scale '{name}' has no weighted option.",
            )
    return scales


def _questions(
    rd: Reader,
    data: dict[str, Any],
    forms: dict[str, dict[str, Any]] | None,
    scales: dict[str, Scale] | None,
) -> None:
    table = rd.table(r.QUESTIONS)
    if table is None or forms is None:
        return
    criteria: dict[tuple[str, str], dict[str, Any]] = {}
    qids: dict[tuple[str, str], int] = {}
    for row, cells in table.rows:
        form_code = rd.required(table, row, "form", r.text(table.get(cells, "form")))
        crit_code = rd.required(table, row, "criterion", r.text(table.get(cells, "criterion")))
        qid = rd.required(table, row, "id", r.text(table.get(cells, "id")))
        if not form_code or not crit_code:
            continue
        form = forms.get(form_code)
        if form is None:
            rd.unknown(table, row, "form", form_code, r.FORMS)
            continue
        key = (form_code, crit_code)
        crit = criteria.get(key)
        given = {
            "name": r.text(table.get(cells, "criterion_name")),
            "name_en": r.text(table.get(cells, "criterion_name_en")),
            "max_points": rd.cell(table, row, cells, "criterion_points", r.decimal),
        }
        if crit is None:
            crit = {"code": crit_code, "questions": [], "_row": row, "_given": given}
            crit["name"] = rd.required(table, row, "criterion_name", given["name"])
            if given["name_en"]:
                crit["name_en"] = given["name_en"]
            if r.is_blank(table.get(cells, "criterion_points")):
                rd.required(table, row, "criterion_points", None)
            crit["max_points"] = given["max_points"]
            criteria[key] = crit
            form["criteria"].append(crit)
        else:
            for name, header in (
                ("name", "criterion_name"),
                ("name_en", "criterion_name_en"),
                ("max_points", "criterion_points"),
            ):
                value = given[name]
                if value not in (None, "") and value != crit.get(name):
                    label = table.header(header)
                    rd.problem(
                        r.QUESTIONS,
                        row,
                        label,
                        f"Khác với dòng {crit['_row']} của cùng tiêu chí «{crit_code}»; "
                        "để trống hoặc ghi giống nhau.",
                        f"Differs from row {crit['_row']} of the same criterion "
                        f"'{crit_code}'; leave it empty or write the same.",
                    )
        if qid and (form_code, qid) in qids:
            rd.duplicate(table, row, "id", qid, qids[(form_code, qid)])
            continue
        if qid:
            qids[(form_code, qid)] = row
        question: dict[str, Any] = {
            "id": qid,
            "text": rd.required(table, row, "text", r.text(table.get(cells, "text"))),
            "max_points": rd.needed(table, row, cells, "points", r.decimal),
            "_row": row,
        }
        if not r.is_blank(table.get(cells, "text_en")):
            question["text_en"] = r.text(table.get(cells, "text_en"))
        required = rd.cell(table, row, cells, "required", r.yes_no)
        question["required"] = True if required is None else required
        scale_name = rd.required(table, row, "scale", r.text(table.get(cells, "scale")))
        if scale_name and scales is not None:
            scale = scales.get(scale_name)
            if scale is None:
                rd.unknown(table, row, "scale", scale_name, r.SCALES)
            else:
                question["options"] = [dict(o) for o in scale.options]
        crit["questions"].append(question)
    for (form_code, crit_code), crit in criteria.items():
        points = [q["max_points"] for q in crit["questions"]]
        if crit["max_points"] is not None and all(p is not None for p in points):
            total = sum(points)
            if total != crit["max_points"]:
                rd.problem(
                    r.QUESTIONS,
                    crit["_row"],
                    table.header("criterion_points"),
                    f"Tiêu chí «{crit_code}» của phiếu {form_code}: tổng điểm các câu hỏi là "
                    f"{_vn(total)}, không bằng {_vn(crit['max_points'])}.",
                    f"Criterion '{crit_code}' of form {form_code}: its questions add up to "
                    f"{total}, not {crit['max_points']}.",
                )
    for i, form in enumerate(data.get("forms", [])):
        if not form["criteria"]:
            rd.problem(
                r.FORMS,
                form["_row"],
                r.HEADERS[r.FORMS]["code"],
                f"Phiếu «{form['code']}» chưa có câu hỏi nào trong trang «{r.QUESTIONS}».",
                f"Form '{form['code']}' has no question on the sheet '{r.QUESTIONS}'.",
            )
        for j, crit in enumerate(form["criteria"]):
            _put_row(rd, ("forms", i, "criteria", j), table, crit["_row"])
            rd.where.put(
                ("forms", i, "criteria", j, "name"),
                r.QUESTIONS,
                crit["_row"],
                table.header("criterion_name"),
            )
            rd.where.put(
                ("forms", i, "criteria", j, "name_en"),
                r.QUESTIONS,
                crit["_row"],
                table.header("criterion_name_en"),
            )
            rd.where.put(
                ("forms", i, "criteria", j, "max_points"),
                r.QUESTIONS,
                crit["_row"],
                table.header("criterion_points"),
            )
            rd.where.put(
                ("forms", i, "criteria", j, "code"),
                r.QUESTIONS,
                crit["_row"],
                table.header("criterion"),
            )
            for k, q in enumerate(crit["questions"]):
                _put_row(rd, ("forms", i, "criteria", j, "questions", k), table, q["_row"])
                rd.where.put(
                    ("forms", i, "criteria", j, "questions", k, "text_en"),
                    r.QUESTIONS,
                    q["_row"],
                    table.header("text_en"),
                )


def _vn(number: Any) -> str:
    return str(number).replace(".", ",")


def _quotas(
    rd: Reader,
    data: dict[str, Any],
    units: dict[str, int] | None,
    forms: dict[str, dict[str, Any]] | None,
) -> None:
    table = rd.table(r.QUOTAS)
    if table is None:
        return
    seen: dict[tuple[str, str], int] = {}
    quotas: list[dict[str, Any]] = []
    for row, cells in table.rows:
        form = rd.required(table, row, "form", r.text(table.get(cells, "form")))
        unit = r.text(table.get(cells, "unit")) or None
        ballots = rd.needed(table, row, cells, "ballots", r.integer)
        if form and forms is not None and form not in forms:
            rd.unknown(table, row, "form", form, r.FORMS)
        if unit and units is not None and unit not in units:
            rd.unknown(table, row, "unit", unit, r.UNITS)
        key = (form, unit or "")
        if form and key in seen:
            rd.duplicate(table, row, "unit" if unit else "form", unit or form, seen[key])
            continue
        seen[key] = row
        quota: dict[str, Any] = {"form_code": form, "ballots": ballots}
        if unit:
            quota["unit_code"] = unit
        _put_row(rd, ("quotas", len(quotas)), table, row)
        quotas.append(quota)
    data["quotas"] = quotas


def _waves(
    rd: Reader,
    data: dict[str, Any],
    units: dict[str, int] | None,
    forms: dict[str, dict[str, Any]] | None,
    tz: ZoneInfo,
) -> None:
    table = rd.table(r.WAVES)
    if table is None:
        return
    waves: dict[str, dict[str, Any]] = {}
    members: dict[tuple[str, str], int] = {}
    deadline = data.get("deadline")
    for row, cells in table.rows:
        wid = rd.required(table, row, "id", r.text(table.get(cells, "id")))
        opens = rd.cell(table, row, cells, "opens_at", lambda v: r.moment(v, tz))
        form = rd.required(table, row, "form", r.text(table.get(cells, "form")))
        if not wid:
            continue
        wave = waves.get(wid)
        if wave is None:
            wave = {"id": wid, "opens_at": opens, "members": [], "_row": row}
            if r.is_blank(table.get(cells, "opens_at")):
                rd.required(table, row, "opens_at", None)
            waves[wid] = wave
            if isinstance(opens, datetime) and isinstance(deadline, datetime) and opens >= deadline:
                rd.problem(
                    r.WAVES,
                    row,
                    table.header("opens_at"),
                    f"Đợt «{wid}» mở sau hạn chót trả lời phiếu.",
                    f"Wave '{wid}' opens after the deadline.",
                )
        elif opens is not None and opens != wave["opens_at"]:
            rd.problem(
                r.WAVES,
                row,
                table.header("opens_at"),
                f"Khác với dòng {wave['_row']} của cùng đợt «{wid}»; để trống hoặc ghi giống nhau.",
                f"Differs from row {wave['_row']} of the same wave '{wid}'; leave it empty or "
                "write the same.",
            )
        if not form:
            continue
        if forms is not None and form not in forms:
            rd.unknown(table, row, "form", form, r.FORMS)
        if (wid, form) in members:
            rd.duplicate(table, row, "form", form, members[(wid, form)])
            continue
        members[(wid, form)] = row
        unit_cell = table.get(cells, "units")
        unit_codes = None if r.is_blank(unit_cell) else r.items(unit_cell)
        for unit in unit_codes or []:
            if units is not None and unit not in units:
                rd.unknown(table, row, "units", unit, r.UNITS)
        wave["members"].append({"form_code": form, "unit_codes": unit_codes, "_row": row})
    data["waves"] = list(waves.values())
    for i, wave in enumerate(data["waves"]):
        _put_row(rd, ("waves", i), table, wave["_row"])
        for j, member in enumerate(wave["members"]):
            _put_row(rd, ("waves", i, "members", j), table, member.pop("_row"))
            rd.where.put(
                ("waves", i, "members", j, "form_code"),
                r.WAVES,
                rd.where.find(("waves", i, "members", j))[1],
                table.header("form"),
            )
            rd.where.put(
                ("waves", i, "members", j, "unit_codes"),
                r.WAVES,
                rd.where.find(("waves", i, "members", j))[1],
                table.header("units"),
            )
        wave.pop("_row")


# --- model errors, put back on their cell ---------------------------------------------------
def _model_problem(rd: Reader, err: Any, own: bool) -> None:
    kind = str(err["type"])
    if own and kind in ("missing", "value_error", "assertion_error", "none_required"):
        return  # a consequence of a problem already reported on its cell
    loc: Loc = tuple(err["loc"])
    sheet, row, column = rd.where.find(loc)
    if own and any(p.sheet == sheet and p.row == row and p.column == column for p in rd.problems):
        return
    ctx = err.get("ctx") or {}
    vi, en = _words(kind, ctx, str(err.get("msg", "")), loc)
    rd.problem(sheet, row, column, vi, en)


def _words(kind: str, ctx: dict[str, Any], msg: str, loc: Loc) -> tuple[str, str]:
    code_field = bool(loc) and loc[-1] in ("id", "code", "form_code", "unit_code")
    if kind == "missing":
        return "Ô này không được để trống.", "This cell must not be empty."
    if kind == "string_too_short":
        return "Ô này không được để trống.", "This cell must not be empty."
    if kind == "string_too_long":
        n = ctx.get("max_length")
        return f"Dài quá {n} ký tự.", f"Longer than {n} characters."
    if kind == "string_pattern_mismatch":
        lower = loc in (("id",),) or (len(loc) == 2 and loc[0] == "waves")
        lower = lower or (len(loc) == 3 and loc[0] == "waves" and loc[2] == "id")
        if lower:
            return (
                "Mã chỉ gồm chữ thường không dấu, chữ số, dấu - hoặc _, bắt đầu bằng chữ hoặc số.",
                "The code may hold only lowercase letters, digits, - or _, starting with a "
                "letter or digit.",
            )
        return (
            "Mã chỉ gồm chữ không dấu, chữ số, dấu - hoặc _ (tối đa 32 ký tự).",
            "The code may hold only letters, digits, - or _ (at most 32 characters).",
        )
    limits = {
        "greater_than_equal": ("phải lớn hơn hoặc bằng", "must be at least", "ge"),
        "greater_than": ("phải lớn hơn", "must be greater than", "gt"),
        "less_than_equal": ("phải nhỏ hơn hoặc bằng", "must be at most", "le"),
        "less_than": ("phải nhỏ hơn", "must be less than", "lt"),
    }
    if kind in limits:
        vi, en, key = limits[kind]
        bound = ctx.get(key)
        return f"Giá trị {vi} {_vn(bound)}.", f"The value {en} {bound}."
    if kind in ("decimal_max_places", "decimal_max_digits"):
        return "Quá nhiều chữ số thập phân (tối đa 10).", "Too many decimal places (at most 10)."
    if kind == "too_short":
        n = ctx.get("min_length")
        return f"Cần ít nhất {n} dòng.", f"At least {n} rows are needed."
    if kind == "too_long":
        n = ctx.get("max_length")
        return f"Nhiều nhất {n} mục.", f"At most {n} items."
    if kind in ("enum", "literal_error"):
        return "Không phải một lựa chọn hợp lệ.", "Not one of the allowed choices."
    if "control character" in msg or "surrogate" in msg:
        return (
            "Ô chứa ký tự điều khiển không được phép (thường do dán từ tệp khác); hãy gõ lại.",
            "The cell holds a control character (often pasted from elsewhere); type it again.",
        )
    if code_field:
        return "Mã không hợp lệ.", "Invalid code."
    return "Giá trị không hợp lệ.", "Invalid value."
