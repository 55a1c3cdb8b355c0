"""A new province's campaign, from an empty stack to the official report, through pages only
(issues #15 and #16, "Tests"; docs/architecture.md, decisions 38, 39, 37, 32 and 33).

One stack of its own on a campaign clock the test holds (the pace file every service reads):
time stands still and the test moves it to the wave's opening and past the deadline, so a slow
machine makes the test longer, never different. The admin builds the campaign in the
downloaded workbook (openpyxl, as an official types into Excel), uploads, reads the preview and
publishes; imports the respondent list through the preview and the confirm; a respondent on a
phone opens the invitation's link, the admin sends a reminder from the registry meanwhile, and
the invitation's password still works (the reminder says so); others answer over the JSON API
(what their phones do), so two units reach their quota and one falls short; at the deadline the
results freeze, the admin publishes them on the results page, and the report PDF read back with
pdftotext carries each unit's score exactly as that page shows it. No YAML and no CLI: the first
admin account is created with `services.identity.accounts.add_user` on identity's database,
since no page can create the first admin.
"""

from __future__ import annotations

import asyncio
import io
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import openpyxl
import pytest
import pytest_asyncio

from parindex.clock import write_pace
from parindex.runtime.embedded import free_port
from tests.browser.conftest import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    PHONE,
    Site,
    _missing_reason,
)
from tests.browser.test_ballot_phone import check_form_page
from tests.browser.test_workbook_pages import put
from tests.child_env import child_env
from tests.scoring.test_report import pdf_text
from tests.waiting import eventually

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

NEW = "dongthap-e2e"
ADMIN, ADMIN_PW = "admin-dt", "Dong-Thap-Admin-2026!"
WAVE_IN = timedelta(minutes=15)  # campaign time stands still until the test moves it
DEADLINE_IN = timedelta(minutes=60)
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
UNITS = {
    "H-CAOLANH": ("Thành phố Cao Lãnh", "UBND cấp huyện"),
    "H-SADEC": ("Thành phố Sa Đéc", "UBND cấp huyện"),
    "S-NOIVU": ("Sở Nội vụ Đồng Tháp", "Sở ngành"),
}
QUOTA = {"H-CAOLANH": 2, "H-SADEC": 2, "S-NOIVU": 2}
FORM_OF = {"H-CAOLANH": "06", "H-SADEC": "06", "S-NOIVU": "03"}
# (name, e-mail, unit). The first answers on a phone; the last never answers, so S-NOIVU
# falls short of its quota (1 of 2) and loses points (decision 16's proportional penalty).
PEOPLE = [
    ("Nguyễn Thị Điện Thoại", "dt.phone@dongthap.example.vn", "H-CAOLANH"),
    ("Trần Văn Cao", "cao.tran@dongthap.example.vn", "H-CAOLANH"),
    ("Lê Thị Sa", "sa.le@dongthap.example.vn", "H-SADEC"),
    ("Phạm Văn Đéc", "dec.pham@dongthap.example.vn", "H-SADEC"),
    ("Võ Thị Vụ", "vu.vo@dongthap.example.vn", "S-NOIVU"),
    ("Huỳnh Văn Vắng", "vang.huynh@dongthap.example.vn", "S-NOIVU"),
]
PHONE_PERSON, SILENT = PEOPLE[0], PEOPLE[-1]
# Scores out of 2 (two questions of 1 point; Rất tốt 1, Tốt 0,75, Chưa tốt 0,25): Cao Lãnh
# (1 + 0,75 on the phone, 2 over the API) / 2 = 1,875 → 1,88; Sa Đéc (1,5 + 0,5) / 2 = 1,00;
# Sở Nội vụ 2,00 with 1 of 2 ballots, so half its points are lost: 1,00 (penalty −1,00).
EXPECTED = {"H-CAOLANH": "1,88", "H-SADEC": "1,00", "S-NOIVU": "1,00"}


class Clock:
    """The stack's campaign clock, held by this test through the pace file every service reads
    (parindex/clock.py, StartedLaterClock): campaign time stands still, and moves only when the
    test moves it, so a slow machine changes how long the test takes, never what it sees."""

    def __init__(self, pace_file: Path) -> None:
        self.start = datetime.now(UTC).replace(microsecond=0)
        self.at = self.start
        self.pace_file = pace_file
        write_pace(pace_file, self.start, 0.0)

    def now(self) -> datetime:
        return self.at

    def jump(self, at: datetime) -> None:
        """Campaign time is `at` from now on, for every service within a quarter second."""
        self.at = at
        write_pace(self.pace_file, at, 0.0)

    def env(self) -> dict[str, str]:
        return {
            "PARINDEX_CLOCK_START": self.start.isoformat(),
            "PARINDEX_CLOCK_EPOCH_FILE": str(self.pace_file),
            "PARINDEX_CLOCK_SPEED": "1",
        }


