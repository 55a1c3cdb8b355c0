"""Respondent lists for the demo, as the units would send them: an Excel workbook per group.

Deterministic (seeded) so two demo runs register the same people. A few provincial delegates
also appear on their agency's staff list, so the import shows the 2023 dedupe rule at work.
"""

from __future__ import annotations

import io
import math
import random
import unicodedata
import zlib
from dataclasses import dataclass

from openpyxl import Workbook

from contracts.campaign import Campaign, UnitKind

FAMILY = "Nguyễn Trần Lê Phạm Huỳnh Hoàng Phan Vũ Võ Đặng Bùi Đỗ Hồ Ngô Dương Lý Thạch Sơn Lâm Kim Danh Trương Quách Tăng".split()  # noqa: E501
MIDDLE = "Văn Thị Minh Ngọc Hoàng Thanh Quốc Hữu Kim Thu Bảo Đức".split()
GIVEN = "An Bình Châu Dũng Hà Hải Hạnh Hiếu Hùng Khoa Lan Linh Long Mai Nam Ngân Phúc Phương Quân Sơn Tâm Thảo Trang Tuấn Vy Yến Sóc Sa Ri Kha Thy Nhựt Tài Lộc".split()  # noqa: E501
DOMAIN = "soctrang.example.vn"
HEADERS = ["STT", "Họ và tên", "Email", "Đơn vị", "Phiếu", "Số điện thoại"]
SHEETS = {
    "01": "ĐB HĐND tỉnh",
    "02": "ĐB HĐND huyện",
    "03": "CCVC sở ngành",
    "04": "CCVC ĐVSN",
    "05": "CCVC cơ quan TW",
    "06": "CBCC huyện-xã",
}


@dataclass(frozen=True)
class Person:
    full_name: str
    email: str
    unit_code: str | None
    form_code: str


def _ascii(text: str) -> str:
    text = text.replace("Đ", "D").replace("đ", "d")
    return "".join(
        c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
    ).lower()


def weak_units(campaign: Campaign, share: float = 0.1) -> set[str]:
    """The units whose focal points do not chase their people (about one in ten, stable):
    their lists hold just the quota and fewer of their people answer, so they fall short."""
    codes = sorted(u.code for u in campaign.units)
    ranked = sorted(codes, key=lambda c: zlib.crc32(f"weak:{c}".encode()))
    return set(ranked[: max(1, round(len(codes) * share))])


def listed(quota: int, unit_code: str | None, weak: set[str], spare: float = 0.15) -> int:
    """How many people a unit lists for a quota: like real units, a few more than asked
    (so one who never answers does not cost the unit points), except the weak ones."""
    if unit_code in weak:
        return quota
    return quota + max(1, math.ceil(quota * spare))


def people(campaign: Campaign, seed: int = 2023) -> list[Person]:
    """Each quota's sample, plus the spares most units add (decision 40)."""
    rnd = random.Random(seed)
    weak = weak_units(campaign)
    out: list[Person] = []
    n = 0
    for quota in campaign.quotas:
        for _ in range(listed(quota.ballots, quota.unit_code, weak)):
            n += 1
            name = f"{rnd.choice(FAMILY)} {rnd.choice(MIDDLE)} {rnd.choice(GIVEN)}"
            local = _ascii(name).replace(" ", ".")
            out.append(Person(name, f"{local}.{n:04d}@{DOMAIN}", quota.unit_code, quota.form_code))
    return out


def workbook(campaign: Campaign, seed: int = 2023, dual_delegates: int = 5) -> bytes:
    """One sheet per respondent group; `dual_delegates` delegates also sit on a staff list."""
    rnd = random.Random(seed + 1)
    everyone = people(campaign, seed)
    by_form: dict[str, list[Person]] = {}
    for p in everyone:
        by_form.setdefault(p.form_code, []).append(p)
    departments = [u.code for u in campaign.units if u.kind == UnitKind.department]
    for p in rnd.sample(by_form.get("01", []), min(dual_delegates, len(by_form.get("01", [])))):
        by_form.setdefault("03", []).append(
            Person(p.full_name, p.email, rnd.choice(departments), "03")
        )
    wb = Workbook()
    wb.remove(wb.active)
    names = {u.code: u.name for u in campaign.units}
    for form_code, rows in sorted(by_form.items()):
        ws = wb.create_sheet(SHEETS.get(form_code, form_code))
        ws.append([f"DANH SÁCH NGƯỜI THAM GIA KHẢO SÁT — PHIẾU {form_code}"])
        ws.append(HEADERS)
        for i, p in enumerate(rows, 1):
            phone = f"09{rnd.randrange(10**8):08d}"
            ws.append([i, p.full_name, p.email, names.get(p.unit_code or "", ""), form_code, phone])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
