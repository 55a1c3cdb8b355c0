"""The respondent import: good lists, each kind of broken list, dedupe rules, re-import."""

from __future__ import annotations

import re

import pytest

from services.identity import importer_read
from services.identity.importer import (
    ImportPlan,
    diff_against,
    parse_import,
)
from tests.identity.conftest import VN_HEADERS, make_campaign

pytestmark = pytest.mark.unit

GOOD = [
    VN_HEADERS,
    [1, "Nguyễn Văn An", "An.Nguyen@snv.soctrang.gov.vn", "SNV", "03", "0912 345 678"],
    [2, "Trần Thị Bình", "binh.tt@cucthue.gov.vn", "CTH", 5, 912345679],
    [3, "Lê Văn Cường", "cuong@chauthanh.gov.vn", "Huyện Châu Thành", "Phiếu số 06", None],
    [4, "Phạm Thị Dung", "dung.dbt@gmail.com", None, "01", None],
    [5, "Huỳnh Văn Em", "em.dbh@gmail.com", "HCT", "2", None],
]


def only(plan: ImportPlan) -> tuple[int, str, str]:
    assert len(plan.problems) == 1, plan.problems
    p = plan.problems[0]
    assert p.message_vi and p.message_en
    return p.row, p.column, p.code


def assert_refused(plan: ImportPlan) -> None:
    assert not plan.ok
    assert plan.importable == []
    with pytest.raises(ValueError):
        diff_against(plan, {})


# --- good files ----------------------------------------------------------------------------
def test_good_xlsx_with_vietnamese_headers(write_xlsx, campaign):
    plan = parse_import(write_xlsx(GOOD), "danh-sach.xlsx", campaign)
    assert plan.ok, plan.problems
    assert len(plan.importable) == 5
    by_email = {r.email: r for r in plan.registrations}
    an = by_email["an.nguyen@snv.soctrang.gov.vn"]  # e-mail normalised to lowercase
    assert (an.form_code, an.unit_code, an.phone, an.full_name) == (
        "03",
        "SNV",
        "0912345678",
        "Nguyễn Văn An",
    )
    assert by_email["binh.tt@cucthue.gov.vn"].form_code == "05"  # numeric cell 5 -> "05"
    assert by_email["binh.tt@cucthue.gov.vn"].phone == "0912345679"  # leading zero restored
    assert by_email["cuong@chauthanh.gov.vn"].unit_code == "HCT"  # matched by unit name
    assert by_email["dung.dbt@gmail.com"].unit_code is None  # form 01: no unit
    assert by_email["em.dbh@gmail.com"].form_code == "02"
    for r in plan.registrations:
        assert re.fullmatch(r"r-[0-9a-f]{16}", r.respondent_id)
        assert re.fullmatch(r"[a-z0-9]+-[0-9a-f]{6}", r.username)
        r.to_event()  # valid against the RespondentRegistered contract
    assert an.username.startswith("annguyen-")
    assert len({r.username for r in plan.registrations}) == 5


def test_csv_with_bom_semicolons_and_role_flags(write_csv, campaign):
    rows = [
        ["Họ tên", "Địa chỉ email", "Đơn vị", "Mẫu phiếu", "Đại biểu HĐND tỉnh", "Lãnh đạo"],
        ["Võ Văn Giàu", "giau@stc.gov.vn", "Sở Tài chính", "", "", "x"],
        ["Đặng Thị Hoa", "hoa@gmail.com", "", "", "có", ""],
        ["Mai Văn Khoa", "khoa@snv.gov.vn", "snv", "3", "", "0"],
    ]
    plan = parse_import(write_csv(rows, delimiter=";", bom=True), "ds.csv", campaign)
    assert plan.ok, plan.problems
    got = {r.email: (r.form_code, r.unit_code, r.roles) for r in plan.registrations}
    assert got == {
        "giau@stc.gov.vn": ("03", "STC", ["leader"]),
        "hoa@gmail.com": ("01", None, ["provincial_delegate"]),
        "khoa@snv.gov.vn": ("03", "SNV", ["department_staff"]),
    }


def test_english_headers_and_title_rows_keep_spreadsheet_row_numbers(write_xlsx, campaign):
    rows = [
        ["DANH SÁCH NGƯỜI THAM GIA KHẢO SÁT"],
        [],
        ["full_name", "email", "unit_code", "form", "national_id"],
        ["A", "a@x.vn", "SNV", "03", "094123456789"],
        ["B", "not-an-email", "SNV", "03", None],
    ]
    plan = parse_import(write_xlsx(rows), "x.xlsx", campaign)
    assert only(plan) == (5, "email", "bad_email")