async def _add_admin(database_url: str) -> None:
    from parindex.db.engine import prepare, sessionmaker
    from parindex.settings import database_url_for
    from services.identity.accounts import add_user
    from services.identity.cli import VERSIONS

    engine = await prepare(database_url_for(database_url, "parindex_identity"), VERSIONS)
    try:
        await add_user(sessionmaker(engine), ADMIN, "admin", ADMIN_PW)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def stack_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, Clock]]:
    """A stack of this module's own (state dir, clock), with one admin account and nothing else."""
    if _missing_reason() is not None:
        pytest.skip(_missing_reason() or "")
    if shutil.which("pdftotext") is None or shutil.which("pdftoppm") is None:
        pytest.skip("poppler-utils (pdftotext, pdftoppm) not installed")
    from parindex.runtime.up import Stack

    state_root = tmp_path_factory.mktemp("new-province")
    clock = Clock(state_root / "pace")
    stack = Stack(
        state_dir=state_root / "state",
        port=free_port(),
        extra_env={
            **clock.env(),
            "PARINDEX_MAIL_RATE": "200",
            "PARINDEX_NOTIFY_POLL_S": "0.2",
        },
    )
    try:
        endpoints = stack.start(timeout=90)
        asyncio.run(_add_admin(endpoints["database_url"]))
        env = child_env()
        svc = endpoints["services"]
        yield (
            Site(
                identity=svc["identity"],
                survey=svc["survey"],
                scoring=svc["scoring"],
                mail=endpoints["mail"],
                state_dir=stack.state_dir,
                env=env,
                users={ADMIN: ADMIN_PW},
            ),
            clock,
        )
    finally:
        stack.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def chromium(stack_site: tuple[Site, Clock]) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        await b.close()


def fill(template: bytes, clock: Clock) -> tuple[bytes, datetime, datetime]:
    """The official's campaign: three units, two forms, quotas, one wave, a near deadline.

    Times are typed as the province's wall clock (decision 38: local to the campaign's zone),
    placed on the stack's accelerated clock. Returns the workbook, the wave's and deadline's time.
    """
    now = clock.now().replace(second=0, microsecond=0) + timedelta(minutes=1)
    opens, deadline = now + WAVE_IN, now + DEADLINE_IN

    def local(t: datetime) -> datetime:
        return t.astimezone(ZONE).replace(tzinfo=None)

    wb = openpyxl.load_workbook(io.BytesIO(template))
    values = {
        "Mã đợt điều tra": NEW,
        "Tên đợt điều tra": f"Điều tra xã hội học Chỉ số CCHC tỉnh Đồng Tháp năm {now.year}",
        "Tỉnh": "Đồng Tháp",
        "Năm": now.year,
        "Hạn chót trả lời phiếu": local(deadline),
        "Nhắc trước hạn chót (số ngày)": None,  # only the reminder the admin sends
        "Số phiếu tối thiểu để hiện phân bố": 1,
        "Cơ quan chủ quản (đầu báo cáo)": "UBND TỈNH ĐỒNG THÁP",
        "Cơ quan ban hành báo cáo": "SỞ NỘI VỤ",
    }
    for row in wb["Cài đặt"].iter_rows(min_row=2):
        if row[0].value in values:
            row[1].value = values[row[0].value]
    for code, (name, kind) in UNITS.items():
        put(wb["Đơn vị"], [code, name, None, kind])
    forms = wb["Phiếu"]
    put(forms, ["06", "Phiếu CCVC UBND cấp huyện", None, "staff", "Đơn vị của người trả lời",
                "UBND cấp huyện", None])  # fmt: skip
    put(forms, ["03", "Phiếu CCVC sở ngành", None, "staff", "Đơn vị của người trả lời",
                "Sở ngành", None])  # fmt: skip
    q = wb["Tiêu chí và câu hỏi"]
    for form in ("06", "03"):
        put(q, [form, "LEAD", "Chỉ đạo, điều hành", None, 2,
                "LEAD1", "Sự quan tâm của lãnh đạo", None, 1, "Có", "Thang 1"])  # fmt: skip
        put(q, [form, "LEAD", None, None, None,
                "LEAD2", "Kế hoạch cải cách hành chính", None, 1, "Có", "Thang 1"])  # fmt: skip
    for unit, ballots in QUOTA.items():
        put(wb["Chỉ tiêu"], [FORM_OF[unit], unit, ballots])
    for form in ("06", "03"):
        put(wb["Đợt khảo sát"], ["w1", local(opens), form, None])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue(), opens, deadline


