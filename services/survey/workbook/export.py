"""A campaign as a workbook, and the empty template (docs/architecture.md, decision 38).

The export holds every field of the Campaign, so read.py gives back the same model. Answer
options are written once per distinct scale ("Thang 1", ...) and questions name their scale.
Cells a spreadsheet would take for a formula are neutralised (decision 22).
"""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from contracts.campaign import AnswerOption, Campaign, DedupeRule
from parindex.web.spreadsheet import neutral
from services.survey.workbook import rules as r

LISTS = "Danh mục"  # hidden sheet holding the validation lists (labels contain commas)
TEMPLATE_ROWS = 300  # rows the template's validations and text formats cover
HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
CODE_FIELDS = {"code", "form", "criterion", "id", "scale", "unit", "units", "rated_units"}

GUIDE_LINES = (
    "SỔ TAY ĐỢT ĐIỀU TRA XÃ HỘI HỌC CHỈ SỐ CẢI CÁCH HÀNH CHÍNH",
    "",
    "Tệp này mô tả toàn bộ một đợt khảo sát. Điền các trang theo thứ tự dưới đây rồi tải tệp "
    "lên trang «Đợt khảo sát» của hệ thống: mọi lỗi được báo theo trang, dòng và cột; nếu không "
    "có lỗi, hệ thống hiện bản xem trước để kiểm tra trước khi công bố.",
    "",
    "1. Cài đặt: mã đợt (chữ thường không dấu, ví dụ angiang-2025), tên, tỉnh, năm, hạn chót "
    "(ngày và giờ, ví dụ 06/10/2025 23:59:59), quy tắc loại trùng, thứ tự ưu tiên phiếu, "
    "số ngày nhắc trước hạn, làm tròn và phần đầu báo cáo.",
    "2. Đơn vị: mỗi dòng một cơ quan, đơn vị được đánh giá; mã đơn vị ngắn, không dấu, "
    "không đổi sau khi đã có phiếu.",
    "3. Phiếu: mỗi dòng một mẫu phiếu. «Đánh giá» là «Đơn vị của người trả lời» (phiếu của "
    "CCVC) hoặc «Nhiều đơn vị» (phiếu của đại biểu HĐND: ghi các mã đơn vị được đánh giá, "
    "cách nhau bởi dấu phẩy).",
    "4. Tiêu chí và câu hỏi: mỗi dòng một câu hỏi. Tên và điểm của tiêu chí ghi ở dòng đầu "
    "của tiêu chí (các dòng sau có thể để trống); tổng điểm các câu hỏi phải bằng điểm tiêu chí.",
    "5. Phương án trả lời: mỗi dòng một phương án của một thang; trọng số từ 0 đến 1, để trống "
    "với «Không biết» (không tính vào điểm).",
    "6. Chỉ tiêu: số phiếu cần thu theo phiếu và đơn vị; để trống mã đơn vị nghĩa là chỉ tiêu "
    "chung cho cả phiếu.",
    "7. Đợt khảo sát: mỗi dòng một phiếu trong một đợt gửi; «Các đơn vị» để trống nghĩa là mọi "
    "đơn vị của phiếu. Mọi đợt phải mở trước hạn chót.",
    "",
    "Mã phiếu, mã đơn vị: ghi dạng chữ (ô đã định dạng văn bản) để giữ số 0 ở đầu, ví dụ «01».",
    "Sau khi đợt đầu tiên mở, đợt khảo sát không sửa được nữa.",
)


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _cell(value: Any) -> Any:
    return neutral(value) if isinstance(value, str) else value


def _table(ws: Worksheet, sheet: str, rows: list[dict[str, Any]], rows_formatted: int) -> None:
    headers = r.HEADERS[sheet]
    ws.append(list(headers.values()))
    for cell in ws[1]:
        cell.font = Font(bold=True)
        cell.fill = HEADER_FILL
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    for row in rows:
        ws.append([_cell(row.get(field)) for field in headers])
    fields = list(headers)
    for index, field in enumerate(fields, start=1):
        letter = ws.cell(row=1, column=index).column_letter
        width = 14 if field in CODE_FIELDS else 40 if field in ("text", "text_en", "name") else 24
        ws.column_dimensions[letter].width = width
        if field in CODE_FIELDS:  # "01" stays "01", not the number 1
            for n in range(2, max(rows_formatted, len(rows) + 1) + 1):
                ws.cell(row=n, column=index).number_format = "@"
    ws.freeze_panes = "A2"


