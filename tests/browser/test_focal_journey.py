"""The focal point's (đầu mối) journey on a phone (390×844), and credentials that hold, in
Chromium (issue #16 items 3 and 4, docs/architecture.md, decision 37): log in, see the list
against the quota, the non-respondents, export them, remind one, remind all, meet the daily
limit; the reminded person's invitation password still works and the mail says so."""

from __future__ import annotations

from typing import Any

import httpx
import openpyxl

from tests.browser.conftest import HELPLINE, PEOPLE, PHONE, Site, credentials
from tests.browser.test_pages import check_page, login
from tests.waiting import eventually


async def _mail_to(site: Site, email: str, needle: str) -> str | None:
    async with httpx.AsyncClient(timeout=5) as http:
        for m in (await http.get(f"{site.mail}/api/messages")).json():
            if email in m["to"] and needle in m["text"]:
                return str(m["text"])
    return None


async def test_focal_point_chases_and_the_password_holds(page: Any, site: Site, tmp_path) -> None:
    one, two = PEOPLE[0], PEOPLE[1]  # DEPT-A; nobody answers in this module
    username, password = await credentials(site, one.email)  # the invitation, before anything
    await page.set_viewport_size(PHONE)

    await page.goto(f"{site.identity}/login")
    await login(page, "focal-a", site.users["focal-a"])
    async with page.expect_navigation():
        await page.get_by_role("link", name="Người chưa trả lời phiếu khảo sát").click()
    assert page.url.startswith(f"{site.identity}/focal"), page.url
    main = await page.inner_text("main")
    quota = await page.locator("#quota tbody tr").first.inner_text()
    assert "2" in quota and "3" in quota  # two on the list, a quota of three
    assert "danh sách chỉ có 2 người, ít hơn chỉ tiêu 3 phiếu" in main
    assert "Còn 2 người chưa trả lời." in main
    for person in (one, two):
        assert person.full_name in main and person.email in main
    assert PEOPLE[2].full_name not in main  # DEPT-B
    await check_page(page, site, "focal-point")

    # The export, as a person downloads it.
    async with page.expect_download() as info:
        await page.click("#export")
    path = tmp_path / "list.xlsx"
    await (await info.value).save_as(path)
    rows = list(openpyxl.load_workbook(path).active.iter_rows(values_only=True))  # type: ignore[union-attr]  # no sheet: fails
    assert rows[0][:4] == ("STT", "Họ và tên", "Đơn vị", "Chức vụ")
    assert sorted(r[1] for r in rows[1:]) == sorted([one.full_name, two.full_name])

    # Remind one, then everyone: the one already reminded today is skipped and said so.
    async with page.expect_navigation():
        await page.get_by_role("button", name=f"Nhắc {one.full_name}").click()
    status = await page.locator("[role=status]").inner_text()
    assert "Đã yêu cầu gửi thư nhắc tới 1 người." in status
    person_one = page.locator("ul.people li", has_text=one.full_name)
    assert "Đã nhắc ngày" in await person_one.inner_text()
    async with page.expect_navigation():
        await page.click("#remind-all")
    status = await page.locator("[role=status]").inner_text()
    assert "tới 1 người" in status and "1 người đã được nhắc hôm nay" in status
    await check_page(page, site, "focal-point-reminded")

    # Again the same day: refused, with the day it becomes possible.
    async with page.expect_navigation():
        await page.get_by_role("button", name=f"Nhắc {one.full_name}").click()
    assert "nhắc lại từ ngày" in await page.inner_text("main")

    # The reminder kept the invitation's password, and says so.
    async def reminder() -> str | None:
        return await _mail_to(site, one.email, "chưa nhận được phiếu khảo sát")

    text = await eventually(reminder, timeout=45)
    assert "Mật khẩu trong thư mời trước đây vẫn dùng được" in text
    assert password not in text and HELPLINE in text

    fresh = await page.context.browser.new_context(viewport=PHONE, locale="vi-VN")
    try:
        p2 = await fresh.new_page()
        await p2.goto(f"{site.identity}/login")
        await login(p2, username, "a-wrong-password")
        help_box = await p2.locator("#login-help").inner_text()
        assert "Nhận mật khẩu mới qua email" in help_box and HELPLINE in help_box
        await check_page(p2, site, "login-failed")
        await login(p2, username, password)
        assert p2.url.startswith(f"{site.survey}/survey"), p2.url
    finally:
        await fresh.close()