def respondents() -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Danh sách"
    ws.append(["STT", "Họ và tên", "Email", "Mã đơn vị", "Phiếu"])
    for i, (name, email, unit) in enumerate(PEOPLE, 1):
        ws.append([i, name, email, unit, FORM_OF[unit]])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


async def _mail(site: Site, email: str, needle: str) -> dict | None:
    async with httpx.AsyncClient(timeout=5) as http:
        for m in (await http.get(f"{site.mail}/api/messages")).json():
            if email in m["to"] and needle in m["text"]:
                return dict(m)
    return None


def _credentials(text: str) -> tuple[str, str, str]:
    link = re.search(r"Địa chỉ khảo sát:\s*(\S+)", text)
    user = re.search(r"Tên đăng nhập:\s*(\S+)", text)
    pw = re.search(r"Mật khẩu:\s*(\S+)", text)
    assert link and user and pw, f"no link or credential in the invitation: {text!r}"
    return link.group(1), user.group(1), pw.group(1)


async def _login(page: Any, username: str, password: str) -> None:
    await page.fill("#username", username)
    await page.fill("#password", password)
    async with page.expect_navigation():
        await page.click("form[action='/login'] button[type=submit]")


async def _stage(page: Any) -> str | None:
    """The campaign's stage as the staff bar shows it (decision 39)."""
    bar = page.locator("#campaign-bar [data-stage]")
    return await bar.get_attribute("data-stage") if await bar.count() else None


