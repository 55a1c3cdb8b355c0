"""The focal point's (đầu mối) page on the real stack (issue #16 item 4, decision 37): the unit's
list against quota, its non-respondents with contacts, the export, reminders for one or all,
once per person a day, each a ReminderRequested on the log; nothing about who answered."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import pytest_asyncio
from nats.js.errors import NotFoundError

from contracts import subjects
from tests.identity.conftest import VN_HEADERS
from tests.security import conftest as security
from tests.security.conftest import (  # noqa: F401  # fixtures used by name
    PEOPLE,
    UNIT_A,
    Stack,
    stack,
    write_xlsx,
)
from tests.waiting import eventually

QUOTA = 5  # form 03 of unit A: more than the two people on its list


@pytest_asyncio.fixture
async def focal_stack(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Stack:  # noqa: F811  # the imported fixture
    plain = security.campaign_document

    def with_quota(campaign_id: str) -> dict[str, Any]:
        doc = plain(campaign_id)
        doc["quotas"] = [{"form_code": "03", "unit_code": UNIT_A, "ballots": QUOTA}]
        return doc

    monkeypatch.setattr(security, "campaign_document", with_quota)
    return await security.setup_campaign(stack, tmp_path)


async def last_event(s: Stack, subject: str) -> dict[str, Any] | None:
    try:
        msg = await s.nc.jetstream().get_last_msg("PARINDEX", subject)
    except NotFoundError:
        return None
    return json.loads(msg.data)


async def remind(s: Stack, **fields: str) -> Any:
    data = {"campaign": s.campaign_id, "csrf": "tok", **fields}
    return await s.request(
        "identity", "POST", "/focal/remind", role="focal_a", csrf="tok", data=data
    )


async def add_positions(s: Stack, tmp_path: Path) -> None:
    """The list again, with a "Chức vụ" column: RespondentUpdated carries the position."""
    rows: list[list[object]] = [[*VN_HEADERS, "Chức vụ"]]
    for i, (name, local, unit, form) in enumerate(PEOPLE, start=1):
        position = "Trưởng phòng" if local == "cuong.le" else None
        rows.append([i, name, f"{local}.{s.campaign_id}@example.vn", unit, form, None, position])
    content = write_xlsx(rows, tmp_path / "ds2.xlsx")
    r = await s.request(
        "identity",
        "POST",
        "/api/respondents/import",
        role="admin",
        csrf="tok",
        data={"campaign": s.campaign_id, "csrf": "tok"},
        files={"file": ("ds2.xlsx", content)},
    )
    assert r.status_code == 200, r.text


async def test_focal_point_chases_its_unit(focal_stack: Stack, tmp_path: Path) -> None:
    s = focal_stack
    c = s.campaign_id
    an, cuong, binh = s.people[0], s.people[1], s.people[2]
    await add_positions(s, tmp_path)

    page = await s.request("identity", "GET", "/focal", role="focal_a")
    assert page.status_code == 200, page.text
    text = page.text
    assert "Sở Nội vụ" in text and "Đầu mối" in text
    assert f"danh sách chỉ có 2 người, ít hơn chỉ tiêu {QUOTA} phiếu" in text
    assert "Còn 2 người chưa trả lời." in text
    for person in (an, cuong):
        assert person.name in text and person.email in text
    assert "Trưởng phòng" in text
    assert binh.name not in text and binh.email not in text  # another unit's
    assert "chưa nhắc lần nào" in text

    # Remind one: a ReminderRequested by the focal point, and a mail that keeps the password.
    assert (await remind(s, respondent_id=an.respondent_id)).status_code == 303
    event = await last_event(s, subjects.respondent_reminder(c, an.respondent_id))
    assert event and event["type"] == "ReminderRequested"
    assert event["data"]["requested_by"] == f"focal_a-{c}"

    # An answers: An leaves the list, and nothing on the page says so beyond that.
    answers = [{"unit_code": UNIT_A, "question_id": "03q1", "option_code": "zqoptgood"}]
    r = await s.request("survey", "POST", "/api/ballots", token=an.token, json={"answers": answers})
    assert r.status_code == 201, r.text

    async def an_gone() -> str | None:
        p = await s.request("identity", "GET", "/focal", role="focal_a")
        return p.text if an.name not in p.text else None

    text = await eventually(an_gone, timeout=30)
    assert "Còn 1 người chưa trả lời." in text and cuong.name in text
    assert "Đã trả lời" not in text and "zqopt" not in text  # no answer, no answered list

    # Remind all: Cường is asked; again the same day is refused with the day to try again.
    everyone = await remind(s, everyone="1")
    assert everyone.status_code == 303 and "asked=1" in everyone.headers["location"]
    done = await s.request("identity", "GET", everyone.headers["location"], role="focal_a")
    assert "Đã yêu cầu gửi thư nhắc tới 1 người." in done.text
    assert "Đã nhắc ngày" in done.text and "Đã nhắc hôm nay." in done.text
    cuong_reminders = subjects.respondent_reminder(c, cuong.respondent_id)
    event = await last_event(s, cuong_reminders)
    assert event and event["type"] == "ReminderRequested"
    seq = (await s.nc.jetstream().get_last_msg("PARINDEX", cuong_reminders)).seq
    again = await remind(s, respondent_id=cuong.respondent_id)
    assert again.status_code == 429
    assert "đã được nhắc hôm nay" in again.text and "nhắc lại từ ngày" in again.text
    still = await s.nc.jetstream().get_last_msg("PARINDEX", cuong_reminders)
    assert still.seq == seq  # nothing new on the log
    all_again = await remind(s, everyone="1")
    assert (
        "asked=0" in all_again.headers["location"] and "skipped=1" in all_again.headers["location"]
    )

    # Someone who answered and someone of another unit get the same neutral refusal.
    for other in (an, binh):
        refused = await remind(s, respondent_id=other.respondent_id)
        assert refused.status_code == 404
        assert "không có trong danh sách chưa trả lời" in refused.text
    assert await last_event(s, subjects.respondent_reminder(c, binh.respondent_id)) is None

    # The export: Vietnamese headers, the one non-respondent, the position, the reminder day.
    x = await s.request("identity", "GET", "/focal/nonrespondents.xlsx", role="focal_a")
    assert x.status_code == 200 and x.headers["cache-control"] == "no-store"
    rows = list(openpyxl.load_workbook(io.BytesIO(x.content)).active.iter_rows(values_only=True))  # type: ignore[union-attr]  # no sheet: fails
    assert rows[0][:4] == ("STT", "Họ và tên", "Đơn vị", "Chức vụ")
    assert [(r[0], r[1], r[3]) for r in rows[1:]] == [(1, cuong.name, "Trưởng phòng")]
    assert rows[1][7]  # the day of the last reminder


@pytest.mark.parametrize("role", ["admin", "respondent", "auditor", "anonymous"])
async def test_only_focal_points_reach_the_page(focal_stack: Stack, role: str) -> None:
    s = focal_stack
    who = None if role == "anonymous" else role
    for path in ("/focal", "/focal/nonrespondents.xlsx"):
        r = await s.request("identity", "GET", path, role=who)
        to_login = r.status_code == 303 and "/login" in r.headers["location"]
        assert r.status_code in (401, 403) or (who is None and to_login), (role, path)
    r = await s.request(
        "identity",
        "POST",
        "/focal/remind",
        role=who,
        csrf="tok",
        data={"campaign": s.campaign_id, "everyone": "1", "csrf": "tok"},
    )
    to_login = r.status_code == 303 and "/login" in r.headers["location"]
    assert r.status_code in (401, 403) or (who is None and to_login), (role, r.status_code)
    subject = subjects.respondent_reminder(s.campaign_id, s.people[0].respondent_id)
    assert await last_event(s, subject) is None
