"""The product's pages in a real Chromium: a respondent's ballot, a focal point's progress,
the admin's import and the live results dashboard, each checked on a phone and a desktop.

Every page visited gets screenshots (390×844 and 1366×768, under test-artifacts/), no
horizontal scroll on the phone, and basic accessibility: labelled inputs, lang and title, alt
texts, keyboard reachability and body-text contrast. A check that fails because of a known
product bug is recorded instead of asserted, and `test_known_bug` asserts it under
xfail(strict=True): fixing the bug turns that test into an XPASS that fails the run.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx
import pytest

from tests.browser.conftest import (
    ARTIFACTS,
    CAMPAIGN,
    DESKTOP,
    LATE,
    PEOPLE,
    PHONE,
    UNITS,
    Site,
    credentials,
    workbook,
)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

# check key -> reason. Each key is a page check known to fail because of a product bug.
KNOWN_BUGS: dict[str, str] = {}  # none open; add "<page>:<check>": reason with an xfail

A11Y_JS = """
() => {
  const problems = [];
  if (!(document.documentElement.getAttribute('lang') || '').trim()) problems.push('no lang');
  if (!document.title.trim()) problems.push('no title');
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (el.type === 'hidden') continue;
    const byLabel = [...(el.labels || [])].some(l => l.textContent.trim());
    const aria = (el.getAttribute('aria-label') || '').trim()
      || (el.getAttribute('aria-labelledby') || '').split(/\\s+/).filter(Boolean)
           .map(id => (document.getElementById(id) || {}).textContent || '').join('').trim();
    if (!byLabel && !aria) problems.push('unlabelled ' + el.outerHTML.slice(0, 120));
  }
  for (const img of document.querySelectorAll('img')) {
    if (!img.hasAttribute('alt')) problems.push('img without alt ' + img.outerHTML.slice(0, 120));
  }
  for (const el of document.querySelectorAll('[role=img]')) {
    if (!(el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || '').trim())
      problems.push('role=img without a name ' + el.outerHTML.slice(0, 120));
  }
  return problems;
}
"""

# Contrast per WCAG 2: body text against its effective background, then every visible element
# that holds text of its own (4.5:1, or 3:1 for large text).
CONTRAST_JS = """
() => {
  const parse = c => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const lum = c => {
    const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  };
  const ratio = (a, b) => {
    const [x, y] = [lum(a), lum(b)];
    return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05);
  };
  const background = el => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    let base = [255, 255, 255];
    for (const c of layers.reverse()) base = [0, 1, 2].map(k => c[k] * c[3] + base[k] * (1 - c[3]));
    return base;
  };
  const describe = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
    + (typeof el.className === 'string' && el.className.trim()
       ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
  const body = document.body;
  const bodyRatio = ratio(parse(getComputedStyle(body).color), background(body));
  const failures = [];
  for (const el of document.body.querySelectorAll('*')) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own) continue;
    const r = el.getBoundingClientRect(), s = getComputedStyle(el);
    if (!r.width || !r.height || s.visibility === 'hidden' || s.display === 'none') continue;
    const size = parseFloat(s.fontSize), bold = parseInt(s.fontWeight, 10) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    const got = ratio(parse(s.color), background(el));
    if (got < need) {
      const bg = background(el).map(Math.round).join(',');
      failures.push(`${describe(el)} ${got.toFixed(2)}:1 < ${need}:1 (${s.color} on rgb(${bg}))`);
    }
  }
  return {body: bodyRatio, failures};
}
"""

FOCUSABLE = "a[href], button, input:not([type=hidden]), select, textarea, [tabindex]"
SUBMIT = "button[type=submit], button:not([type]), input[type=submit]"


def _record(site: Site, key: str, ok: bool, detail: str) -> None:
    """Assert a check, unless it is a known bug: then keep the outcome for test_known_bug."""
    if key in KNOWN_BUGS:
        site.findings[key] = None if ok else detail
        return
    assert ok, f"{key}: {detail}"


async def check_page(page: Any, site: Site, name: str) -> None:
    """Screenshots on both viewports and the layout/accessibility checks, on the phone."""
    await page.set_viewport_size(DESKTOP)
    await page.screenshot(path=str(ARTIFACTS / f"{name}-1366x768.png"), full_page=True)
    await page.set_viewport_size(PHONE)
    await page.screenshot(path=str(ARTIFACTS / f"{name}-390x844.png"), full_page=True)

    widths = await page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    _record(
        site, f"{name}:no-horizontal-scroll", widths[0] <= widths[1],
        f"scrollWidth {widths[0]} > clientWidth {widths[1]} at 390px",
    )  # fmt: skip

    problems = await page.evaluate(A11Y_JS)
    for what in ("lang", "title"):
        missing = f"no {what}"
        _record(site, f"{name}:{what}", missing not in problems, f"the page has {missing}")
    rest = [p for p in problems if p not in ("no lang", "no title")]
    _record(site, f"{name}:labels-alt", not rest, "; ".join(rest))

    contrast = await page.evaluate(CONTRAST_JS)
    _record(
        site, f"{name}:contrast", contrast["body"] >= 4.5 and not contrast["failures"],
        f"body text {contrast['body']:.2f}:1; " + "; ".join(contrast["failures"][:8]),
    )  # fmt: skip

    await _keyboard(page, site, name)


async def _keyboard(page: Any, site: Site, name: str) -> None:
    """Tab from the top lands on a focusable element; a form's submit button is reachable."""
    await page.evaluate("() => { document.activeElement && document.activeElement.blur(); }")
    await page.evaluate("() => window.scrollTo(0, 0)")
    await page.keyboard.press("Tab")
    first = await page.evaluate(
        f"() => document.activeElement && document.activeElement !== document.body"
        f" && document.activeElement.matches({FOCUSABLE!r})"
    )
    _record(site, f"{name}:tab-focus", bool(first), "Tab did not move focus to a control")
    if not await page.locator(f"form {SUBMIT}").count():
        return
    reached = False
    for _ in range(80):
        if await page.evaluate(
            f"() => !!document.activeElement && document.activeElement.matches({SUBMIT!r})"
        ):
            reached = True
            break
        await page.keyboard.press("Tab")
    _record(site, f"{name}:submit-reachable", reached, "no submit button reached by Tab")


