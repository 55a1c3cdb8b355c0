"""The campaign's stage and the picker on every staff page, on a phone and a desktop
(docs/architecture.md, decision 39)."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import CAMPAIGN, DESKTOP, PHONE, Site
from tests.browser.test_pages import login

STAFF_PAGES = (
    "/",
    "/admin/registry",
    "/admin/import",
    "/admin/staff",
    "/deliveries",
    "/progress",
    "/dashboard",
)
STAGES_VI = (
    "Đã ban hành, chưa mở đợt",
    "Đang thu phiếu",
    "Đã đóng",
    "Đã chốt kết quả, chưa công bố",
    "Đã công bố kết quả",
)


async def test_stage_and_picker_on_every_staff_page(page: Any, site: Site) -> None:
    await page.goto(f"{site.identity}/login")
    await login(page, "admin-bt", site.users["admin-bt"])
    for viewport in (PHONE, DESKTOP):
        await page.set_viewport_size(viewport)
        for path in STAFF_PAGES:
            await page.goto(f"{site.identity}{path}")
            bar = page.locator("#campaign-bar")
            assert await bar.is_visible(), (path, viewport)
            stage = (await page.locator("#campaign-bar .stage").inner_text()).strip()
            assert stage in STAGES_VI, (path, stage)
            picker = page.locator("#campaign-pick")
            assert await picker.is_visible(), (path, viewport)
            assert await picker.input_value() == CAMPAIGN, path
            assert await page.locator("#campaign-bar button.pick").is_visible(), path
            widths = await page.evaluate(
                "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
            )
            assert widths[0] <= widths[1], (path, viewport, widths)
    # Picking submits without a script and the next page keeps the choice.
    await page.goto(f"{site.identity}/deliveries")
    await page.select_option("#campaign-pick", CAMPAIGN)
    async with page.expect_navigation():
        await page.click("#campaign-bar button.pick")
    assert f"campaign={CAMPAIGN}" in page.url and "/deliveries" in page.url
    assert CAMPAIGN in await page.locator("main h1").inner_text()


async def test_a_focal_point_sees_the_stage_but_picks_nothing(page: Any, site: Site) -> None:
    await page.goto(f"{site.identity}/login")
    await login(page, "focal-a", site.users["focal-a"])
    await page.goto(f"{site.identity}/progress")
    stage = (await page.locator("#campaign-bar .stage").inner_text()).strip()
    assert stage in STAGES_VI
    assert await page.locator("#campaign-pick").count() == 0  # tied to one campaign