def _scales(campaign: Campaign) -> dict[str, str]:
    """Distinct option lists (by content) -> scale name, in order of first use."""
    names: dict[str, str] = {}
    for form in campaign.forms:
        for q in form.questions():
            key = _scale_key(q.options)
            names.setdefault(key, f"Thang {len(names) + 1}")
    return names


def _scale_key(options: list[AnswerOption]) -> str:
    return "|".join(o.model_dump_json() for o in options)


def _settings_rows(campaign: Campaign | None) -> list[dict[str, Any]]:
    c = campaign
    values: dict[str, Any] = {
        "id": c.id if c else "",
        "version": c.version if c else 1,
        "name": c.name if c else "",
        "province": c.province if c else "",
        "year": c.year if c else None,
        "timezone": c.timezone if c else "Asia/Ho_Chi_Minh",
        "deadline": r.local_naive(c.deadline, r.campaign_zone(c.timezone, c.deadline))
        if c
        else None,
        "dedupe_rule": r.DEDUPE_LABELS[c.dedupe_rule if c else DedupeRule.single_by_priority],
        "form_priority": ", ".join(c.form_priority) if c else "",
        "reminder_offsets_days": ", ".join(str(d) for d in c.reminder_offsets_days)
        if c
        else "3, 1",
        "min_report_size": c.min_report_size if c else 10,
        "rounding_places": c.rounding.places if c else 2,
        "rounding_mode": r.ROUNDING_LABELS[c.rounding.mode if c else "ROUND_HALF_UP"],
    }
    for field in r.SETTING_LABELS:
        if field.startswith("report."):
            values[field] = getattr(c.report, field[7:]) if c else None
    return [
        {"item": r.SETTING_LABELS[f], "value": values[f], "note": r.SETTING_NOTES.get(f)}
        for f in r.SETTING_LABELS
    ]


def _lists(wb: Workbook) -> dict[str, str]:
    """The hidden sheet of choices; returns list name -> absolute range for validations."""
    ws = wb.create_sheet(LISTS)
    columns = {
        "kind": list(r.KIND_LABELS.values()),
        "rates": list(r.RATES_LABELS.values()),
        "yes_no": [r.YES, r.NO],
        "dedupe": list(r.DEDUPE_LABELS.values()),
        "rounding": list(r.ROUNDING_LABELS.values()),
    }
    ranges: dict[str, str] = {}
    for index, (name, values) in enumerate(columns.items(), start=1):
        letter = ws.cell(row=1, column=index).column_letter
        for n, value in enumerate(values, start=1):
            ws.cell(row=n, column=index, value=value)
        ranges[name] = f"'{LISTS}'!${letter}$1:${letter}${len(values)}"
    ws.sheet_state = "hidden"
    return ranges


def _validate(ws: Worksheet, formula: str, cells: str, prompt: str) -> None:
    dv = DataValidation(type="list", formula1=formula, allow_blank=True)
    dv.error = f"Chọn một giá trị trong danh sách ({prompt})."
    dv.errorTitle = "Giá trị không hợp lệ"
    dv.showErrorMessage = True
    ws.add_data_validation(dv)
    dv.add(cells)


