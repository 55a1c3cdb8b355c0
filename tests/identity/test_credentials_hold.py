"""Credentials that hold (issue #16 item 3, docs/architecture.md, decision 37), on the real
stack: a reminder issues no new password and says the invitation's still works; a reset mail
says its password replaces the old one, which fails once the new one is used, and the login
page then points to the reset page and the campaign's helpline."""

from __future__ import annotations

import re

import pytest

from services.notify.sender import credential_purpose
from tests.security.conftest import (  # noqa: F401  # fixtures used by name
    HELPLINE,
    Stack,
    _mail_text,
    campaign_stack,
    stack,
)
from tests.waiting import eventually


def _mails(s: Stack, email: str, purpose: str) -> list[str]:
    return [
        _mail_text(m)
        for m in s.smtp.collector.for_campaign(s.campaign_id)
        if email in str(m["To"]) and str(m["X-Parindex-Purpose"]).startswith(purpose)
    ]


async def test_reminder_keeps_the_invitation_password_and_reset_replaces_it(
    campaign_stack: Stack,  # noqa: F811  # the imported fixture
) -> None:
    s = campaign_stack
    c = s.campaign_id
    person = s.people[1]  # Cường, unit A, logged in with the invitation's password
    invitation_password = person.password

    form = {"campaign": c, "respondent_id": person.respondent_id, "csrf": "tok"}
    asked = await s.request(
        "identity", "POST", "/admin/registry/remind", role="admin", csrf="tok", data=form
    )
    assert asked.status_code == 303, asked.text
    reminders = await eventually(lambda: _mails(s, person.email, "reminder:now-"), timeout=30)
    reminder = reminders[0]
    assert "Mật khẩu trong thư mời trước đây vẫn dùng được" in reminder
    assert not re.search(r"Mật khẩu(?: mới)?:", reminder), reminder
    assert invitation_password not in reminder
    assert person.username in reminder and "/reset" in reminder and HELPLINE in reminder
    # The reminder changed nothing: the invitation's password still logs in.
    assert (await s.login(person.username, invitation_password)).status_code == 303

    # A reset request: the mail says the new password replaces the old one once used.
    page = await s.request(
        "identity", "POST", "/reset", csrf="tok", data={"email": person.email, "csrf": "tok"}
    )
    assert page.status_code == 200 and "Mật khẩu cũ vẫn dùng được" in page.text
    resets = await eventually(lambda: _mails(s, person.email, "invitation:reset:"), timeout=30)
    reset = resets[0]
    assert "Mật khẩu này thay cho mật khẩu cũ" in reset
    new_password = re.search(r"Mật khẩu:\s+(\S+)", reset).group(1)  # type: ignore[union-attr]  # no match: fails
    assert new_password != invitation_password
    # Until the new one is used the old one holds (decision 19: a stranger's reset request
    # must not lock a respondent out); the first login with the new one retires it.
    assert (await s.login(person.username, invitation_password)).status_code == 303
    assert (await s.login(person.username, new_password)).status_code == 303
    refused = await s.login(person.username, invitation_password)
    assert refused.status_code == 401
    assert 'href="/reset"' in refused.text and HELPLINE in refused.text
    assert "thư cấp lại mật khẩu" in refused.text
    assert (await s.login(person.username, new_password)).status_code == 303


async def test_login_page_helps_after_a_failure(campaign_stack: Stack) -> None:  # noqa: F811  # the imported fixture
    """Login help (reset link, helpline) shows after a failed login, not before."""
    s = campaign_stack
    refused = await s.login(s.people[0].username, "not-the-password")
    assert refused.status_code == 401
    assert 'id="login-help"' in refused.text and HELPLINE in refused.text
    fine = await s.request("identity", "GET", "/login")
    assert 'id="login-help"' not in fine.text


@pytest.mark.unit
def test_what_each_mail_asks_identity_for() -> None:
    assert credential_purpose("reminder:d-3", invited=True) == "reminder"
    assert credential_purpose("reminder:now-2023-09-30", invited=True) == "reminder"
    # A reminder that is the person's first mail (the invitation failed) carries a password.
    assert credential_purpose("reminder:d-1", invited=False) == "invitation"
    assert credential_purpose("invitation:reset:1", invited=True) == "reset"
    assert credential_purpose("invitation:resend:2", invited=True) == "reset"
    assert credential_purpose("invitation:w1", invited=False) == "invitation"
    assert credential_purpose("invitation:email:abc", invited=True) == "invitation"