async def login(page: Any, username: str, password: str) -> None:
    await page.fill("#username", username)
    await page.fill("#password", password)
    async with page.expect_navigation():
        await page.click("form[action='/login'] button[type=submit]")


# --- 1. a respondent: invitation -> login -> draft -> review -> submit -> receipt -----------
async def test_respondent_answers_and_submits(page: Any, site: Site) -> None:
    me = PEOPLE[0]
    username, password = await credentials(site, me.email)

    await page.goto(f"{site.survey}/survey")
    assert page.url.startswith(f"{site.identity}/login"), page.url
    await check_page(page, site, "login")
    await login(page, username, password)
    assert page.url == f"{site.survey}/survey", page.url
    questions = page.locator("fieldset.question")
    assert await questions.count() == 3
    await check_page(page, site, "survey-form")

    # one answer, saved as a draft, survives a fresh visit
    await page.check("#o-DEPT-A-LEAD1-good")
    await page.click("button[value=draft]")
    await page.get_by_role("status").wait_for()
    assert "Đã lưu nháp" in await page.get_by_role("status").inner_text()
    await check_page(page, site, "survey-draft-saved")
    await page.goto(f"{site.survey}/survey")
    assert await page.is_checked("#o-DEPT-A-LEAD1-good")

    # asking for the review with questions left shows which ones, next to them
    await page.click("button[value=review]")
    assert "2 câu hỏi" in await page.get_by_role("alert").inner_text()
    assert await page.locator("fieldset[aria-invalid=true]").count() == 2
    await check_page(page, site, "survey-errors")

    await page.check("#o-DEPT-A-LEAD2-very_good")
    await page.check("#o-DEPT-A-DIGI1-dont_know")
    await page.click("button[value=review]")
    await page.locator("h1", has_text="Xem lại câu trả lời").wait_for()
    assert await page.inner_text("#answer-q-DEPT-A-LEAD1") == "Tốt"
    assert await page.inner_text("#answer-q-DEPT-A-DIGI1") == "Không biết"
    await check_page(page, site, "survey-review")

    await page.click("button[value=submit]")
    await page.locator("#receipt").wait_for()
    receipt = (await page.inner_text("#receipt")).strip()
    assert receipt
    assert "Biên nhận" in await page.title()
    assert "Bạn đã gửi phiếu" in await page.inner_text("main")
    await check_page(page, site, "survey-receipt")

    await page.goto(f"{site.survey}/survey")
    assert "Bạn đã gửi phiếu" in await page.inner_text("main")
    # Nothing about a receipt is stored: a later visit shows a fresh one for the same day.
    assert (await page.inner_text("#submitted-on")).strip()
    assert (await page.inner_text("#receipt")).strip()[:8] == receipt[:8]
    assert await page.locator("form button[value=submit]").count() == 0
    await check_page(page, site, "survey-already-submitted")


# --- 2. a focal point: its unit's progress and who has not answered -------------------------
async def test_focal_point_sees_its_unit(page: Any, site: Site) -> None:
    await page.goto(f"{site.survey}/progress?campaign={CAMPAIGN}")
    assert page.url.startswith(f"{site.identity}/login"), page.url
    await login(page, "focal-a", site.users["focal-a"])
    assert page.url.startswith(f"{site.survey}/progress"), page.url

    rows = page.locator("tbody tr")
    assert await rows.count() == 1
    assert UNITS["DEPT-A"] in await rows.first.inner_text()
    assert await page.locator(".bar[role=img]").count() == 1
    not_answered = await page.locator("ul.not-answered").inner_text()
    assert PEOPLE[1].full_name in not_answered  # r2 never answers
    for other in (PEOPLE[2], LATE):  # another unit's people stay out of sight
        assert other.full_name not in await page.inner_text("main")
    assert UNITS["DEPT-B"] not in await page.inner_text("main")
    await check_page(page, site, "progress-focal-point")