async def _ballot_over_api(site: Site, email: str, pick: int) -> None:
    """What another respondent's phone does, through the JSON API, from the invitation."""
    invitation = await eventually(lambda: _mail(site, email, "Tên đăng nhập"), timeout=45)
    assert isinstance(invitation, dict)
    _link, username, password = _credentials(invitation["text"])
    async with httpx.AsyncClient(timeout=30) as http:
        form = await http.get(f"{site.identity}/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf
        r = await http.post(
            f"{site.identity}/login",
            data={"username": username, "password": password, "csrf": csrf.group(1)},
        )
        assert r.status_code == 303, r.text
        data = (await http.get(f"{site.survey}/api/form")).json()
        answers = [
            {
                "unit_code": u["code"],
                "question_id": q["id"],
                "option_code": q["options"][pick]["code"],
            }
            for u in data["rated_units"]
            for c in data["form"]["criteria"]
            for q in c["questions"]
        ]
        r = await http.post(
            f"{site.survey}/api/ballots",
            json={"answers": answers, "client_submission_id": f"e2e-{email}"},
            headers={"X-Requested-With": "parindex"},
        )
        assert r.status_code == 201, r.text


@pytest.mark.timeout(300)
async def test_a_new_province_from_workbook_to_report(
    stack_site: tuple[Site, Clock], chromium: Any, tmp_path: Path
) -> None:
    site, clock = stack_site
    admin_ctx = await chromium.new_context(viewport={"width": 1366, "height": 768}, locale="vi-VN")
    admin_ctx.set_default_timeout(20_000)
    phone_ctx = await chromium.new_context(viewport=PHONE, locale="vi-VN", has_touch=True)
    phone_ctx.set_default_timeout(20_000)
    try:
        admin = await admin_ctx.new_page()
        await _journey(site, clock, admin, await phone_ctx.new_page(), tmp_path)
    finally:
        await admin_ctx.close()
        await phone_ctx.close()


async def _journey(site: Site, clock: Clock, admin: Any, phone: Any, tmp: Path) -> None:
    # 1. The campaign, made in the workbook (decision 38).
    await admin.goto(f"{site.identity}/login")
    await _login(admin, ADMIN, ADMIN_PW)
    await admin.goto(f"{site.survey}/admin/campaigns")
    async with admin.expect_download() as info:
        await admin.get_by_role("link", name="Tải sổ tay mẫu (.xlsx)").click()
    template = tmp / "mau.xlsx"
    await (await info.value).save_as(template)
    body, opens, deadline = fill(template.read_bytes(), clock)  # noqa: ASYNC240  # small local file
    filled = tmp / "dong-thap.xlsx"
    filled.write_bytes(body)  # noqa: ASYNC240  # small local file, in a test
    await admin.set_input_files("#wb-file", str(filled))
    async with admin.expect_navigation():
        await admin.get_by_role("button", name="Tải lên và xem trước").click()
    assert "/admin/campaigns/drafts/" in admin.url, await admin.inner_text("main")
    assert await _stage(admin) == "draft"
    assert await admin.inner_text("#quota-total") == str(sum(QUOTA.values()))
    shown = deadline.astimezone(ZONE).strftime("%d/%m/%Y %H:%M")
    assert shown in await admin.inner_text("#deadline")
    assert opens.astimezone(ZONE).strftime("%d/%m/%Y %H:%M") in await admin.inner_text("#waves")
    async with admin.expect_navigation():
        await admin.get_by_role("button", name="Công bố đợt khảo sát").click()
    assert f"Đã công bố đợt khảo sát {NEW}" in await admin.inner_text("main")

    # 2. The respondent list: preview, then confirm, into the campaign the bar picks (39).
    async def importable() -> bool:
        await admin.goto(f"{site.identity}/admin/import?campaign={NEW}")
        return await admin.locator("#file").count() == 1 and NEW in await admin.inner_text("main")

    await eventually(importable, timeout=30, interval=0.5)
    assert await _stage(admin) in ("published", "collecting")  # the wave may open meanwhile
    await admin.set_input_files(
        "#file",
        files=[{"name": "danh-sach.xlsx", "mimeType": "application/octet-stream",
                "buffer": respondents()}],
    )  # fmt: skip
    async with admin.expect_navigation():
        await admin.click("form[action='/admin/import'] button[type=submit]")
    assert await admin.inner_text("[data-count=new]") == str(len(PEOPLE))
    assert SILENT[0] in await admin.inner_text("#preview-new")
    async with admin.expect_navigation():
        await admin.click("form[action='/admin/import/confirm'] button[type=submit]")
    assert f"Mới: {len(PEOPLE)}" in await admin.inner_text("body")
    clock.jump(opens + timedelta(minutes=1))  # the wave opens; time stands there again

    # 3. On a phone: the invitation's link, a reminder meanwhile, the invitation's password.
    invitation = await eventually(
        lambda: _mail(site, PHONE_PERSON[1], "Tên đăng nhập"), timeout=60, interval=0.3
    )
    assert isinstance(invitation, dict)
    link, username, password = _credentials(invitation["text"])
    assert link.startswith(site.survey), link
    await phone.goto(link)
    assert "/login" in phone.url, phone.url
    await admin.goto(f"{site.identity}/admin/registry?campaign={NEW}&name={PHONE_PERSON[0]}")
    row = admin.locator("tbody tr", has_text=PHONE_PERSON[0])
    await row.locator("summary").click()
    async with admin.expect_navigation():
        await row.get_by_role("button", name="Nhắc ngay").click()
    assert "Đã yêu cầu gửi thư nhắc tới 1 người." in await admin.inner_text("main")
    reminder = await eventually(
        lambda: _mail(site, PHONE_PERSON[1], "chưa nhận được phiếu khảo sát"), timeout=45
    )
    assert isinstance(reminder, dict)
    assert "Mật khẩu trong thư mời trước đây vẫn dùng được" in reminder["text"]
    assert password not in reminder["text"]
    await _login(phone, username, password)
    assert phone.url.startswith(f"{site.survey}/survey"), phone.url
    assert UNITS["H-CAOLANH"][0] in await phone.inner_text("main")
    await check_form_page(phone, "new-province-form")  # 44 px targets, no codes, no side scroll
    for i, q in enumerate(await phone.locator("fieldset.question").all()):
        await q.locator(".option label").nth(i % 2).tap()  # Rất tốt, then Tốt
    async with phone.expect_navigation():
        await phone.click("button[value=review]")
    async with phone.expect_navigation():
        await phone.click("button[value=submit]")
    assert (await phone.inner_text("#receipt")).strip()
    await check_form_page(phone, "new-province-receipt")
    await phone.screenshot(path=str(ARTIFACTS / "new-province-receipt-390x844.png"))

    # 4. The others, over the API: H-CAOLANH and H-SADEC reach 2 of 2, S-NOIVU 1 of 2.
    others = [p for p in PEOPLE if p not in (PHONE_PERSON, SILENT)]
    await asyncio.gather(*(_ballot_over_api(site, p[1], n % 3) for n, p in enumerate(others)))
    await admin.goto(f"{site.identity}/admin/registry?campaign={NEW}")
    assert await _stage(admin) == "collecting"
    # While it runs nobody sees a score, the admin included (decision 16).
    await admin.goto(f"{site.scoring}/dashboard?campaign={NEW}")
    assert "chỉ hiển thị số phiếu đã nhận" in await admin.inner_text("main")
    assert await admin.locator("td.num strong").count() == 0
    clock.jump(deadline + timedelta(minutes=1))

    # The results (scoring's projection) and the staff bar (every service's stage watch,
    # decision 39) follow the log each on its own: wait for both.
    async def frozen() -> bool:
        await admin.goto(f"{site.scoring}/dashboard?campaign={NEW}")
        button = await admin.locator("form[action='/publish'] button").count() == 1
        return button and await _stage(admin) == "results_frozen"

    await eventually(frozen, timeout=60, interval=1.0)
    assert "Kết quả chưa công bố" in await admin.inner_text("main")
    digest = (await admin.inner_text("code.digest")).strip()
    # The digest is 64 characters without a space: on a phone it wraps, the pages stay narrow.
    await admin.set_viewport_size(PHONE)
    for path in ("dashboard", "report"):
        await admin.goto(f"{site.scoring}/{path}?campaign={NEW}")
        widths = await admin.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] <= widths[1], f"/{path} scrolls sideways on a phone: {widths}"
    await admin.set_viewport_size({"width": 1366, "height": 768})
    await admin.goto(f"{site.scoring}/dashboard?campaign={NEW}")
    async with admin.expect_navigation():
        await admin.click("form[action='/publish'] button")

    async def published() -> dict[str, str] | None:
        await admin.goto(f"{site.scoring}/dashboard?campaign={NEW}")
        if await admin.locator("form[action='/publish']").count():
            return None
        if await _stage(admin) != "results_published":
            return None
        scores = {}
        for code, (name, _kind) in UNITS.items():
            tr = admin.locator("tbody tr", has_text=name)
            if not await tr.locator("td.num strong").count():
                return None
            scores[code] = (await tr.locator("td.num strong").inner_text()).strip()
        return scores

    scores = await eventually(published, timeout=30, interval=0.5)
    assert isinstance(scores, dict)
    assert f"bởi {ADMIN}" in await admin.inner_text("main")
    assert (await admin.inner_text("code.digest")).strip() == digest
    short = admin.locator("tbody tr", has_text=UNITS["S-NOIVU"][0])
    assert "1 / 2" in await short.inner_text()
    assert await short.locator("td.num.bad").count() == 1, "the short unit lost no points"
    for code in ("H-CAOLANH", "H-SADEC"):
        row_text = await admin.locator("tbody tr", has_text=UNITS[code][0]).inner_text()
        assert "2 / 2" in row_text, row_text
    assert scores == EXPECTED
    penalty = (await short.locator("td.num.bad").inner_text()).strip()
    assert penalty.endswith("1,00"), penalty
    await admin.screenshot(path=str(ARTIFACTS / "new-province-results-1366x768.png"))

    # The official report: each unit's score as the results page shows it (decision 33).
    cookies = {c["name"]: c["value"] for c in await admin.context.cookies()}
    async with httpx.AsyncClient(base_url=site.scoring, cookies=cookies, timeout=60) as http:
        pdf = await http.get("/export/report.pdf", params={"campaign": NEW, "lang": "vi"})
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    (ARTIFACTS / "new-province-report.pdf").write_bytes(pdf.content)
    layout = pdf_text(pdf.content, tmp)
    text = " ".join(layout.split())
    assert "DỰ THẢO" not in text and "ĐỒNG THÁP" in text.upper() and digest in text
    for code, shown in scores.items():  # a figure of the unit's own line in the ranking
        name = UNITS[code][0]
        lines = [line.split(name, 1)[1].split() for line in layout.splitlines() if name in line]
        assert any(shown in figures for figures in lines), (code, shown, lines)
    noivu = [ln.split() for ln in layout.splitlines() if UNITS["S-NOIVU"][0] in ln]
    assert any(penalty in figures for figures in noivu), (penalty, noivu)
