"""A small campaign shaped like the 2023 Sóc Trăng one, and writers for test spreadsheets.

Files are generated into tmp_path by each test (openpyxl / csv), so no binary fixtures are
committed and every golden file is readable in the test that uses it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from contracts.campaign import (
    AnswerOption,
    Campaign,
    Criterion,
    DedupeRule,
    Form,
    Question,
    Unit,
    UnitKind,
    Wave,
    WaveMember,
)

VN_HEADERS = ["STT", "Họ và tên", "Email", "Mã đơn vị", "Phiếu", "Số điện thoại"]
Rows = Sequence[Sequence[object]]


def _criteria(code: str) -> list[Criterion]:
    q = Question(
        id=f"{code}q1",
        text="Mức độ hài lòng?",
        max_points=Decimal(1),
        options=[
            AnswerOption(code="a", label="Tốt", weight=Decimal(1)),
            AnswerOption(code="b", label="Không tốt", weight=Decimal(0)),
            AnswerOption(code="c", label="Không biết"),
        ],
    )
    return [Criterion(code=f"c{code}", name="Tiêu chí", max_points=Decimal(1), questions=[q])]


def make_campaign(rule: DedupeRule = DedupeRule.single_by_priority) -> Campaign:
    units = [
        Unit(code="HCT", name="Huyện Châu Thành", kind=UnitKind.district),
        Unit(code="SNV", name="Sở Nội vụ", kind=UnitKind.department),
        Unit(code="STC", name="Sở Tài chính", kind=UnitKind.department),
        Unit(code="CTH", name="Cục Thuế", kind=UnitKind.central_agency),
    ]
    spec = [
        ("01", "provincial_delegate", "many_units", []),
        ("02", "district_delegate", "own_unit", [UnitKind.district]),
        ("03", "department_staff", "own_unit", [UnitKind.department]),
        ("04", "public_service_unit_staff", "own_unit", [UnitKind.public_service_unit]),
        ("05", "central_agency_staff", "own_unit", [UnitKind.central_agency]),
        ("06", "district_staff", "own_unit", [UnitKind.district]),
    ]
    forms = [
        Form(
            code=code,
            name=f"Phiếu số {code}",
            group=group,
            rates=rates,
            respondent_unit_kinds=kinds,
            rated_units=[u.code for u in units] if rates == "many_units" else [],
            criteria=_criteria(code),
        )
        for code, group, rates, kinds in spec
    ]
    opens = datetime(2023, 9, 21, 7, tzinfo=timezone(timedelta(hours=7)))
    return Campaign(
        id="soctrang-2023",
        name="Chỉ số CCHC 2023",
        province="Sóc Trăng",
        year=2023,
        units=units,
        forms=forms,
        waves=[Wave(id="w1", opens_at=opens, members=[WaveMember(form_code="01")])],
        deadline=opens + timedelta(days=15),
        dedupe_rule=rule,
        form_priority=["01", "02", "03", "04", "05", "06"],
    )


@pytest.fixture
def campaign() -> Campaign:
    return make_campaign()


@pytest.fixture
def campaign_2021() -> Campaign:
    return make_campaign(DedupeRule.one_per_group)


def _fill(ws, rows: Rows) -> None:
    for r, values in enumerate(rows, start=1):
        for c, value in enumerate(values, start=1):
            cell = ws.cell(row=r, column=c, value=value)
            if isinstance(value, str) and value.startswith("="):
                cell.data_type = "s"  # store the text itself, as a pasted value would be


@pytest.fixture
def write_xlsx(tmp_path: Path) -> Callable[..., bytes]:
    """rows (one sheet) or sheets={title: rows}; returns the file's bytes."""

    def write(
        rows: Rows | None = None, *, sheets: dict[str, Rows] | None = None, name: str = "ds.xlsx"
    ) -> bytes:
        wb = openpyxl.Workbook()
        wb.remove(wb.active)
        for title, sheet_rows in (sheets or {"Danh sách": rows or []}).items():
            _fill(wb.create_sheet(title), sheet_rows)
        path = tmp_path / name
        wb.save(path)
        return path.read_bytes()

    return write


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[..., bytes]:
    def write(
        rows: Rows, *, delimiter: str = ",", bom: bool = False, name: str = "ds.csv"
    ) -> bytes:
        buf = io.StringIO(newline="")
        csv.writer(buf, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
        path = tmp_path / name
        path.write_bytes(("\ufeff" if bom else "").encode() + buf.getvalue().encode())
        return path.read_bytes()

    return write
