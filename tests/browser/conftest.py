"""A whole parindex stack and a real Chromium for the browser tests.

One `Stack` (NATS, PostgreSQL, the four services, the SMTP catcher) per module, loaded through
the product's own CLI with a small campaign whose wave opened yesterday. Chromium is Debian's
(/usr/bin/chromium): Playwright's own browser download is not used. Without it every test here
is skipped with the reason, so a developer machine without Chromium still runs the rest.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import pytest_asyncio
from openpyxl import Workbook

from parindex.runtime.embedded import free_port
from tests.child_env import child_env

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

CHROMIUM = Path(os.environ.get("PARINDEX_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 768}

CAMPAIGN = "browser-test"
PASSWORD = "Browser-Test-Pw-2024!"
HELPLINE = "0299 3822 345"
UNITS = {"DEPT-A": "Sở Thử nghiệm Alpha", "DEPT-B": "Sở Thử nghiệm Beta"}


@dataclass(frozen=True)
class Person:
    full_name: str
    email: str
    unit_code: str


# r1 answers in the browser, r3 over the JSON API (the dashboard's ballot); r2 never answers,
# so DEPT-A's focal point has a name on its "not answered" list. r4 arrives via /admin/import.
PEOPLE = [
    Person("Nguyễn Văn Một", "mot.nguyen@browser.example.vn", "DEPT-A"),
    Person("Trần Thị Hai", "hai.tran@browser.example.vn", "DEPT-A"),
    Person("Lê Văn Ba", "ba.le@browser.example.vn", "DEPT-B"),
]
LATE = Person("Phạm Thị Bốn", "bon.pham@browser.example.vn", "DEPT-B")


def _missing_reason() -> str | None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        return (
            f"no Chromium at {CHROMIUM}: install Debian's (apt-get install -y chromium); "
            "Playwright's own browser download is not used"
        )
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _missing_reason()
    if reason is None:
        return
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.skip(reason=reason))


def campaign_yaml(now: datetime) -> str:
    opens = (now - timedelta(days=1)).isoformat()
    deadline = (now + timedelta(days=7)).isoformat()
    units = "\n".join(
        f"  - {{code: {code}, kind: department, name: {name}}}" for code, name in UNITS.items()
    )
    return f"""\
