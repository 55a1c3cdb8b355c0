"""All four services in-process on the real NATS and PostgreSQL of tests/conftest.py.

`stack` starts identity, survey, scoring and notify (with an aiosmtpd server catching the
invitations), each as its FastAPI app with its lifespan entered by hand, talking to each other
only over NATS as in production. `campaign_setup` then runs a small campaign through the real
paths: admin login, campaign definition over HTTP, respondent import (Excel), the wave opening
on the survey clock, notify asking identity for credentials by RPC and mailing them, and every
respondent logging in with the mailed password. Every secret that appears is recorded so the
tests can look for it where it must not be.
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio

from parindex.settings import Settings
from parindex.web.auth import COOKIE, Principal, issue_token
from parindex.web.csrf import load_key, token_for
from parindex.web.service import create_app
from services.identity.accounts import add_user
from tests.identity.conftest import VN_HEADERS, make_campaign
from tests.notify.test_service import Smtp
from tests.waiting import eventually

BEFORE = datetime.fromisoformat("2023-09-01T00:00:00+07:00")
OPEN = datetime.fromisoformat("2023-09-22T10:00:00+07:00")
AFTER = datetime.fromisoformat("2023-10-07T09:00:00+07:00")
CSRF_COOKIE = "parindex_csrf"
STAFF_PASSWORD = "staff-password-0123"
# Option codes distinctive enough to grep for in any response body.
OPTION_CODES = {"a": "zqoptgood", "b": "zqoptbad", "c": "zqoptdk"}
UNIT_A, UNIT_B = "SNV", "CTH"
HELPLINE = "0299 3822 345 (Sở Nội vụ)"
ROLES = ("anonymous", "respondent", "focal_a", "focal_b", "admin", "auditor")

# (name, e-mail local part, unit, form): two people in each focal point's unit.
PEOPLE = [
    ("Nguyễn Văn An", "an.nguyen", UNIT_A, "03"),
    ("Lê Văn Cường", "cuong.le", UNIT_A, "03"),
    ("Trần Thị Bình", "binh.tran", UNIT_B, "05"),
    ("Võ Thị Hà", "ha.vo", UNIT_B, "05"),
    ("Phạm Thị Dung", "dung.pham", None, "01"),
]


def campaign_document(campaign_id: str) -> dict[str, Any]:
    doc = make_campaign().model_dump(mode="json")
    doc["id"] = campaign_id
    doc["helpline"] = HELPLINE
    doc["waves"][0]["members"] = [{"form_code": f["code"]} for f in doc["forms"]]
    for form in doc["forms"]:
        for crit in form["criteria"]:
            for q in crit["questions"]:
                for o in q["options"]:
                    o["code"] = OPTION_CODES[o["code"]]
    return doc


@dataclass
class Person:
    name: str
    email: str
    unit: str | None
    form: str
    respondent_id: str = ""
    username: str = ""
    password: str = ""
    token: str = ""


@dataclass
class Stack:
    apps: dict[str, Any]
    clients: dict[str, httpx.AsyncClient]
    smtp: Smtp
    nc: Any
    pg_url: str
    ballot_key: str
    campaign_id: str
    people: list[Person] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)  # role -> session token
    passwords: list[str] = field(default_factory=list)  # every plaintext handed out
    session_tokens: list[str] = field(default_factory=list)  # every cookie value issued

    def rt(self, service: str) -> Any:
        return self.apps[service].state.rt

    def set_clock(self, at: datetime) -> None:
        self.rt("survey").extras["clock"].set(at)

    def form_token(self, *, session: str | None = None, nonce: str | None = None) -> str:
        """The form token a page of this stack draws for that session (or anonymous nonce)."""
        key = load_key(self.apps["identity"].state.settings)
        return token_for(key, session=session, nonce=nonce)

    def mint(self, p: Principal) -> str:
        token = issue_token(self.rt("identity").extras["private_key"], p)
        self.session_tokens.append(token)
        return token

    async def request(
        self,
        service: str,
        method: str,
        path: str,
        *,
        role: str | None = None,
        token: str | None = None,
        csrf: str | None = None,
        json_header: bool = True,
        **kw: Any,
    ) -> httpx.Response:
        """One request with exactly the cookies given: the session of `role` (or `token`)
        and, if `csrf`, the anonymous CSRF nonce cookie; nothing remembered from earlier
        responses. A form field `csrf` equal to `csrf` is replaced by the valid token of this
        request's session (or nonce), as the page would have drawn it; JSON writes carry
        `X-Requested-With: parindex` unless `json_header` is false."""
        client = self.clients[service]
        client.cookies.clear()
        token = token or (self.tokens.get(role) if role else None)
        cookies = []
        if token:
            cookies.append(f"{COOKIE}={token}")
        if csrf:
            cookies.append(f"{CSRF_COOKIE}={csrf}")
            data = kw.get("data")
            if isinstance(data, dict) and data.get("csrf") == csrf:
                kw["data"] = {**data, "csrf": self.form_token(session=token, nonce=csrf)}
        headers = dict(kw.pop("headers", {}) or {})
        if csrf and headers.get("X-CSRF-Token") == csrf:
            headers["X-CSRF-Token"] = self.form_token(session=token, nonce=csrf)
        if json_header and "json" in kw:
            headers.setdefault("X-Requested-With", "parindex")
        if cookies:
            headers["Cookie"] = "; ".join(cookies)
        return await client.request(method, path, headers=headers, **kw)

    async def correct_email(self, respondent_id: str, email: str) -> httpx.Response:
        """The admin's address correction in the registry (notify invites the new address)."""
        return await self.request(
            "identity",
            "POST",
            "/admin/registry/email",
            role="admin",
            csrf="tok",
            data={
                "campaign": self.campaign_id,
                "respondent_id": respondent_id,
                "email": email,
                "csrf": "tok",
            },
        )

    async def login(self, username: str, password: str) -> httpx.Response:
        page = await self.request("identity", "GET", "/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]  # no match: fails
        resp = await self.request(
            "identity",
            "POST",
            "/login",
            csrf=csrf,
            data={"username": username, "password": password, "csrf": csrf},
        )
        token = _cookie_value(resp, COOKIE)
        if token:
            self.session_tokens.append(token)
        return resp


def _cookie_value(resp: httpx.Response, name: str) -> str | None:
    for header in resp.headers.get_list("set-cookie"):
        key, _, rest = header.partition("=")
        if key.strip() == name:
            return rest.split(";", 1)[0].strip('"')
    return None


def write_xlsx(rows: list[list[object]], path: Path) -> bytes:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    for r, values in enumerate(rows, start=1):
        for c, value in enumerate(values, start=1):
            cell = ws.cell(row=r, column=c, value=value)
            if isinstance(value, str) and value.startswith("="):
                cell.data_type = "s"
    wb.save(path)
    return path.read_bytes()


def _mail_text(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",)) if msg.is_multipart() else msg
    return part.get_content() if part is not None else ""


@pytest_asyncio.fixture
async def stack(nats_url, pg_url, nc, tmp_path, campaign_id) -> AsyncIterator[Stack]:
    from services.identity.service import SERVICE as IDENTITY
    from services.notify.config import NotifyConfig
    from services.notify.service import make_service
    from services.scoring.service import SERVICE as SCORING
    from services.survey.service import SERVICE as SURVEY

    smtp = Smtp()
    smtp.start()
    ballot_key = f"ballot-key-{uuid.uuid4().hex}"
    settings = Settings(
        nats_url=nats_url,
        database_url=pg_url,
        state_dir=tmp_path,
        ballot_key=ballot_key,
        clock_start=BEFORE.isoformat(),
        clock_speed=1.0,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
    )
    # A client address of our own, so other tests' failed logins never throttle ours.
    ip = str(ipaddress.IPv4Address(random.randint(0x0A000001, 0x0AFFFFFE)))
    apps: dict[str, Any] = {}
    clients: dict[str, httpx.AsyncClient] = {}
    async with contextlib.AsyncExitStack() as stack_:
        for name, spec in (("identity", IDENTITY), ("survey", SURVEY), ("scoring", SCORING)):
            apps[name] = create_app(spec, settings)
            await stack_.enter_async_context(apps[name].router.lifespan_context(apps[name]))
        survey_clock = apps["survey"].state.rt.extras["clock"]
        notify_spec = make_service(
            NotifyConfig(
                poll_s=0.05, clock=survey_clock, retry_base_s=0.1, reminder_interval_s=3600
            )
        )
        apps["notify"] = create_app(notify_spec, settings)
        await stack_.enter_async_context(apps["notify"].router.lifespan_context(apps["notify"]))
        for name, app in apps.items():
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(ip, 4321))
            clients[name] = await stack_.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url=f"http://{name}")
            )
        yield Stack(apps, clients, smtp, nc, pg_url, ballot_key, campaign_id)
    smtp.stop()


