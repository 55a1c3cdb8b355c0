"""A ballot that works on a phone (docs/architecture.md, decision 32), in a real Chromium.

A second campaign on the browser stack: form 01 rates 30 units (7 questions each, one unit per
page on a 390×844 screen), form 03 rates the respondent's own unit. Every form page visited is
checked for horizontal scroll, tap targets of at least 44 px and internal codes in the text.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from openpyxl import Workbook

from tests.browser.conftest import ARTIFACTS, DESKTOP, PHONE, Site, cli, credentials

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

CAMPAIGN = "ballot-phone"
UNITS = [f"D{i:02d}" for i in range(1, 31)]
FORM01 = [  # (email, name) of people answering form 01; one per test
    ("phone.full@ballot.example.vn", "Đỗ Văn Đủ"),
    ("phone.lang@ballot.example.vn", "Đỗ Thị Ngữ"),
    ("phone.errors@ballot.example.vn", "Đỗ Văn Sót"),
]
KEYBOARD = ("phone.keys@ballot.example.vn", "Đỗ Thị Phím")  # form 03, unit D01
CODE = re.compile(r"\b[A-Z]{2,}\.\d|\b(?:LEAD|PROC|DIGI)\b")


LEAD = [
    ("LEAD1", "Sự quan tâm của người đứng đầu", "The head's attention"),
    ("LEAD2", "Kế hoạch cải cách hành chính", "The reform plan"),
    ("LEAD3", "Kiểm tra công tác cải cách", "Reform inspections"),
    ("LEAD4", "Tuyên truyền cải cách hành chính", "Reform outreach"),
]
PROC = [
    ("PROC1", "Công khai thủ tục", "Published procedures"),
    ("PROC2", "Thời gian giải quyết", "Processing time"),
    ("PROC3", "Thái độ của cán bộ", "Staff attitude"),
]


def questions(rows: list[tuple[str, str, str]]) -> str:
    return "\n".join(
        f'      - {{id: {q}, text: {vi}, text_en: "{en}", max_points: 1, options: *quality}}'
        for q, vi, en in rows
    )


def campaign_yaml(now: datetime) -> str:
    units = "\n".join(
        f"  - {{code: {u}, kind: department, name: Sở Thử nghiệm số {i}}}"
        for i, u in enumerate(UNITS, 1)
    )
    return f"""\
