"""A draft stays with the address its credential was mailed to (docs/architecture.md,
decision 48), on the real stack: an admin who redirects a respondent's mail to an address of
their own gets a working credential, but not the person's unfinished answers, and the old
address is told of the change."""

from __future__ import annotations

import re

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts.rpc import CREDENTIAL, CredentialRequest
from parindex.bus import rpc
from parindex.web.auth import ISSUER, Principal, issue_token, public_pem, verify_token
from tests.security.conftest import (  # noqa: F401  # fixtures used by name
    HELPLINE,
    Stack,
    _cookie_value,
    _mail_text,
    campaign_stack,
    stack,
)
from tests.security.test_csrf_and_scopes import _answers
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(180)


def _mails(s: Stack, email: str, purpose: str) -> list[str]:
    return [
        _mail_text(m)
        for m in s.smtp.collector.for_campaign(s.campaign_id)
        if email in str(m["To"]) and str(m["X-Parindex-Purpose"]).startswith(purpose)
    ]


def _password(s: Stack, email: str, purpose: str) -> str | None:
    for m in s.smtp.collector.for_campaign(s.campaign_id):
        if email in str(m["To"]) and str(m["X-Parindex-Purpose"]).startswith(purpose):
            found = re.search(r"Mật khẩu:\s+(\S+)", _mail_text(m))
            if found:
                return found.group(1)
    return None


async def _draft(s: Stack, token: str) -> list[dict[str, str]]:
    r = await s.request("survey", "GET", "/api/draft", token=token)
    assert r.status_code == 200, r.text
    return r.json()["answers"]


async def _save(s: Stack, token: str, answers: list[dict[str, str]]) -> None:
    r = await s.request("survey", "PUT", "/api/draft", token=token, json={"answers": answers})
    assert r.status_code == 200, r.text


async def _login(s: Stack, username: str, password: str) -> str:
    resp = await s.login(username, password)
    assert resp.status_code == 303, resp.text
    return _cookie_value(resp, "parindex_session") or ""


async def test_an_admin_who_redirects_the_mail_cannot_read_the_draft(
    campaign_stack: Stack,  # noqa: F811  # the imported fixture
) -> None:
    s = campaign_stack
    c = s.campaign_id
    person = s.people[1]  # Cường: logged in with the invitation's password
    answers = await _answers(s, person.token)
    await _save(s, person.token, answers[:2])

    # The admin "corrects" the address to one the admin reads; notify invites it anew.
    stolen = f"admin-owned.{c}@example.vn"
    r = await s.correct_email(person.respondent_id, stolen)
    assert r.status_code == 303, r.text
    password = await eventually(lambda: _password(s, stolen, "invitation:email:"), timeout=60)
    admin_as_person = await _login(s, person.username, password)

    # The credential works (the person's vote could be cast: that shows, the person can no
    # longer log in), but what the person typed so far is not there.
    assert await _draft(s, admin_as_person) == []
    # And the address the person's mail went to so far is told, without any password.
    notices = await eventually(lambda: _mails(s, person.email, "notice:email:"), timeout=60)
    assert "vừa được cán bộ quản trị đổi sang một địa chỉ khác" in notices[0]
    assert HELPLINE in notices[0] and "Mật khẩu:" not in notices[0]
    assert stolen not in notices[0]  # the new address is not handed to the old one
    # The person's own session still holds the draft, and what it saves stays theirs.
    assert await _draft(s, person.token) == answers[:2]
    await _save(s, person.token, answers[:3])
    assert await _draft(s, admin_as_person) == []
    # A draft saved under the admin's credential is not shown to the person either.
    await _save(s, admin_as_person, answers[:1])
    assert await _draft(s, person.token) == answers[:3]
    assert await _draft(s, admin_as_person) == answers[:1]

    # A mail still on its way to the old address (notify had not applied the correction)
    # gets no credential from identity: its holder is decided for the address it goes to.
    request = CredentialRequest(
        campaign_id=c, respondent_id=person.respondent_id, purpose="reset", email=person.email
    )
    with pytest.raises(rpc.RpcError) as refused:
        await rpc.call(s.nc, CREDENTIAL, request, timeout=10)
    assert refused.value.code == "address_changed"
    assert len(_mails(s, person.email, "notice:email:")) == 1  # one notice per change


@pytest.mark.unit
def test_the_session_carries_the_holder_and_refuses_a_bad_one() -> None:
    key = Ed25519PrivateKey.generate()
    pem = public_pem(key)
    p = Principal(subject="r1", role="respondent", campaign_id="c", holder="ab" * 16)
    assert verify_token(pem, issue_token(key, p)).holder == "ab" * 16
    assert verify_token(pem, issue_token(key, Principal(subject="u", role="admin"))).holder == ""
    forged = jwt.encode(
        {"iss": ISSUER, "sub": "r1", "role": "respondent", "exp": 2**40, "hold": ["x"]},
        key,
        algorithm="EdDSA",
    )
    with pytest.raises(jwt.InvalidTokenError):
        verify_token(pem, forged)


async def test_a_reset_to_the_same_address_keeps_the_draft(
    campaign_stack: Stack,  # noqa: F811  # the imported fixture
) -> None:
    s = campaign_stack
    person = s.people[2]
    answers = await _answers(s, person.token)
    await _save(s, person.token, answers[:2])

    page = await s.request(
        "identity", "POST", "/reset", csrf="tok", data={"email": person.email, "csrf": "tok"}
    )
    assert page.status_code == 200, page.text
    password = await eventually(lambda: _password(s, person.email, "invitation:reset:"), timeout=60)
    assert password != person.password
    on_the_phone = await _login(s, person.username, password)
    assert await _draft(s, on_the_phone) == answers[:2]
    # The reset credential is now the person's: a second reset to the same address keeps it.
    assert await _draft(s, await _login(s, person.username, password)) == answers[:2]