# --- broken files: exact row and column, nothing importable --------------------------------
def _with_row(row: list[object]) -> list[list[object]]:
    return [VN_HEADERS, GOOD[1], row]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (_with_row([2, "Bình", "binh@@x.vn", "SNV", "03"]), (3, "Email", "bad_email")),
        (_with_row([2, "Bình", "binh@x.vn", "SYT", "03"]), (3, "Mã đơn vị", "unknown_unit")),
        (
            _with_row([2, "Bình", "binh@x.vn", "HCT", "03"]),
            (3, "Phiếu", "form_not_allowed_for_unit"),
        ),
        (_with_row([2, "  ", "binh@x.vn", "SNV", "03"]), (3, "Họ và tên", "missing_name")),
        (_with_row([2, "Bình", "binh@x.vn", "SNV", "09"]), (3, "Phiếu", "unknown_form")),
        (
            _with_row([2, "Bình", GOOD[1][2].upper(), "SNV", "3"]),
            (3, "Email", "duplicate_row"),
        ),
        (
            _with_row([2, '=HYPERLINK("http://evil","Bấm")', "binh@x.vn", "SNV", "03"]),
            (3, "Họ và tên", "formula_injection"),
        ),
        (
            [["Họ và tên", "Mã đơn vị", "Phiếu"], ["Bình", "SNV", "03"]],
            (1, "Email", "missing_column"),
        ),
    ],
    ids=[
        "bad-email",
        "unknown-unit",
        "form-not-for-unit",
        "missing-name",
        "unknown-form",
        "duplicate-row",
        "formula",
        "missing-column",
    ],
)
def test_broken_xlsx_reports_row_and_column(write_xlsx, campaign, rows, expected):
    plan = parse_import(write_xlsx(rows), "ds.xlsx", campaign)
    assert only(plan) == expected
    assert_refused(plan)


def test_formula_injection_in_csv(write_csv, campaign):
    rows = [["Họ và tên", "Email", "Đơn vị", "Phiếu"], ["A", "a@x.vn", "@SUM(A1:A9)", "03"]]
    plan = parse_import(write_csv(rows), "ds.csv", campaign)
    assert only(plan) == (2, "Đơn vị", "formula_injection")
    assert_refused(plan)


def test_every_problem_is_reported_not_just_the_first(write_xlsx, campaign):
    rows = [
        VN_HEADERS,
        [1, "", "bad", "SYT", "03"],
        [2, "Ok", "ok@x.vn", "SNV", "03"],
        [3, "Ok2", "ok2@x.vn", "HCT", "05"],
    ]
    plan = parse_import(write_xlsx(rows), "ds.xlsx", campaign)
    assert [(p.row, p.column, p.code) for p in plan.problems] == [
        (2, "Họ và tên", "missing_name"),
        (2, "Email", "bad_email"),
        (2, "Mã đơn vị", "unknown_unit"),
        (4, "Phiếu", "form_not_allowed_for_unit"),
    ]
    assert_refused(plan)


def test_broken_zip_is_one_clear_error(campaign):
    plan = parse_import(b"PK\x03\x04 this is not really a workbook", "ds.xlsx", campaign)
    assert only(plan) == (1, "", "not_xlsx")
    assert_refused(plan)


def test_csv_renamed_to_xlsx_is_refused(write_csv, campaign):
    plan = parse_import(write_csv(GOOD), "ds.xlsx", campaign)
    assert only(plan)[2] == "not_xlsx"


def test_too_many_rows(write_csv, campaign):
    rows = [VN_HEADERS] + [
        [i, f"Người {i}", f"u{i}@x.vn", "SNV", "03"] for i in range(importer_read.MAX_ROWS + 1)
    ]
    plan = parse_import(write_csv(rows), "ds.csv", campaign)
    assert only(plan) == (1, "", "too_many_rows")
    assert_refused(plan)


def test_too_many_rows_xlsx(write_xlsx, campaign, monkeypatch):
    monkeypatch.setattr(importer_read, "MAX_ROWS", 5)
    rows = [VN_HEADERS] + [[i, f"N{i}", f"u{i}@x.vn", "SNV", "03"] for i in range(6)]
    assert only(parse_import(write_xlsx(rows), "ds.xlsx", campaign))[2] == "too_many_rows"