id: {CAMPAIGN}
version: 1
name: Khảo sát thử nghiệm trình duyệt
province: Thử nghiệm
year: {now.year}
deadline: "{deadline}"
min_report_size: 1
helpline: "{HELPLINE}"
units:
{units}
x-scales:
  - &quality
    - {{code: very_good, label: Rất tốt, label_en: Very good, weight: 1}}
    - {{code: good, label: Tốt, label_en: Good, weight: 0.75}}
    - {{code: poor, label: Kém, label_en: Poor, weight: 0}}
    - {{code: dont_know, label: Không biết, label_en: Don't know, weight: null}}
forms:
  - code: "03"
    name: Phiếu cán bộ, công chức sở ngành
    group: staff
    rates: own_unit
    respondent_unit_kinds: [department]
    criteria:
      - code: LEAD
        name: Công tác chỉ đạo, điều hành
        max_points: 2
        questions:
          - {{id: LEAD1, text: Sự quan tâm của người đứng đầu, max_points: 1, options: *quality}}
          - {{id: LEAD2, text: Kế hoạch cải cách hành chính, max_points: 1, options: *quality}}
      - code: DIGI
        name: Chính quyền số
        max_points: 1
        questions:
          - {{id: DIGI1, text: Ứng dụng công nghệ thông tin, max_points: 1, options: *quality}}
quotas:
  - {{form_code: "03", unit_code: DEPT-A, ballots: 3}}
  - {{form_code: "03", unit_code: DEPT-B, ballots: 3}}
waves:
  - id: w1
    opens_at: "{opens}"
    members: [{{form_code: "03"}}]
"""


def workbook(people: list[Person]) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = "CCVC sở ngành"
    ws.append(["STT", "Họ và tên", "Email", "Mã đơn vị", "Phiếu"])
    for i, p in enumerate(people, 1):
        ws.append([i, p.full_name, p.email, p.unit_code, "03"])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


@dataclass
class Site:
    """What the tests need of the running stack."""

    identity: str
    survey: str
    scoring: str
    mail: str
    state_dir: Path
    env: dict[str, str]
    users: dict[str, str] = field(default_factory=dict)  # staff username -> password
    findings: dict[str, str | None] = field(default_factory=dict)  # known-bug checks


def cli(env: dict[str, str], *args: str) -> str:
    res = subprocess.run(
        [sys.executable, "-m", "parindex.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, f"parindex {' '.join(args[:2])}: {res.stdout}\n{res.stderr}"
    return res.stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if _missing_reason() is not None:
        pytest.skip(_missing_reason() or "")
    from parindex.runtime.up import Stack

    tmp = tmp_path_factory.mktemp("browser")
    now = datetime.now(UTC).replace(microsecond=0)
    stack = Stack(
        state_dir=tmp / "state",
        port=free_port(),  # never the default front door another run may hold
        extra_env={
            "PARINDEX_CLOCK_START": now.isoformat(),
            "PARINDEX_CLOCK_EPOCH": f"{time.time():.3f}",
            "PARINDEX_CLOCK_SPEED": "1",
            "PARINDEX_MAIL_RATE": "200",
            "PARINDEX_NOTIFY_POLL_S": "0.2",
        },
    )
    try:
        endpoints = stack.start(timeout=90)
        env = child_env()
        env.update(stack.envs["identity"])
        campaign_file = tmp / "campaign.yaml"
        campaign_file.write_text(campaign_yaml(now), encoding="utf-8")
        people_file = tmp / "respondents.xlsx"
        people_file.write_bytes(workbook(PEOPLE))
        users = {"admin-bt": PASSWORD, "focal-a": PASSWORD}
        # Each CLI call takes seconds to start: the independent ones run side by side.
        with ThreadPoolExecutor(3) as pool:
            loading = [
                pool.submit(cli, env, "campaign", "load", str(campaign_file)),
                pool.submit(
                    cli, env, "users", "add", "admin-bt", "--role", "admin",
                    "--password", PASSWORD,
                ),
                pool.submit(
                    cli, env, "users", "add", "focal-a", "--role", "focal_point",
                    "--unit", "DEPT-A", "--campaign", CAMPAIGN, "--password", PASSWORD,
                ),
            ]  # fmt: skip
            for f in loading:
                f.result()
        cli(env, "respondents", "import", str(people_file), "--campaign", CAMPAIGN)
        svc = endpoints["services"]
        yield Site(
            identity=svc["identity"],
            survey=svc["survey"],
            scoring=svc["scoring"],
            mail=endpoints["mail"],
            state_dir=stack.state_dir,
            env=env,
            users=users,
        )
    finally:
        stack.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser(site: Site) -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        await b.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh context (no cookies) per test, on the phone viewport."""
    context = await browser.new_context(viewport=PHONE, locale="vi-VN")
    context.set_default_timeout(15_000)
    p = await context.new_page()
    yield p
    await context.close()


async def credentials(site: Site, email: str, timeout: float = 45.0) -> tuple[str, str]:
    """The username and password from this person's invitation e-mail, once it has arrived."""
    import re

    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5) as http:
        while True:
            for m in (await http.get(f"{site.mail}/api/messages")).json():
                if email in m["to"]:
                    user = re.search(r"Tên đăng nhập:\s*(\S+)", m["text"])
                    pw = re.search(r"Mật khẩu(?: mới)?:\s*(\S+)", m["text"])
                    assert user and pw, f"no credential in the invitation: {m['text']!r}"
                    return user.group(1), pw.group(1)
            assert time.monotonic() < deadline, f"no invitation to {email} within {timeout}s"
            await _sleep(0.3)


async def _sleep(s: float) -> None:
    import asyncio

    await asyncio.sleep(s)
