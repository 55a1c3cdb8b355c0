"""The navigation bar and the staff pages in Chromium (decision 34): collapsed on a phone with no
horizontal scroll, open on a desktop, logout from the bar; the registry and accounts pages pass
the same layout and accessibility checks as every other page."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import CAMPAIGN, DESKTOP, PEOPLE, PHONE, Site
from tests.browser.test_pages import check_page, login


async def test_admin_bar_collapses_on_a_phone_and_logs_out(page: Any, site: Site) -> None:
    await page.goto(f"{site.identity}/login")
    await login(page, "admin-bt", site.users["admin-bt"])
    await page.goto(f"{site.identity}/admin/registry?campaign={CAMPAIGN}")
    await page.set_viewport_size(PHONE)
    assert PEOPLE[0].full_name in await page.inner_text("main")
    assert not await page.locator("#menu-wide").is_visible()
    narrow = page.locator("#menu-narrow")
    assert not await narrow.is_visible()
    await page.click("details.menu summary")
    assert await narrow.is_visible()
    text = await narrow.inner_text()
    assert "Quản trị" in text and CAMPAIGN in text
    for label in ("Người trả lời", "Thư đã gửi", "Tiến độ", "Kết quả", "Tài khoản"):
        assert label in text, label
    widths = await page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], widths
    await check_page(page, site, "admin-registry")

    # The bar's link to another service's page keeps the bar, with the same person on it.
    await page.set_viewport_size(DESKTOP)
    wide = page.locator("#menu-wide")
    assert await wide.is_visible()
    async with page.expect_navigation():
        await wide.get_by_role("link", name="Tiến độ").click()
    assert "/progress" in page.url
    assert "Quản trị" in await page.locator("#menu-wide").inner_text()

    await page.goto(f"{site.identity}/admin/staff")
    assert "admin-bt" in await page.inner_text("main")
    await check_page(page, site, "admin-staff")

    # English keeps the page; logout is a POST from the bar and ends the session.
    await page.set_viewport_size(DESKTOP)
    async with page.expect_navigation():
        await page.locator("#menu-wide").get_by_role("link", name="English").click()
    assert "/admin/staff" in page.url and "Administrator" in await page.inner_text("header")
    async with page.expect_navigation():
        await page.locator("header button.logout").click()
    assert "/login" in page.url
    await page.goto(f"{site.identity}/admin/staff")
    assert "/login" in page.url