def build(campaign: Campaign | None) -> bytes:
    """The workbook of `campaign`; None gives the empty template with defaults filled in."""
    wb = Workbook()
    guide = wb.active
    assert guide is not None  # a new workbook always has its first sheet
    guide.title = r.GUIDE
    for line in GUIDE_LINES:
        guide.append([line])
    guide.column_dimensions["A"].width = 120
    guide["A1"].font = Font(bold=True, size=14)

    sheets = {name: wb.create_sheet(name) for name in r.DATA_SHEETS}
    c = campaign
    scales = _scales(c) if c else {}
    n = TEMPLATE_ROWS
    _table(sheets[r.SETTINGS], r.SETTINGS, _settings_rows(c), 0)
    _table(
        sheets[r.UNITS],
        r.UNITS,
        [
            {"code": u.code, "name": u.name, "name_en": u.name_en, "kind": r.KIND_LABELS[u.kind]}
            for u in (c.units if c else [])
        ],
        n,
    )
    _table(
        sheets[r.FORMS],
        r.FORMS,
        [
            {
                "code": f.code,
                "name": f.name,
                "name_en": f.name_en,
                "group": f.group,
                "rates": r.RATES_LABELS[f.rates],
                "respondent_unit_kinds": ", ".join(
                    r.KIND_LABELS[k] for k in f.respondent_unit_kinds
                ),
                "rated_units": ", ".join(f.rated_units),
            }
            for f in (c.forms if c else [])
        ],
        n,
    )
    _table(
        sheets[r.QUESTIONS],
        r.QUESTIONS,
        [
            {
                "form": f.code,
                "criterion": cr.code,
                "criterion_name": cr.name,
                "criterion_name_en": cr.name_en,
                "criterion_points": _number(cr.max_points),
                "id": q.id,
                "text": q.text,
                "text_en": q.text_en,
                "points": _number(q.max_points),
                "required": r.YES if q.required else r.NO,
                "scale": scales[_scale_key(q.options)],
            }
            for f in (c.forms if c else [])
            for cr in f.criteria
            for q in cr.questions
        ],
        n,
    )
    scale_rows: list[dict[str, Any]] = []
    done: set[str] = set()
    for f in c.forms if c else []:
        for q in f.questions():
            key = _scale_key(q.options)
            if key in done:
                continue
            done.add(key)
            scale_rows += [
                {
                    "scale": scales[key],
                    "code": o.code,
                    "label": o.label,
                    "label_en": o.label_en,
                    "weight": None if o.weight is None else _number(o.weight),
                }
                for o in q.options
            ]
    if c is None:  # a starting scale, so a new campaign need not type the usual one
        scale_rows = _default_scale()
    _table(sheets[r.SCALES], r.SCALES, scale_rows, n)
    _table(
        sheets[r.QUOTAS],
        r.QUOTAS,
        [
            {"form": q.form_code, "unit": q.unit_code, "ballots": q.ballots}
            for q in (c.quotas if c else [])
        ],
        n,
    )
    tz = r.campaign_zone(c.timezone, c.deadline) if c else None
    _table(
        sheets[r.WAVES],
        r.WAVES,
        [
            {
                "id": w.id,
                "opens_at": r.local_naive(w.opens_at, tz) if tz else None,
                "form": m.form_code,
                "units": None if m.unit_codes is None else ", ".join(m.unit_codes),
            }
            for w in (c.waves if c else [])
            for m in w.members
        ],
        n,
    )
    for ws, column in ((sheets[r.SETTINGS], "B"), (sheets[r.WAVES], "B")):
        for cell in ws[column][1:]:
            if cell.is_date:
                cell.number_format = r.DATETIME_FORMAT

    ranges = _lists(wb)
    last = f"{n + 1}"
    forms = f"'{r.FORMS}'!$A$2:$A${last}"
    units = f"'{r.UNITS}'!$A$2:$A${last}"
    _validate(sheets[r.UNITS], ranges["kind"], f"D2:D{last}", "loại đơn vị")
    _validate(sheets[r.FORMS], ranges["rates"], f"E2:E{last}", "đánh giá")
    _validate(sheets[r.QUESTIONS], forms, f"A2:A{last}", "mã phiếu")
    _validate(sheets[r.QUESTIONS], ranges["yes_no"], f"J2:J{last}", "bắt buộc")
    _validate(sheets[r.QUOTAS], forms, f"A2:A{last}", "mã phiếu")
    _validate(sheets[r.QUOTAS], units, f"B2:B{last}", "mã đơn vị")
    _validate(sheets[r.WAVES], forms, f"C2:C{last}", "mã phiếu")
    settings = list(r.SETTING_LABELS)
    row_of = {f: i + 2 for i, f in enumerate(settings)}
    _validate(sheets[r.SETTINGS], ranges["dedupe"], f"B{row_of['dedupe_rule']}", "quy tắc")
    _validate(sheets[r.SETTINGS], ranges["rounding"], f"B{row_of['rounding_mode']}", "làm tròn")
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _default_scale() -> list[dict[str, Any]]:
    return [
        {"scale": "Thang 1", "code": code, "label": vi, "label_en": en, "weight": weight}
        for code, vi, en, weight in (
            ("very_good", "Rất tốt", "Very good", 1),
            ("good", "Tốt", "Good", 0.75),
            ("fair", "Chưa tốt", "Not yet good", 0.25),
            ("poor", "Kém", "Poor", 0),
            ("dont_know", "Không biết", "Don't know", None),
        )
    ]


def template() -> bytes:
    """The empty workbook offered for download: headers, defaults, lists and the guide."""
    return build(None)