def test_file_too_large(campaign):
    plan = parse_import(b"a" * (importer_read.MAX_BYTES + 1), "ds.csv", campaign)
    assert only(plan)[2] == "file_too_large"


def test_csv_not_utf8(campaign):
    plan = parse_import("Họ và tên,Email\n".encode("utf-16"), "ds.csv", campaign)
    assert only(plan)[2] == "bad_encoding"


# --- dedupe ---------------------------------------------------------------------------------
def three_lists() -> dict[str, list[list[object]]]:
    """The same person in the provincial, district delegate and staff lists."""
    return {
        "ĐB HĐND tỉnh": [
            ["Họ và tên", "Email", "Phiếu"],
            ["Nguyễn Văn Tư", "tu.nv@snv.gov.vn", "01"],
            ["Lý Thị Năm", "nam@gmail.com", "01"],
        ],
        "ĐB HĐND huyện": [
            ["Họ và tên", "Email", "Mã đơn vị", "Phiếu"],
            ["Nguyễn Văn Tư", "Tu.NV@snv.gov.vn", "HCT", "02"],
        ],
        "CCVC": [
            ["Họ và tên", "Email", "Mã đơn vị", "Phiếu", "Số điện thoại"],
            ["Phan Văn Sáu", "sau@snv.gov.vn", "SNV", "03", None],
            ["Nguyễn Văn Tư", "tu.nv@snv.gov.vn", "SNV", "03", "0909000111"],
        ],
    }


def test_single_by_priority_keeps_form_01_and_records_merge(write_xlsx, campaign):
    plan = parse_import(write_xlsx(sheets=three_lists()), "ds.xlsx", campaign)
    assert plan.ok, plan.problems
    tu = [r for r in plan.registrations if r.email == "tu.nv@snv.gov.vn"]
    assert [(r.form_code, r.unit_code) for r in tu] == [("01", None)]
    assert tu[0].phone == "0909000111"  # contact details from the dropped rows are kept
    assert tu[0].roles == ["provincial_delegate", "district_delegate", "department_staff"]
    assert len(plan.registrations) == 3
    [merge] = plan.merges
    assert (merge.email, merge.kept_form, merge.dropped_forms) == (
        "tu.nv@snv.gov.vn",
        "01",
        ["02", "03"],
    )
    assert sorted(zip(merge.sheets, merge.rows, strict=True)) == [
        ("CCVC", 3),
        ("ĐB HĐND huyện", 2),
        ("ĐB HĐND tỉnh", 2),
    ]
    assert "01" in merge.reason_vi and "02, 03" in merge.reason_en


def test_one_per_group_keeps_three_registrations(write_xlsx, campaign_2021):
    plan = parse_import(write_xlsx(sheets=three_lists()), "ds.xlsx", campaign_2021)
    assert plan.ok, plan.problems
    tu = sorted(
        (r.form_code, r.unit_code) for r in plan.registrations if r.email == "tu.nv@snv.gov.vn"
    )
    assert tu == [("01", None), ("02", "HCT"), ("03", "SNV")]
    assert plan.merges == []
    ids = [r.respondent_id for r in plan.registrations]
    assert len(set(ids)) == len(ids) == 5  # Tư x3, Năm, Sáu


def test_flags_on_one_row_and_national_id_link(write_csv, campaign, campaign_2021):
    rows = [
        ["Họ và tên", "Email", "Đơn vị", "CCCD", "Đại biểu HĐND tỉnh", "CCVC"],
        ["Trương Văn Bảy", "bay@snv.gov.vn", "SNV", "094000000007", "x", "x"],
        ["Trương Văn Bảy", "bay.personal@gmail.com", "SNV", "094000000007", "", "1"],
    ]
    content = write_csv(rows)
    plan = parse_import(content, "ds.csv", campaign)
    assert plan.ok, plan.problems
    assert [(r.email, r.form_code) for r in plan.registrations] == [("bay@snv.gov.vn", "01")]
    assert plan.merges[0].dropped_forms == ["03"]
    assert plan.merges[0].rows == [2, 3]

    plan21 = parse_import(content, "ds.csv", campaign_2021)
    assert sorted(r.form_code for r in plan21.registrations) == ["01", "03"]
    # The second 03 (other e-mail, same CCCD) is the same person for the same group.
    assert [(m.kept_form, m.dropped_forms) for m in plan21.merges] == [("03", ["03"])]


