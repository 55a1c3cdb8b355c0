"""Staff pages on the real stack (decision 34): the navigation bar of every service and role,
the respondent registry and its actions, staff accounts; each action checked on the log."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from nats.js.errors import NotFoundError

from contracts import subjects
from services.identity.accounts import add_user
from tests.security.conftest import (  # noqa: F401  # fixtures used by name
    STAFF_PASSWORD,
    Stack,
    _cookie_value,
    campaign_stack,
    stack,
)
from tests.waiting import eventually

ROLE_NAMES = {
    "admin": "Quản trị",
    "auditor": "Kiểm tra",
    "focal_a": "Đầu mối",
    "respondent": "Người trả lời phiếu",
}
PAGES_BY_ROLE = {
    "admin": [
        ("identity", "/"),
        ("identity", "/admin/registry"),
        ("survey", "/progress"),
        ("scoring", "/dashboard"),
        ("notify", "/deliveries"),
    ],
    "auditor": [("identity", "/"), ("survey", "/progress"), ("scoring", "/dashboard")],
    "focal_a": [("identity", "/focal"), ("survey", "/progress")],
    "respondent": [("identity", "/"), ("survey", "/survey")],
}


async def events_on(s: Stack, subject: str) -> list[dict[str, Any]]:
    """Every event on one subject, in log order."""
    js, found, seq = s.nc.jetstream(), [], 1
    while True:
        try:
            msg = await js.get_msg("PARINDEX", seq=seq, subject=subject, next=True)
        except NotFoundError:
            return found
        found.append(json.loads(msg.data))
        seq = (msg.seq or 0) + 1


async def last_event(s: Stack, subject: str) -> dict[str, Any] | None:
    try:
        msg = await s.nc.jetstream().get_last_msg("PARINDEX", subject)
    except NotFoundError:
        return None
    return json.loads(msg.data)


async def test_nav_bar_on_every_service_for_every_role(campaign_stack: Stack) -> None:  # noqa: F811  # the imported fixture
    s = campaign_stack
    for role, pages in PAGES_BY_ROLE.items():
        for service, path in pages:
            r = await s.request(service, "GET", path, role=role)
            assert r.status_code == 200, (role, service, path, r.status_code)
            bar = r.text[r.text.index("<header>") : r.text.index("</header>")]
            assert ROLE_NAMES[role] in bar, (role, service, path)
            assert 'form="logout-form"' in bar, (role, service)
            # The logout form carries the session's token: it really logs out.
            form = re.search(
                r'<form id="logout-form" method="post" action="([^"]*)">'
                r'<input type="hidden" name="csrf" value="([^"]+)">',
                r.text,
            )
            assert form and form.group(1).endswith("/logout") and form.group(2), (role, service)
            assert "lang=en" in bar and "English" in bar
            if role != "respondent":
                assert s.campaign_id in bar, (role, service, path)
    # Role-appropriate links: the admin's, none of them for a respondent.
    admin_home = await s.request("identity", "GET", "/", role="admin")
    for label in ("Người trả lời", "Thư đã gửi", "Tiến độ", "Kết quả", "Tài khoản"):
        assert label in admin_home.text
    mine = await s.request("survey", "GET", "/survey", role="respondent")
    assert "Phiếu của tôi" in mine.text and "/admin/registry" not in mine.text
    focal = await s.request("survey", "GET", "/progress", role="focal_a")
    assert "Tiến độ đơn vị" in focal.text and "/admin/staff" not in focal.text
    # Logout from the bar of another service's page works with its token.
    page = await s.request("survey", "GET", "/survey", role="respondent")
    token = re.search(r'id="logout-form".*?name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]  # no match: fails
    out = await s.request(
        "identity", "POST", "/logout", token=s.tokens["respondent"], data={"csrf": token}
    )
    assert out.status_code == 303


async def test_registry_search_and_state(campaign_stack: Stack) -> None:  # noqa: F811  # the imported fixture
    s = campaign_stack
    c = s.campaign_id

    async def search(**terms: str) -> httpx.Response:
        r = await s.request(
            "identity", "GET", "/admin/registry", role="admin", params={"campaign": c, **terms}
        )
        assert r.status_code == 200, r.text
        return r

    by_name = await search(name="bình")
    assert "Trần Thị Bình" in by_name.text and "Nguyễn Văn An" not in by_name.text
    by_unit = await search(unit="SNV")
    assert "Nguyễn Văn An" in by_unit.text and "Lê Văn Cường" in by_unit.text
    assert "Trần Thị Bình" not in by_unit.text
    by_email = await search(email="ha.vo")
    assert "Võ Thị Hà" in by_email.text and "Tìm thấy 1 người" in by_email.text
    # Nobody answered; everybody was invited (the projection follows notify's events).
    assert "Chưa trả lời" in by_name.text and "Đã trả lời" not in by_name.text

    async def invited() -> bool:
        return "Đã gửi thư mời" in (await search(name="bình")).text

    await eventually(invited, timeout=30)
    # Never when: no time of day anywhere in the rows.
    assert not re.search(r"\b\d{1,2}:\d{2}\b", (await search()).text.split("<tbody>")[1])


async def test_email_correction_sends_a_new_invitation(campaign_stack: Stack) -> None:  # noqa: F811  # the imported fixture
    s = campaign_stack
    c = s.campaign_id
    person = s.people[2]  # Bình
    new = f"binh.moi.{c}@example.vn"
    r = await s.correct_email(person.respondent_id, new)
    assert r.status_code == 303, r.text
    # The admin is told what follows, the notice to the old address included (decision 48).
    done = await s.request("identity", "GET", r.headers["location"], role="admin")
    assert "địa chỉ cũ đã nhận thư khảo sát" in done.text, done.text
    # The new invitation's CredentialsIssued may already follow it on the same subject.
    updates = [
        e
        for e in await events_on(s, subjects.respondent(c, person.respondent_id))
        if e["type"] == "RespondentUpdated"
    ]
    assert updates and updates[-1]["data"]["email"] == new

    def delivered() -> bool:
        return any(new in str(m["To"]) for m in s.smtp.collector.for_campaign(c))

    await eventually(delivered, timeout=30)
    page = await s.request(
        "identity", "GET", "/admin/registry", role="admin", params={"campaign": c, "email": new}
    )
    assert "Trần Thị Bình" in page.text
    # An invalid address is refused in words, and nothing reaches the log.
    bad = await s.correct_email(person.respondent_id, "x@")
    assert bad.status_code == 422 and "Địa chỉ email chưa đúng" in bad.text
    after = await events_on(s, subjects.respondent(c, person.respondent_id))
    assert after and all(e["data"].get("email") != "x@" for e in after)


async def test_reminder_now_is_rate_limited(campaign_stack: Stack) -> None:  # noqa: F811  # the imported fixture
    s = campaign_stack
    c = s.campaign_id
    person = s.people[3]  # Hà
    form = {"campaign": c, "respondent_id": person.respondent_id, "csrf": "tok"}
    first = await s.request(
        "identity", "POST", "/admin/registry/remind", role="admin", csrf="tok", data=form
    )
    assert first.status_code == 303, first.text
    event = await last_event(s, subjects.respondent_reminder(c, person.respondent_id))
    assert event and event["type"] == "ReminderRequested"
    assert event["data"]["respondent_id"] == person.respondent_id

    def reminded() -> bool:
        return any(
            person.email in str(m["To"])
            and str(m["X-Parindex-Purpose"]).startswith("reminder:now-")
            for m in s.smtp.collector.for_campaign(c)
        )

    await eventually(reminded, timeout=30)
    second = await s.request(
        "identity", "POST", "/admin/registry/remind", role="admin", csrf="tok", data=form
    )
    assert second.status_code == 429
    assert "đã được nhắc hôm nay" in second.text and "ngày mai" in second.text
    # The whole unit: Hà is skipped (already reminded today), Bình is asked.
    unit = await s.request(
        "identity",
        "POST",
        "/admin/registry/remind",
        role="admin",
        csrf="tok",
        data={"campaign": c, "unit": person.unit or "", "csrf": "tok"},
    )
    assert unit.status_code == 303 and "asked=1" in unit.headers["location"]
    binh = await last_event(s, subjects.respondent_reminder(c, s.people[2].respondent_id))
    assert binh and binh["type"] == "ReminderRequested"


async def test_nonrespondents_export(campaign_stack: Stack, tmp_path) -> None:  # noqa: F811  # the imported fixture
    import io

    import openpyxl

    s = campaign_stack
    r = await s.request(
        "identity",
        "GET",
        "/admin/registry/nonrespondents.xlsx",
        role="admin",
        params={"campaign": s.campaign_id, "unit": "SNV"},
    )
    assert r.status_code == 200, r.text
    ws = openpyxl.load_workbook(io.BytesIO(r.content)).active
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0][:3] == ("STT", "Họ và tên", "Đơn vị")
    assert {row[1] for row in rows[1:]} == {"Nguyễn Văn An", "Lê Văn Cường"}
    assert [row[0] for row in rows[1:]] == [1, 2]  # numbers, not text


async def test_staff_accounts_create_reset_disable(campaign_stack: Stack) -> None:  # noqa: F811  # the imported fixture
    s = campaign_stack
    c = s.campaign_id
    root = f"root-{c}"
    await add_user(s.rt("identity").sessions, root, "admin", STAFF_PASSWORD)
    login = await s.login(root, STAFF_PASSWORD)
    assert login.status_code == 303
    token = _cookie_value(login, "parindex_session") or ""

    async def post(path: str, **data: str) -> httpx.Response:
        return await s.request(
            "identity", "POST", path, token=token, csrf="tok", data={**data, "csrf": "tok"}
        )

    name = f"dm-{c}"[:60]
    made = await post("/admin/staff", username=name, role="focal_point", unit_code="SNV")
    assert made.status_code == 200, made.text
    password = re.search(r'id="new-password">([^<]+)<', made.text).group(1)  # type: ignore[union-attr]  # no match: fails
    created = await last_event(s, subjects.staff_account(name))
    assert created and created["type"] == "StaffAccountCreated"
    assert created["data"]["role"] == "focal_point" and created["data"]["created_by"] == root
    assert password not in json.dumps(created)
    assert (await s.login(name, password)).status_code == 303

    dup = await post("/admin/staff", username=name, role="admin")
    assert dup.status_code == 422 and "đã có người dùng" in dup.text
    focal_no_unit = await post("/admin/staff", username=f"x{name}"[:60], role="focal_point")
    assert focal_no_unit.status_code == 422 and "cần mã đơn vị" in focal_no_unit.text

    reset = await post("/admin/staff/reset", username=name)
    assert reset.status_code == 200
    fresh = re.search(r'id="new-password">([^<]+)<', reset.text).group(1)  # type: ignore[union-attr]  # no match: fails
    assert (await last_event(s, subjects.staff_account(name)))["type"] == "StaffPasswordReset"  # type: ignore[index]  # None: fails
    assert (await s.login(name, password)).status_code == 401
    assert (await s.login(name, fresh)).status_code == 303
    # Only the argon2 hash is stored.
    async with s.rt("identity").sessions() as db:
        from sqlalchemy import text

        stored = await db.scalar(
            text("SELECT password_hash FROM identity_users WHERE username = :u"), {"u": name}
        )
    assert stored.startswith("$argon2id$") and fresh not in stored

    off = await post("/admin/staff/disable", username=name)
    assert off.status_code == 303
    disabled = await last_event(s, subjects.staff_account(name))
    assert disabled and disabled["type"] == "StaffAccountDisabled"
    refused = await s.login(name, fresh)
    assert refused.status_code == 401 and "parindex_session" not in str(refused.headers)
    mine = await post("/admin/staff/disable", username=root)
    assert mine.status_code == 409

    # A campaign-scoped admin cannot manage accounts (it could leave its scope).
    scoped = await s.request("identity", "GET", "/admin/staff", role="admin")
    assert scoped.status_code == 403


@pytest.mark.parametrize("role", ["focal_a", "respondent", "auditor"])
async def test_others_cannot_reach_staff_pages(campaign_stack: Stack, role: str) -> None:  # noqa: F811  # the imported fixture
    s = campaign_stack
    c = s.campaign_id
    for path in ("/admin/registry", "/admin/staff", "/admin/registry/nonrespondents.xlsx"):
        r = await s.request(
            "identity", "GET", path, role=role, params={"campaign": c, "unit": "SNV"}
        )
        assert r.status_code == 403, (role, path)
    r = await s.request(
        "identity",
        "POST",
        "/admin/registry/remind",
        role=role,
        csrf="tok",
        data={"campaign": c, "unit": "SNV", "csrf": "tok"},
    )
    assert r.status_code == 403
    assert await last_event(s, subjects.respondent_reminder(c, s.people[0].respondent_id)) is None
