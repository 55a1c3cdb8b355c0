"""The campaign workbook without servers: round trip, every kind of problem located, clone,
preview, and the bounded child reader (docs/architecture.md, decision 38)."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

import openpyxl
import pytest
from openpyxl.workbook import Workbook

from contracts.campaign import Campaign
from services.survey.campaign_file import load_shipped
from services.survey.workbook import rules as r
from services.survey.workbook.export import build, template
from services.survey.workbook.preview import clone, preview
from services.survey.workbook.read import read_workbook
from services.survey.workbook.rules import Problem
from services.survey.workbook.worker import read_off_loop

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def soctrang() -> Campaign:
    return load_shipped("soctrang-2023")


@pytest.fixture(scope="module")
def soctrang_xlsx(soctrang: Campaign) -> bytes:
    return build(soctrang)


def edited(content: bytes, change: Callable[[Workbook], None]) -> bytes:
    wb = openpyxl.load_workbook(io.BytesIO(content))
    change(wb)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def problems_of(content: bytes) -> list[Problem]:
    campaign, problems = read_workbook(content)
    assert campaign is None
    assert problems
    return problems


def find(problems: list[Problem], sheet: str, row: int, column: str) -> Problem:
    hits = [p for p in problems if (p.sheet, p.row, p.column) == (sheet, row, column)]
    assert hits, f"nothing at {sheet}/{row}/{column}: {problems}"
    return hits[0]


def row_of(wb: Workbook, sheet: str, first_cell: str, column: int = 1) -> int:
    ws = wb[sheet]
    for row in ws.iter_rows(min_row=2):
        if row[column - 1].value == first_cell:
            return row[0].row
    raise AssertionError(first_cell)


def header_col(wb: Workbook, sheet: str, field: str) -> int:
    label = r.HEADERS[sheet][field]
    return next(c.column for c in wb[sheet][1] if c.value == label)


# --- round trip ----------------------------------------------------------------------------
def test_soctrang_2023_round_trip_is_the_identical_campaign(
    soctrang: Campaign, soctrang_xlsx: bytes
) -> None:
    campaign, problems = read_workbook(soctrang_xlsx)
    assert problems == []
    assert campaign == soctrang
    assert campaign.model_dump_json() == soctrang.model_dump_json()
    assert campaign.total_quota() == 2085


def test_workbook_has_vietnamese_sheets_headers_and_validation_lists(soctrang_xlsx: bytes) -> None:
    wb = openpyxl.load_workbook(io.BytesIO(soctrang_xlsx))
    for sheet in (r.GUIDE, *r.DATA_SHEETS):
        assert sheet in wb.sheetnames
    assert [c.value for c in wb[r.QUOTAS][1]] == ["Mã phiếu", "Mã đơn vị", "Số phiếu"]
    units = wb[r.UNITS]
    assert units.data_validations.dataValidation, "kind is a list to pick from"
    assert wb[r.FORMS]["A2"].value == "01"  # a text cell: the leading zero stays
    assert wb[r.FORMS]["A2"].number_format == "@"


def test_the_empty_template_says_what_to_fill_in() -> None:
    wb = openpyxl.load_workbook(io.BytesIO(template()))
    assert wb[r.SCALES]["B2"].value == "very_good"  # the starting scale sits at the top
    problems = problems_of(template())
    missing = {p.message_vi for p in problems if p.sheet == r.SETTINGS}
    assert "Chưa ghi «Mã đợt điều tra»." in missing
    assert "Chưa ghi «Hạn chót trả lời phiếu»." in missing
    find(problems, r.UNITS, 1, "")  # at least one unit


# --- problems, by sheet, row and column ------------------------------------------------------
def test_missing_sheet_and_missing_header(soctrang_xlsx: bytes) -> None:
    def change(wb: Workbook) -> None:
        del wb[r.QUOTAS]
        wb[r.UNITS].cell(row=1, column=header_col(wb, r.UNITS, "kind")).value = "Loại"

    problems = problems_of(edited(soctrang_xlsx, change))
    assert find(problems, r.QUOTAS, 0, "").message_vi.startswith("Thiếu trang «Chỉ tiêu»")
    assert find(problems, r.UNITS, 1, "Loại đơn vị").message_vi == (
        "Thiếu cột «Loại đơn vị» ở dòng tiêu đề."
    )


def test_bad_number_unknown_unit_and_duplicate_quota(soctrang_xlsx: bytes) -> None:
    rows: dict[str, int] = {}

    def change(wb: Workbook) -> None:
        ws = wb[r.QUOTAS]
        rows["bad"] = row_of(wb, r.QUOTAS, "BQLDA1", column=2)
        ws.cell(row=rows["bad"], column=3).value = "hai mươi"
        rows["unknown"] = row_of(wb, r.QUOTAS, "CDCD", column=2)
        ws.cell(row=rows["unknown"], column=2).value = "KHONG-CO"
        rows["dup"] = row_of(wb, r.QUOTAS, "CDN", column=2)
        ws.cell(row=rows["dup"], column=2).value = "BQLDA2"

    problems = problems_of(edited(soctrang_xlsx, change))
    assert "không phải là số" in find(problems, r.QUOTAS, rows["bad"], "Số phiếu").message_vi
    at_bad = [p for p in problems if (p.sheet, p.row) == (r.QUOTAS, rows["bad"])]
    assert len(at_bad) == 1, at_bad  # one problem per cell, not "not a number" and "empty"
    assert find(problems, r.QUOTAS, rows["unknown"], "Mã đơn vị").message_vi == (
        "«KHONG-CO» không có trong trang «Đơn vị»."
    )
    assert "trùng với dòng" in find(problems, r.QUOTAS, rows["dup"], "Mã đơn vị").message_vi


def test_duplicate_unit_and_question_ids(soctrang_xlsx: bytes) -> None:
    def change(wb: Workbook) -> None:
        wb[r.UNITS]["A3"].value = wb[r.UNITS]["A2"].value
        q = wb[r.QUESTIONS]
        q.cell(row=3, column=header_col(wb, r.QUESTIONS, "id")).value = q.cell(
            row=2, column=header_col(wb, r.QUESTIONS, "id")
        ).value

    problems = problems_of(edited(soctrang_xlsx, change))
    assert find(problems, r.UNITS, 3, "Mã đơn vị").message_vi == "«H-CHAUTHANH» trùng với dòng 2."
    assert "trùng với dòng 2" in find(problems, r.QUESTIONS, 3, "Mã câu hỏi").message_vi


def test_bad_dates_and_waves_after_the_deadline(soctrang_xlsx: bytes) -> None:
    rows: dict[str, int] = {}

    def change(wb: Workbook) -> None:
        s = wb[r.SETTINGS]
        rows["deadline"] = row_of(wb, r.SETTINGS, "Hạn chót trả lời phiếu")
        s.cell(row=rows["deadline"], column=2).value = datetime(2023, 9, 30, 23, 59, 59)
        w = wb[r.WAVES]
        rows["bad"] = row_of(wb, r.WAVES, "w2-0922")
        w.cell(row=rows["bad"], column=2).value = "32/09/2023 07:00"
        rows["late"] = row_of(wb, r.WAVES, "w8-1002")
        # w8 opens on 02/10, after the deadline moved to 30/09

    problems = problems_of(edited(soctrang_xlsx, change))
    bad = find(problems, r.WAVES, rows["bad"], "Thời điểm mở")
    assert "không phải ngày giờ" in bad.message_vi
    late = find(problems, r.WAVES, rows["late"], "Thời điểm mở")
    assert late.message_vi == "Đợt «w8-1002» mở sau hạn chót trả lời phiếu."


def test_points_that_do_not_add_up_and_an_unknown_choice(soctrang_xlsx: bytes) -> None:
    def change(wb: Workbook) -> None:
        q = wb[r.QUESTIONS]
        q.cell(row=2, column=header_col(wb, r.QUESTIONS, "points")).value = 1.5
        wb[r.UNITS].cell(row=4, column=header_col(wb, r.UNITS, "kind")).value = "Xã"
        wb[r.QUESTIONS].cell(row=5, column=header_col(wb, r.QUESTIONS, "scale")).value = "Thang 99"

    problems = problems_of(edited(soctrang_xlsx, change))
    sums = find(problems, r.QUESTIONS, 2, "Điểm tối đa của tiêu chí")
    assert "tổng điểm các câu hỏi là 2,5, không bằng 2" in sums.message_vi
    assert "không phải một lựa chọn" in find(problems, r.UNITS, 4, "Loại đơn vị").message_vi
    assert find(problems, r.QUESTIONS, 5, "Thang trả lời").message_vi == (
        "«Thang 99» không có trong trang «Phương án trả lời»."
    )


def test_model_rules_are_said_in_vietnamese_on_their_cell(soctrang_xlsx: bytes) -> None:
    rows: dict[str, int] = {}

    def change(wb: Workbook) -> None:
        rows["id"] = row_of(wb, r.SETTINGS, "Mã đợt điều tra")
        wb[r.SETTINGS].cell(row=rows["id"], column=2).value = "Sóc Trăng 2023"
        wb[r.UNITS]["C2"].value = "x" * 600  # the English name: too long

    problems = problems_of(edited(soctrang_xlsx, change))
    assert "chữ thường không dấu" in find(problems, r.SETTINGS, rows["id"], "Giá trị").message_vi
    assert find(problems, r.UNITS, 2, "Tên tiếng Anh").message_vi == "Dài quá 500 ký tự."
    assert all(p.message_vi and "should" not in p.message_vi for p in problems)


def test_not_a_workbook_is_one_problem() -> None:
    problems = problems_of(b"PK\x03\x04 not really a zip")
    assert len(problems) == 1 and "không phải là bảng tính" in problems[0].message_vi


# --- clone and preview ---------------------------------------------------------------------
def test_clone_moves_every_date_a_year_and_renames(soctrang: Campaign) -> None:
    copy = clone(soctrang, "soctrang-2024", 2024)
    assert copy.id == "soctrang-2024" and copy.year == 2024 and copy.version == 1
    assert "2024" in copy.name and "2023" not in copy.name
    assert copy.deadline.isoformat() == "2024-10-06T23:59:59+07:00"
    assert [w.opens_at.year for w in copy.waves] == [2024] * len(soctrang.waves)
    assert copy.units == soctrang.units and copy.quotas == soctrang.quotas


def test_preview_quota_table_totals_and_timeline(soctrang: Campaign) -> None:
    view = preview(soctrang)
    assert view.total == 2085
    assert sum(view.form_totals) == 2085
    assert view.form_wide[0] == 51  # form 01's one form-wide quota
    assert sum(row.total for row in view.rows) + 51 == 2085
    assert view.waves[0].percent == 0 and all(0 <= w.percent < 100 for w in view.waves)
    assert "thứ tự ưu tiên cao nhất" in view.dedupe_vi
    assert view.deadline == datetime(2023, 10, 6, 23, 59, 59)


def test_an_unknown_time_zone_still_exports_and_is_reported_on_read(soctrang: Campaign) -> None:
    odd = soctrang.model_copy(update={"timezone": "Mars/Olympus"})
    assert preview(odd).deadline == datetime(2023, 10, 6, 23, 59, 59)  # the deadline's offset
    problems = problems_of(build(odd))
    assert any("Mars/Olympus" in p.message_vi for p in problems if p.sheet == r.SETTINGS)


def test_decimal_comma_is_read_as_a_number() -> None:
    assert r.decimal("0,5") == Decimal("0.5")
    assert r.decimal(0.75) == Decimal("0.75")


# --- the bounded child ---------------------------------------------------------------------
async def test_the_child_reads_the_workbook_off_the_loop(
    soctrang: Campaign, soctrang_xlsx: bytes
) -> None:
    campaign, problems = await read_off_loop(soctrang_xlsx)
    assert problems == [] and campaign == soctrang
    campaign, problems = await read_off_loop(b"garbage")
    assert campaign is None and "không phải là bảng tính" in problems[0].message_vi
