"""Every page in Vietnamese mode, for every role, in a real Chromium (docs/architecture.md, 40).

Each role (anonymous, respondent, focal point, admin, auditor) starts at the front door and
follows every same-site link it is shown (the bar's and the pages'), plus the error pages (404,
403, a CSRF refusal, a 500 and a 503 drawn by the shared kit). On each page, at 390×844: no
English word from a list of common UI/developer English, no raw code (criterion and question
codes, event ids, event type names, enum values, UUIDs), no horizontal scroll, every field
labelled, visible focus on each focusable element, and WCAG contrast of every visible text.
All findings of all pages are gathered first, so one run lists everything to fix.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from contracts import events
from tests.browser.conftest import CAMPAIGN, PASSWORD, PEOPLE, PHONE, UNITS, Site, cli, credentials
from tests.browser.test_pages import A11Y_JS, CONTRAST_JS, login

# Common English of UI and developer text. Not words Vietnamese also writes without accents
# ("to", "no", "an"), nor names people see as names (English on the language switch, e-mail).
ENGLISH = [
    "error", "not found", "forbidden", "unauthorized", "submit", "login", "log in", "logout",
    "log out", "sign in", "password", "username", "campaign", "campaigns", "ballot", "ballots",
    "unit", "units", "wave", "waves", "deadline", "quota", "quotas", "progress", "results",
    "dashboard", "report", "received", "save", "draft", "review", "next", "previous", "back",
    "cancel", "search", "export", "download", "upload", "import", "status", "pending",
    "failed", "sent", "queued", "delivered", "none", "null", "true", "false", "undefined",
    "please", "click", "here", "total", "score", "rank", "question", "questions", "answer",
    "answers", "respondent", "respondents", "reminder", "reminders", "invitation",
    "invitations", "refused", "internal server", "service unavailable", "method not allowed",
    "bad request", "too many requests", "detail", "traceback", "exception", "home", "the",
    "your", "you", "focal point", "admin", "administrator", "auditor", "staff", "home",
    "welcome", "home page", "digest", "frozen", "released", "live", "published", "draft",
]  # fmt: skip
ENGLISH_RE = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, ENGLISH)) + r")(?![\w-])", re.I)
EVENT_TYPES = sorted(
    n for n, c in vars(events).items() if isinstance(c, type) and issubclass(c, events.Payload)
)
RAW = [
    (r"(?<![\w-])(LEAD|DIGI)\d*\.?(?![\w-])", "criterion or question code"),
    (r"\b(invitation|reminder|ballot|campaign|respondent):\S*", "event or delivery id"),
    (r"\b(" + "|".join(EVENT_TYPES) + r")\b", "event type name"),
    (r"\b(own_unit|focal_point|department|district|very_good|dont_know|in_progress)\b", "enum"),
    (r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "UUID"),
    (r"\b(err|app|sv|id|sc|nt)\.[a-z_]+(\.[a-z_]+)*\b", "catalog key"),
    (r"[−-]0,0+\b", "negative zero"),
]
RAW_RE = [(re.compile(p), why) for p, why in RAW]
SKIP_LINKS = re.compile(r"\.(csv|xlsx|pdf|docx)(\?|$)|^/mail|[?&]lang=|/logout|/api/")

# Per element: a visible focus indicator (outline, or a box-shadow) once it has focus.
FOCUS_JS = """
async () => {
  const bad = [];
  const all = [...document.querySelectorAll(
    'a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]')];
  for (const el of all.slice(0, 120)) {
    const r = el.getBoundingClientRect(), s0 = getComputedStyle(el);
    if (!r.width || !r.height || s0.visibility === 'hidden') continue;
    el.focus({focusVisible: true});
    if (document.activeElement !== el) continue;
    const s = getComputedStyle(el);
    const outline = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2;
    const ring = s.boxShadow && s.boxShadow !== 'none';
    if (!outline && !ring)
      bad.push(el.tagName.toLowerCase() + ' '
               + (el.textContent || el.name || '').trim().slice(0, 40));
  }
  if (document.activeElement) document.activeElement.blur();
  return bad;
}
"""

# What a person reads: the text, and the attributes a browser shows or speaks.
TEXT_JS = """
() => {
  // Text marked as another language (the "English" switch, a mail server's quoted reply) is
  // foreign on purpose and said so to screen readers: it is left out.
  // Folded parts (the phone's menu, "Chọn thao tác") are read open, as a person opens them.
  for (const d of document.querySelectorAll('details')) d.open = true;
  let body = document.body.innerText;
  for (const el of document.body.querySelectorAll('[lang]:not([lang=vi])'))
    if (el.innerText) body = body.split(el.innerText).join(' ');
  const parts = [document.title, body];
  for (const el of document.querySelectorAll('[placeholder],[title],[aria-label],img[alt]')) {
    for (const a of ['placeholder', 'title', 'aria-label', 'alt'])
      if (el.getAttribute(a)) parts.push(el.getAttribute(a));
  }
  for (const el of document.querySelectorAll('input[type=submit],input[type=button]'))
    parts.push(el.value);
  return parts.join('\\n');
}
"""


def allowed_names(site: Site) -> list[str]:
    """Names people are shown as names: e-mails, usernames, the campaign id, URLs."""
    return [*(p.email for p in PEOPLE), *site.users, CAMPAIGN, "parindex"]


def language_problems(text: str, site: Site) -> list[str]:
    text = re.sub(r"https?://\S+|\S+@\S+", " ", text)
    for name in allowed_names(site):
        text = text.replace(name, " ")
    found = [f"English {m.group(0)!r}" for m in ENGLISH_RE.finditer(text)]
    for rx, why in RAW_RE:
        found += [f"{why} {m.group(0)!r}" for m in rx.finditer(text)]
    return sorted(set(found))


async def scan(page: Any, site: Site, name: str, findings: dict[str, list[str]]) -> None:
    """Every check on the page now shown, in Vietnamese, at 390×844; findings kept by page."""
    await page.set_viewport_size(PHONE)
    problems: list[str] = []
    lang = await page.evaluate("() => document.documentElement.lang")
    if lang != "vi":
        problems.append(f"lang={lang!r}")
    problems += language_problems(await page.evaluate(TEXT_JS), site)
    widths = await page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    if widths[0] > widths[1]:
        problems.append(f"horizontal scroll {widths[0]} > {widths[1]}")
    problems += [p for p in await page.evaluate(A11Y_JS) if not p.startswith("img")]
    contrast = await page.evaluate(CONTRAST_JS)
    problems += [f"contrast {f}" for f in contrast["failures"][:5]]
    problems += [f"no visible focus: {f}" for f in (await page.evaluate(FOCUS_JS))[:5]]
    if problems:
        findings[name] = problems


async def crawl(page: Any, site: Site, role: str, start: str, findings: dict, limit: int = 25):
    """Visit `start` and every same-site page linked from what was visited, breadth first."""
    door = site.identity.rstrip("/")
    queue, seen = [start], set()
    while queue and len(seen) < limit:
        path = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        response = await page.goto(door + path)
        if response is not None and "text/html" not in response.headers.get("content-type", ""):
            continue
        if response is not None and response.status >= 400 and path != start:
            # a link this role was shown leads to a refusal: a dead end, not a page
            findings.setdefault(f"{role} {path}", []).append(
                f"linked page answers {response.status}"
            )
        await scan(page, site, f"{role} {path}", findings)
        hrefs = await page.evaluate(
            "() => [...document.querySelectorAll('a[href]')].map(a => a.href)"
        )
        for href in hrefs:
            url = urlsplit(urljoin(page.url, href))
            if f"{url.scheme}://{url.netloc}" != door:
                continue
            target = url.path + (f"?{url.query}" if url.query else "")
            if not SKIP_LINKS.search(target) and target not in seen:
                queue.append(target)
    return seen


async def csrf_refusal(page: Any, site: Site) -> None:
    """A login form posted with a stale token, as after a long pause: the refusal page."""
    await page.goto(f"{site.identity}/login")
    await page.evaluate("() => { document.querySelector('input[name=csrf]').value = 'stale'; }")
    await page.fill("#username", "nobody")
    await page.fill("#password", "wrong-password-1")
    async with page.expect_navigation():
        await page.click("form[action='/login'] button[type=submit]")


def kit_error_pages() -> dict[str, str]:
    """A 500 and a 503 exactly as the shared kit draws them for a person (Vietnamese)."""
    from parindex.web import errors

    app = FastAPI()
    errors.install(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    @app.get("/busy")
    async def busy() -> None:
        from starlette.exceptions import HTTPException

        raise HTTPException(503)

    client = TestClient(app, raise_server_exceptions=False)
    out = {}
    for path in ("/boom", "/busy"):
        r = client.get(path, headers={"accept": "text/html"})
        assert r.status_code in (500, 503), r.status_code
        out[path] = r.text
    return out


@pytest.mark.browser
@pytest.mark.timeout(300)  # five roles, some fifty pages, each checked in full
@pytest.mark.asyncio(loop_scope="session")
async def test_every_page_is_vietnamese_and_usable(browser: Any, site: Site) -> None:
    cli(
        site.env, "users", "add", "auditor-bt", "--role", "auditor", "--campaign", CAMPAIGN,
        "--password", PASSWORD,
    )  # fmt: skip
    site.users.setdefault("auditor-bt", PASSWORD)
    findings: dict[str, list[str]] = {}
    visited: dict[str, set[str]] = {}

    async def context() -> Any:
        ctx = await browser.new_context(viewport=PHONE, locale="vi-VN")
        ctx.set_default_timeout(15_000)
        return ctx, await ctx.new_page()

    # anonymous: the front pages and the error pages a stranger meets
    ctx, page = await context()
    visited["anonymous"] = await crawl(page, site, "anonymous", "/login", findings)
    for path in ("/reset", f"/dashboard?campaign={CAMPAIGN}", "/khong-co-trang-nay",
                 f"/dashboard/units/NOPE?campaign={CAMPAIGN}"):  # fmt: skip
        await page.goto(site.identity + path)
        await scan(page, site, f"anonymous {path}", findings)
    await csrf_refusal(page, site)
    assert "Phiên làm việc" in await page.inner_text("main")
    await scan(page, site, "anonymous csrf-refusal", findings)
    for path, html in kit_error_pages().items():
        await page.set_content(html)
        await scan(page, site, f"kit {path}", findings)
    await ctx.close()

    # a respondent: the ballot, its errors, the grid; then staff pages are refused (403)
    ctx, page = await context()
    username, password = await credentials(site, PEOPLE[1].email)
    await page.goto(f"{site.identity}/login")
    await login(page, username, password)
    visited["respondent"] = await crawl(page, site, "respondent", "/survey", findings)
    await page.goto(f"{site.identity}/survey")
    await page.click("button[value=review]")
    await scan(page, site, "respondent review-with-errors", findings)
    for path in ("/survey?view=grid", "/admin/registry", f"/progress?campaign={CAMPAIGN}"):
        await page.goto(site.identity + path)
        await scan(page, site, f"respondent {path}", findings)
    await page.goto(f"{site.identity}/survey")  # answer everything: the review, the receipt
    for choice in (
        "#o-DEPT-A-LEAD1-good",
        "#o-DEPT-A-LEAD2-very_good",
        "#o-DEPT-A-DIGI1-dont_know",
    ):
        await page.check(choice)
    await page.click("button[value=review]")
    await page.locator("button[value=submit]").wait_for()
    await scan(page, site, "respondent review", findings)
    await page.click("button[value=submit]")
    await page.locator("#receipt").wait_for()
    await scan(page, site, "respondent receipt", findings)
    await ctx.close()

    for role, user in (
        ("focal point", "focal-a"),
        ("admin", "admin-bt"),
        ("auditor", "auditor-bt"),
    ):
        ctx, page = await context()
        await page.goto(f"{site.identity}/login")
        await login(page, user, site.users[user])
        visited[role] = await crawl(page, site, role, "/", findings)
        await page.goto(f"{site.identity}/admin/staff")  # only unscoped admins: else a 403 page
        await scan(page, site, f"{role} /admin/staff", findings)
        await ctx.close()

    assert len(visited["admin"]) >= 6, visited  # the crawl really walked the admin's pages
    assert any(p.startswith("/progress") for p in visited["focal point"]), visited
    assert any(UNITS["DEPT-A"] for _ in visited)
    report = "\n".join(f"{page}: {'; '.join(p)}" for page, p in sorted(findings.items()))
    assert not findings, f"{len(findings)} pages with findings:\n{report}"


@pytest.mark.unit
def test_the_scan_catches_what_it_should() -> None:
    site = Site("", "", "", "", state_dir=None, env={}, users={"admin-bt": PASSWORD})  # type: ignore[arg-type]  # only names are read
    assert language_problems("Đăng nhập admin-bt tại mot.nguyen@browser.example.vn", site) == []
    found = " ".join(
        language_problems(
            "Not Found · Câu 1 LEAD1 · invitation:w1-3 · BallotSubmitted · failed · −0,00 · "
            "3f2b9c1e-0d4a-4a39-9a51-2b7de0c4e6f1 · sv.form.title",
            site,
        )
    )
    for what in ("'Not Found'", "LEAD1", "invitation:w1-3", "BallotSubmitted", "'failed'",
                 "negative zero", "UUID", "catalog key"):  # fmt: skip
        assert what in found, what