# --- 3. the admin imports a list and reads the report ---------------------------------------
async def test_admin_imports_respondents(page: Any, site: Site) -> None:
    await page.goto(f"{site.identity}/login")
    await login(page, "admin-bt", site.users["admin-bt"])
    await page.goto(f"{site.identity}/admin/import")
    await page.locator("input[type=file]").wait_for()
    await check_page(page, site, "admin-import")

    # The campaign is the one picked in the bar, no free-text box (decision 39).
    assert CAMPAIGN in await page.inner_text("main")
    assert await page.locator("#campaign").count() == 0
    await page.set_input_files(
        "#file",
        files=[
            {
                "name": "bo-sung.xlsx",
                "mimeType": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "buffer": workbook([*PEOPLE, LATE]),
            }
        ],
    )
    async with page.expect_navigation() as nav:
        await page.click("form button[type=submit]")
    response = await nav.value
    assert response.status == 200, await response.text()
    preview = await page.inner_text("main")  # nothing published yet: a preview
    assert "Mới: 1" in preview and LATE.full_name in preview, preview[:2000]
    await check_page(page, site, "admin-import-preview")
    async with page.expect_navigation() as nav:
        await page.click("form[action='/admin/import/confirm'] button[type=submit]")
    response = await nav.value
    assert response.status == 200, await response.text()
    kind = response.headers.get("content-type", "")
    _record(site, "admin-import-report:html", kind.startswith("text/html"), f"served as {kind}")
    body = await page.inner_text("body")
    assert kind.startswith("text/html")
    assert "Mới: 1" in body and f"Không đổi: {len(PEOPLE)}" in body, body[:2000]
    assert LATE.full_name in body, body[:2000]
    await check_page(page, site, "admin-import-report")


# --- 4. the live results dashboard, after a ballot ------------------------------------------
async def _ballot_over_api(site: Site, email: str) -> None:
    """What a second respondent's phone would do, through the JSON API."""
    username, password = await credentials(site, email)
    async with httpx.AsyncClient(timeout=20) as http:
        form = await http.get(f"{site.identity}/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        r = await http.post(
            f"{site.identity}/login",
            data={"username": username, "password": password, "csrf": csrf.group(1)},
        )
        assert r.status_code == 303, r.text
        data = (await http.get(f"{site.survey}/api/form")).json()
        answers = [
            {"unit_code": u["code"], "question_id": q["id"], "option_code": q["options"][0]["code"]}
            for u in data["rated_units"]
            for c in data["form"]["criteria"]
            for q in c["questions"]
        ]
        r = await http.post(
            f"{site.survey}/api/ballots",
            json={"answers": answers, "client_submission_id": "browser-dashboard"},
            headers={"X-Requested-With": "parindex"},
        )
        assert r.status_code in (201, 409), r.text


async def _scored(site: Site, unit: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5) as http:
        while True:
            r = await http.get(f"{site.scoring}/api/results", params={"campaign": CAMPAIGN})
            if r.status_code == 200 and any(
                row["unit_code"] == unit and row["form_code"] and row["received"] >= 1
                for row in r.json()["counts"]
            ):
                return
            assert time.monotonic() < deadline, f"no ballot for {unit} scored within {timeout}s"
            await asyncio.sleep(0.3)


async def test_results_dashboard_renders_bars(page: Any, site: Site) -> None:
    await _ballot_over_api(site, PEOPLE[2].email)  # DEPT-B, all "Rất tốt"
    await _scored(site, "DEPT-B")

    await page.goto(f"{site.scoring}/dashboard?campaign={CAMPAIGN}")
    main = await page.inner_text("main")
    for name in UNITS.values():
        assert name in main
    bars = page.locator(".bar[role=img]")
    assert await bars.count() == len(UNITS)
    row_b = page.locator("tbody tr", has_text=UNITS["DEPT-B"])
    assert "1 / 3" in await row_b.inner_text()
    fill = await row_b.locator(".bar > span").evaluate("e => e.getBoundingClientRect().width")
    assert fill > 0, "DEPT-B's bar is empty after its ballot"
    await check_page(page, site, "results-dashboard")


# --- known product bugs: each check above that is recorded instead of asserted -------------
@pytest.mark.parametrize(
    "key",
    [
        pytest.param(k, marks=pytest.mark.xfail(strict=True, raises=AssertionError, reason=why))
        for k, why in KNOWN_BUGS.items()
    ]
    or [pytest.param("none", marks=pytest.mark.skip(reason="no known product bug"))],
)
async def test_known_bug(site: Site, key: str) -> None:
    if key not in site.findings:
        pytest.skip(f"the page of {key} was not reached (see the failure above)")
    assert site.findings[key] is None, site.findings[key]
