"""A new campaign for another province built through the workbook pages in Chromium
(docs/architecture.md, decision 38): download the template, fill it with openpyxl as an
official would in Excel, upload, read the problems, fix, preview, publish; no YAML, no CLI."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import openpyxl

from tests.browser.conftest import Site
from tests.browser.test_pages import check_page, login
from tests.waiting import eventually

NEW = "angiang-2031"


def put(ws: Any, values: list[object]) -> None:
    """Type a row into the first empty row, as in Excel (the template pre-formats its rows)."""
    row = next(n for n in range(2, ws.max_row + 2) if ws.cell(row=n, column=1).value is None)
    for col, value in enumerate(values, start=1):
        ws.cell(row=row, column=col, value=value)


def fill(template: bytes, *, deadline: datetime) -> bytes:
    """What an official types into the template: two units, one form, quotas, one wave."""
    wb = openpyxl.load_workbook(io.BytesIO(template))
    settings = wb["Cài đặt"]
    values = {
        "Mã đợt điều tra": NEW,
        "Tên đợt điều tra": "Điều tra xã hội học Chỉ số CCHC tỉnh An Giang năm 2031",
        "Tỉnh": "An Giang",
        "Năm": 2031,
        "Hạn chót trả lời phiếu": deadline,
        "Cơ quan chủ quản (đầu báo cáo)": "UBND TỈNH AN GIANG",
    }
    for row in settings.iter_rows(min_row=2):
        if row[0].value in values:
            row[1].value = values[row[0].value]
    put(wb["Đơn vị"], ["H-CHODOC", "Thành phố Châu Đốc", None, "UBND cấp huyện"])
    put(wb["Đơn vị"], ["H-TANCHAU", "Thị xã Tân Châu", None, "UBND cấp huyện"])
    form = ["06", "Phiếu CCVC UBND cấp huyện", None, "staff", "Đơn vị của người trả lời"]
    put(wb["Phiếu"], [*form, "UBND cấp huyện", None])
    q = wb["Tiêu chí và câu hỏi"]
    lead1 = ["LEAD1", "Sự quan tâm của lãnh đạo", None, 1, "Có", "Thang 1"]
    put(q, ["06", "LEAD", "Chỉ đạo, điều hành", None, 2, *lead1])
    lead2 = ["LEAD2", "Kế hoạch cải cách hành chính", None, 1, "Có", "Thang 1"]
    put(q, ["06", "LEAD", None, None, None, *lead2])  # the criterion's row above holds it
    put(wb["Chỉ tiêu"], ["06", "H-CHODOC", 40])
    put(wb["Chỉ tiêu"], ["06", "H-TANCHAU", "ba mươi"])  # a mistake the page will point at
    put(wb["Đợt khảo sát"], ["w1", datetime(2031, 9, 20, 7, 0), "06", None])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


async def test_a_new_province_campaign_through_the_pages(
    page: Any, site: Site, tmp_path: Path
) -> None:
    await page.goto(f"{site.identity}/login")
    await login(page, "admin-bt", site.users["admin-bt"])
    await page.goto(f"{site.survey}/admin/campaigns")
    assert "Thiết lập đợt khảo sát" in await page.inner_text("main")
    await check_page(page, site, "admin-campaigns")

    async with page.expect_download() as info:
        await page.get_by_role("link", name="Tải sổ tay mẫu (.xlsx)").click()
    download = await info.value
    saved = tmp_path / "mau.xlsx"
    await download.save_as(saved)
    template = saved.read_bytes()  # noqa: ASYNC240  # a small local file, in a test
    assert "Hướng dẫn" in openpyxl.load_workbook(io.BytesIO(template)).sheetnames

    faulty = tmp_path / "an-giang-loi.xlsx"
    faulty.write_bytes(fill(template, deadline=datetime(2031, 10, 6, 23, 59, 59)))
    await page.set_input_files("#wb-file", str(faulty))
    async with page.expect_navigation():
        await page.get_by_role("button", name="Tải lên và xem trước").click()
    problems = await page.inner_text("#problems")
    assert "Chỉ tiêu\t3\tSố phiếu\t«ba mươi» không phải là số" in problems, problems
    await check_page(page, site, "campaign-problems")

    wb = openpyxl.load_workbook(faulty)
    wb["Chỉ tiêu"]["C3"].value = 30
    fixed = tmp_path / "an-giang.xlsx"
    wb.save(fixed)
    await page.goto(f"{site.survey}/admin/campaigns")
    await page.set_input_files("#wb-file", str(fixed))
    async with page.expect_navigation():
        await page.get_by_role("button", name="Tải lên và xem trước").click()
    assert "/admin/campaigns/drafts/" in page.url
    assert await page.inner_text("#quota-total") == "70"
    assert "06/10/2031 23:59" in await page.inner_text("#deadline")
    assert "Mỗi người chỉ trả lời một phiếu" in await page.inner_text("#dedupe")
    assert "20/09/2031 07:00" in await page.inner_text("#waves")
    await check_page(page, site, "campaign-preview")

    async with page.expect_navigation():
        await page.get_by_role("button", name="Công bố đợt khảo sát").click()
    assert f"Đã công bố đợt khảo sát {NEW}" in await page.inner_text("main")

    # On the log: the survey API lists it once the projection has applied it.
    cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
    async with httpx.AsyncClient(base_url=site.survey, cookies=cookies, timeout=10) as http:

        async def listed() -> bool:
            page_html = (await http.get("/admin/campaigns")).text
            return NEW in page_html and "An Giang năm 2031" in page_html

        await eventually(listed)
        exported = await http.get(f"/admin/campaigns/workbook.xlsx?campaign={NEW}")
    assert exported.status_code == 200
    units = openpyxl.load_workbook(io.BytesIO(exported.content))["Đơn vị"]
    assert [c.value for c in units["A"] if c.value][1:] == ["H-CHODOC", "H-TANCHAU"]