def test_district_delegate_flag_needs_a_district(write_csv, campaign):
    rows = [
        ["Họ và tên", "Email", "Đơn vị", "Đại biểu HĐND huyện"],
        ["Chín", "chin@x.vn", "SNV", "x"],
    ]
    plan = parse_import(write_csv(rows), "ds.csv", campaign)
    assert only(plan) == (2, "Đơn vị", "form_not_allowed_for_unit")


# --- re-import ------------------------------------------------------------------------------
def test_reimport_is_idempotent(write_xlsx, campaign):
    first = parse_import(write_xlsx(GOOD), "a.xlsx", campaign)
    again = parse_import(write_xlsx(GOOD, name="b.xlsx"), "b.xlsx", campaign)
    assert [r.respondent_id for r in first.registrations] == [
        r.respondent_id for r in again.registrations
    ]
    assert again.registrations == first.registrations
    existing = {r.respondent_id: r for r in first.registrations}
    diff = diff_against(again, existing)
    assert (len(diff.new), diff.updated, len(diff.unchanged), diff.missing) == (0, [], 5, [])
    # The registered events (no national_id field) compare the same way.
    events = {r.respondent_id: r.to_event() for r in first.registrations}
    assert len(diff_against(again, events).unchanged) == 5
    # Another campaign gives other ids.
    other = make_campaign().model_copy(update={"id": "soctrang-2024"})
    assert parse_import(write_xlsx(GOOD), "a.xlsx", other).registrations[0].respondent_id != (
        first.registrations[0].respondent_id
    )


def test_corrected_file_shows_only_the_differences(write_xlsx, campaign):
    first = parse_import(write_xlsx(GOOD), "a.xlsx", campaign)
    existing = {r.respondent_id: r for r in first.registrations}
    fixed = [list(r) for r in GOOD]
    fixed[2][1] = "Trần Thị Bình (đã sửa)"
    fixed[2][5] = "0988777666"
    del fixed[4]  # Phạm Thị Dung left the list
    fixed.append([6, "Người Mới", "moi@x.vn", "STC", "03", None])
    diff = diff_against(parse_import(write_xlsx(fixed), "a.xlsx", campaign), existing)
    [upd] = diff.updated
    assert upd.respondent.email == "binh.tt@cucthue.gov.vn"
    assert upd.changes == {
        "full_name": ("Trần Thị Bình", "Trần Thị Bình (đã sửa)"),
        "phone": ("0912345679", "0988777666"),
    }
    event = upd.to_event()
    assert event is not None and event.full_name == "Trần Thị Bình (đã sửa)"
    assert [r.email for r in diff.new] == ["moi@x.vn"]
    assert len(diff.unchanged) == 3
    assert diff.missing == [
        r.respondent_id for r in first.registrations if r.email == "dung.dbt@gmail.com"
    ]


def test_header_only_file_is_not_silently_empty(write_xlsx, campaign):
    plan = parse_import(write_xlsx([VN_HEADERS]), "ds.xlsx", campaign)
    assert only(plan) == (1, "", "empty_file")


def test_group_column_may_name_the_group(write_csv, campaign):
    rows = [
        ["Họ và tên", "Email", "Đơn vị", "Nhóm"],
        ["A", "a@x.vn", "", "Đại biểu HĐND tỉnh"],
        ["B", "b@x.vn", "HCT", "district_delegate"],
        ["C", "c@x.vn", "SNV", "Phiếu số 03/CCHC23-CCVC(SN)"],
    ]
    plan = parse_import(write_csv(rows), "ds.csv", campaign)
    assert plan.ok, plan.problems
    assert [(r.form_code, r.unit_code) for r in plan.registrations] == [
        ("01", None),
        ("02", "HCT"),
        ("03", "SNV"),
    ]


@pytest.mark.parametrize("bad", ["Bình\x07", "Bình\x1b[31m", "Bình\x7f", "Bình\u0085x\x01"])
def test_control_characters_are_reported_by_row_and_column(write_csv, campaign, bad):
    """Unstorable text never reaches the log (docs/architecture.md, decision 17)."""
    rows = [["Họ và tên", "Email", "Đơn vị", "Phiếu"], [bad, "binh@x.vn", "SNV", "03"]]
    plan = parse_import(write_csv(rows), "ds.csv", campaign)
    assert only(plan) == (2, "Họ và tên", "bad_characters")
    assert_refused(plan)