id: {CAMPAIGN}
version: 1
name: Khảo sát thử nghiệm trên điện thoại
province: Thử nghiệm
year: {now.year}
deadline: "{(now + timedelta(days=7)).isoformat()}"
min_report_size: 1
units:
{units}
x-scales:
  - &quality
    - {{code: very_good, label: Rất tốt, label_en: Very good, weight: 1}}
    - {{code: good, label: Tốt, label_en: Good, weight: 0.75}}
    - {{code: poor, label: Kém, label_en: Poor, weight: 0}}
    - {{code: dont_know, label: Không biết, label_en: Don't know, weight: null}}
x-criteria:
  - &lead
    code: LEAD
    name: Công tác chỉ đạo, điều hành
    name_en: Leadership
    max_points: 4
    questions:
{questions(LEAD)}
  - &proc
    code: PROC
    name: Thủ tục hành chính
    name_en: Administrative procedures
    max_points: 3
    questions:
{questions(PROC)}
forms:
  - code: "01"
    name: Phiếu khảo sát đại biểu Hội đồng nhân dân tỉnh
    name_en: Survey of provincial People's Council delegates
    group: provincial_delegate
    rates: many_units
    respondent_unit_kinds: []
    rated_units: [{", ".join(UNITS)}]
    criteria: [*lead, *proc]
  - code: "03"
    name: Phiếu khảo sát cán bộ, công chức sở ngành
    group: staff
    rates: own_unit
    respondent_unit_kinds: [department]
    criteria:
      - code: DIGI
        name: Chính quyền số
        max_points: 2
        questions:
          - {{id: DIGI1, text: Ứng dụng công nghệ thông tin, max_points: 1, options: *quality}}
          - {{id: DIGI2, text: Dịch vụ công trực tuyến, max_points: 1, options: *quality}}
quotas:
  - {{form_code: "01", ballots: 3}}
  - {{form_code: "03", unit_code: D01, ballots: 1}}
waves:
  - id: w1
    opens_at: "{(now - timedelta(days=1)).isoformat()}"
    members: [{{form_code: "01"}}, {{form_code: "03"}}]
"""


def workbook() -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.append(["STT", "Họ và tên", "Email", "Mã đơn vị", "Phiếu"])
    for i, (email, name) in enumerate(FORM01, 1):
        ws.append([i, name, email, None, "01"])
    ws.append([len(FORM01) + 1, KEYBOARD[1], KEYBOARD[0], "D01", "03"])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def ballot_site(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Site:
    """The browser stack with this module's campaign loaded and its respondents invited."""
    tmp = tmp_path_factory.mktemp("ballot")
    (tmp / "campaign.yaml").write_text(campaign_yaml(datetime.now(UTC)), encoding="utf-8")
    (tmp / "people.xlsx").write_bytes(workbook())
    cli(site.env, "campaign", "load", str(tmp / "campaign.yaml"))
    cli(site.env, "respondents", "import", str(tmp / "people.xlsx"), "--campaign", CAMPAIGN)
    return site


@pytest_asyncio.fixture(loop_scope="session")
async def phone(browser: Any) -> Any:
    context = await browser.new_context(viewport=PHONE, locale="vi-VN", has_touch=True)
    context.set_default_timeout(15_000)
    p = await context.new_page()
    yield p
    await context.close()


async def sign_in(page: Any, site: Site, email: str) -> None:
    username, password = await credentials(site, email)
    await page.goto(f"{site.survey}/survey")
    await page.fill("#username", username)
    await page.fill("#password", password)
    async with page.expect_navigation():
        await page.click("form[action='/login'] button[type=submit]")
    assert page.url.startswith(f"{site.survey}/survey"), page.url


PAGE_CHECKS_JS = """
() => {
  const problems = [];
  const se = document.scrollingElement;
  if (se.scrollWidth > window.innerWidth)
    problems.push(`horizontal scroll: ${se.scrollWidth} > ${window.innerWidth}`);
  const targets = 'main .option label, main form button, .error-summary a, .views a';
  for (const el of document.querySelectorAll(targets)) {
    const r = el.getBoundingClientRect();
    if (!r.width && !r.height) continue;  // not displayed
    if (r.height < 44 || r.width < 44)
      problems.push(`tap target ${Math.round(r.width)}x${Math.round(r.height)}: `
                    + el.outerHTML.slice(0, 80));
  }
  return {problems, text: document.body.innerText};
}
"""


async def check_form_page(page: Any, name: str) -> None:
    """No horizontal scroll at 390 px, tap targets of 44 px, no internal code in the text."""
    found = await page.evaluate(PAGE_CHECKS_JS)
    assert not found["problems"], f"{name}: {found['problems'][:5]}"
    codes = CODE.findall(found["text"])
    assert not codes, f"{name}: internal codes shown: {codes[:5]}"


async def answer(page: Any, pick: int) -> list[str]:
    """Choose one option in every question on this page (by tapping its label); the ids."""
    ids: list[str] = await page.evaluate(
        """pick => [...document.querySelectorAll('fieldset.question')].map((q, i) =>
             q.querySelectorAll('.option label')[(pick + i) % 4].getAttribute('for'))""",
        pick,
    )
    for option in ids:
        await page.tap(f"label[for='{option}']")
    return ids


async def next_page(page: Any, value: str = "next") -> None:
    async with page.expect_navigation():
        await page.click(f".savebar button[value={value}]")


# The first test of the module also starts the stack (about a minute on a busy 2-core machine).
@pytest.mark.timeout(240)
async def test_form01_with_30_units_on_a_phone(phone: Any, ballot_site: Site) -> None:
    page = phone
    await sign_in(page, ballot_site, FORM01[0][0])
    # The unit's name stays on screen and the save bar is at hand, wherever one scrolls.
    name = page.locator(".unit-head h2")
    assert await name.inner_text() == "Sở Thử nghiệm số 1"
    await page.evaluate("() => window.scrollTo(0, document.body.scrollHeight / 2)")
    box = await name.bounding_box()
    assert box is not None and 0 <= box["y"] < 844, box
    bar = await page.locator(".savebar button[value=next]").bounding_box()
    assert bar is not None and bar["y"] + bar["height"] <= 844, bar
    chosen: list[str] = []
    for n in range(1, 31):
        seen = await page.evaluate(
            """() => ({head: document.querySelector('.unit-head').innerText,
                       main: document.querySelector('main').innerText,
                       legends: [...document.querySelectorAll('fieldset.question legend')]
                                  .map(l => l.innerText)})"""
        )
        assert f"Đơn vị {n}/30" in seen["head"] and "Phần 2/2" in seen["main"]
        assert len(seen["legends"]) == 7
        assert seen["legends"][0].startswith("Câu 1/7.")
        assert seen["legends"][6].startswith("Câu 7/7.")
        await check_form_page(page, f"form-01-page-{n}")
        chosen += await answer(page, n)
        await next_page(page, "next" if n < 30 else "review")
    await page.locator("h1", has_text="Xem lại câu trả lời").wait_for()
    await check_form_page(page, "form-01-review")
    labels = ["Rất tốt", "Tốt", "Kém", "Không biết"]
    assert await page.inner_text("#answer-q-D01-LEAD1") == labels[1]
    assert await page.inner_text("#answer-q-D30-PROC3") == labels[(30 + 6) % 4]
    assert await page.locator("dd", has_text="(chưa trả lời)").count() == 0
    assert len(chosen) == 210
    async with page.expect_navigation():
        await page.click("button[value=submit]")
    assert (await page.inner_text("#receipt")).strip()
    await check_form_page(page, "form-01-receipt")


async def switch_language(page: Any, lang: str) -> None:
    """As a person does on a phone: open the folded menu when there is one, then the language."""
    menu = page.locator("header details.menu")
    if await menu.count() and await menu.is_visible():
        if await menu.get_attribute("open") is None:
            await menu.locator("summary").click()
        await menu.locator(f"a[hreflang={lang}]").click()
    else:
        await page.locator(f"header a[hreflang={lang}]:visible").first.click()


async def test_language_switch_keeps_every_answer(phone: Any, ballot_site: Site) -> None:
    page = phone
    await sign_in(page, ballot_site, FORM01[1][0])
    first = await answer(page, 0)
    await next_page(page)
    questions = page.locator("fieldset.question")
    second = []
    for i in range(3):  # three answers, no button pressed: then the language switch
        label = questions.nth(i).locator(".option label").nth(2)
        await label.tap()
        second.append(await label.get_attribute("for"))
    async with page.expect_navigation():
        await switch_language(page, "en")
    assert "page=2" in page.url and "lang=en" in page.url, page.url
    assert "Unit 2/30" in await page.inner_text(".unit-head")
    assert "Question 1/7." in await page.inner_text("fieldset.question legend >> nth=0")
    for option in second:
        assert await page.is_checked(f"#{option}"), option
    await check_form_page(page, "form-01-english")
    await next_page(page, "prev")
    for option in first:
        assert await page.is_checked(f"#{option}"), option
    async with page.expect_navigation():
        await switch_language(page, "vi")
    assert "Đơn vị 1/30" in await page.inner_text(".unit-head")
    for option in first:
        assert await page.is_checked(f"#{option}"), option
    await page.goto(f"{ballot_site.survey}/survey?page=2")
    for option in second:
        assert await page.is_checked(f"#{option}"), option


async def test_error_summary_links_focus_the_missing_question(
    phone: Any, ballot_site: Site
) -> None:
    page = phone
    await sign_in(page, ballot_site, FORM01[2][0])
    questions = page.locator("fieldset.question")
    for i in range(6):  # all but the last question of the first unit
        await questions.nth(i).locator(".option label").first.tap()
    await next_page(page)
    await page.goto(f"{ballot_site.survey}/survey?page=30")
    await next_page(page, "review")
    # Back on the first page with a question left, the summary saying which ones.
    summary = page.locator(".error-summary")
    assert "Còn 204 câu hỏi" in await summary.inner_text()
    assert await page.evaluate("() => document.activeElement.id") == "error-summary"
    await check_form_page(page, "form-01-errors")
    here = summary.locator("a", has_text="Câu 7 – Sở Thử nghiệm số 1")
    assert await here.get_attribute("href") == "#q-D01-PROC3"
    await here.click()
    focused = "() => (document.activeElement.closest('fieldset') || {}).id"
    assert await page.evaluate(focused) == "q-D01-PROC3"
    assert await page.locator("#q-D01-PROC3[aria-invalid=true]").count() == 1
    there = summary.locator("a", has_text="Câu 1 – Sở Thử nghiệm số 2").first
    async with page.expect_navigation():
        await there.click()
    assert "Đơn vị 2/30" in await page.inner_text(".unit-head")
    assert await page.evaluate(focused) == "q-D02-LEAD1"
    await page.screenshot(path=str(ARTIFACTS / "ballot-01-page-390x844.png"))

    # On a desktop, the paper form's grid: questions × units, the draft's answers in it.
    await page.set_viewport_size(DESKTOP)
    await page.goto(f"{ballot_site.survey}/survey?view=grid")
    assert await page.locator("table.grid select").count() == 210
    assert await page.input_value("select[name='a:D01:LEAD1']") == "very_good"
    assert await page.input_value("select[name='a:D02:LEAD1']") == ""
    wide = "() => document.scrollingElement.scrollWidth <= window.innerWidth"
    assert await page.evaluate(wide)
    await page.screenshot(path=str(ARTIFACTS / "ballot-01-grid-1366x768.png"))


async def test_a_form_with_the_keyboard_alone(phone: Any, ballot_site: Site) -> None:
    page = phone
    await sign_in(page, ballot_site, KEYBOARD[0])
    assert await page.locator("fieldset.question").count() == 2

    async def tab_to(selector: str, limit: int = 40) -> None:
        for _ in range(limit):
            await page.keyboard.press("Tab")
            if await page.evaluate(f"() => document.activeElement.matches({selector!r})"):
                return
        raise AssertionError(f"Tab never reached {selector}")

    await page.evaluate("() => document.activeElement && document.activeElement.blur()")
    await tab_to("input[name='a:D01:DIGI1']")
    outline = await page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "no visible focus on a radio"
    await page.keyboard.press("Space")
    await tab_to("input[name='a:D01:DIGI2']")
    await page.keyboard.press("ArrowDown")  # the group's second option (Space checks the first)
    await tab_to("button[value=review]")
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    assert await page.inner_text("#answer-q-D01-DIGI1") == "Rất tốt"
    assert await page.inner_text("#answer-q-D01-DIGI2") == "Tốt"
    await tab_to("button[value=submit]")
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    assert (await page.inner_text("#receipt")).strip()