async def setup_campaign(s: Stack, tmp_path: Path) -> Stack:
    """Staff accounts, campaign, import, wave opened, invitations mailed, everybody logged in."""
    c = s.campaign_id
    sessions = s.rt("identity").sessions
    staff = {
        "admin": ("admin", None),
        "auditor": ("auditor", None),
        "focal_a": ("focal_point", UNIT_A),
        "focal_b": ("focal_point", UNIT_B),
    }
    for role, (kind, unit) in staff.items():
        user = f"{role}-{c}"
        await add_user(sessions, user, kind, STAFF_PASSWORD, unit_code=unit, campaign_id=c)
        resp = await s.login(user, STAFF_PASSWORD)
        assert resp.status_code == 303, resp.text
        s.tokens[role] = _cookie_value(resp, COOKIE) or ""

    r = await s.request("survey", "POST", "/api/campaigns", role="admin", json=campaign_document(c))
    assert r.status_code == 201, r.text

    rows: list[list[object]] = [VN_HEADERS]
    for i, (name, local, unit, form) in enumerate(PEOPLE, start=1):
        rows.append([i, name, f"{local}.{c}@example.vn", unit, form, None])
        s.people.append(Person(name, f"{local}.{c}@example.vn", unit, form))
    content = write_xlsx(rows, tmp_path / "ds.xlsx")

    async def imported() -> httpx.Response | None:
        resp = await s.request(
            "identity",
            "POST",
            "/api/respondents/import",
            role="admin",
            csrf="tok",
            data={"campaign": c, "csrf": "tok"},
            files={"file": ("ds.xlsx", content)},
        )
        return None if resp.status_code == 404 else resp  # identity has not seen it yet

    resp = await eventually(imported, timeout=30)
    assert resp.status_code == 200, resp.text
    by_email = {p["email"]: p for p in resp.json()["respondents"]}
    for person in s.people:
        person.respondent_id = by_email[person.email]["respondent_id"]
        person.username = by_email[person.email]["username"]

    s.set_clock(OPEN)
    await eventually(lambda: len(s.smtp.collector.for_campaign(c)) >= len(s.people), timeout=60)
    for msg in s.smtp.collector.for_campaign(c):
        body = _mail_text(msg)
        username = re.search(r"Tên đăng nhập:\s+(\S+)", body).group(1)  # type: ignore[union-attr]  # no match: fails
        password = re.search(r"Mật khẩu:\s+(\S+)", body).group(1)  # type: ignore[union-attr]  # no match: fails
        person = next(p for p in s.people if p.username == username)
        person.password = password
        s.passwords.append(password)
    for person in s.people:
        resp = await s.login(person.username, person.password)
        assert resp.status_code == 303, (person.username, resp.text)
        person.token = _cookie_value(resp, COOKIE) or ""
    s.tokens["respondent"] = s.people[0].token  # An, unit A, form 03

    async def form_open() -> bool:
        r = await s.request("survey", "GET", "/api/form", role="respondent")
        return r.status_code == 200 and r.json()["open"]

    await eventually(form_open, timeout=30)
    return s


@pytest_asyncio.fixture
async def campaign_stack(stack: Stack, tmp_path: Path) -> Stack:
    return await setup_campaign(stack, tmp_path)
