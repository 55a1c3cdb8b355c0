"""A disabled account or a reset password ends the staff member's sessions in every service, not
just at identity's login (decision 42)."""

from __future__ import annotations

import math
import re

import httpx
import pytest

from contracts import subjects
from contracts.events import StaffAccountDisabled, StaffPasswordReset, encode, make
from parindex.web.revocation import Revocations
from services.identity.accounts import add_user
from tests.security.conftest import (  # noqa: F401  # fixtures used by name
    STAFF_PASSWORD,
    Stack,
    _cookie_value,
    campaign_stack,
    stack,
)
from tests.waiting import eventually

SERVICES_PAGES = [("identity", "/"), ("survey", "/progress"), ("scoring", "/dashboard")]


async def _signed_in(s: Stack, token: str, service: str, path: str, username: str) -> bool:
    """The page answers as that staff member: 200 with their name in the navigation bar (the
    public dashboard answers 200 to anyone, so the status alone would not tell)."""
    r = await s.request(service, "GET", path, token=token)
    return r.status_code == 200 and username in r.text


async def test_disabled_admin_loses_every_session(campaign_stack: Stack) -> None:  # noqa: F811  # the imported fixture
    s = campaign_stack
    c = s.campaign_id
    root, other = f"root-{c}"[:60], f"gone-{c}"[:60]
    await add_user(s.rt("identity").sessions, root, "admin", STAFF_PASSWORD)
    await add_user(s.rt("identity").sessions, other, "admin", STAFF_PASSWORD)
    root_token = _cookie_value(await s.login(root, STAFF_PASSWORD), "parindex_session") or ""
    victim = _cookie_value(await s.login(other, STAFF_PASSWORD), "parindex_session") or ""
    for service, path in SERVICES_PAGES:
        assert await _signed_in(s, victim, service, path, other), (service, path)

    r = await s.request(
        "identity",
        "POST",
        "/admin/staff/disable",
        token=root_token,
        csrf="tok",
        data={"username": other, "csrf": "tok"},
    )
    assert r.status_code == 303
    for service, path in SERVICES_PAGES:

        async def refused(service: str = service, path: str = path) -> bool:
            return not await _signed_in(s, victim, service, path, other)

        await eventually(refused, timeout=10)
    assert await _signed_in(s, root_token, "scoring", "/dashboard", root)


async def test_reset_ends_old_sessions_not_new_ones(campaign_stack: Stack) -> None:  # noqa: F811  # the imported fixture
    s = campaign_stack
    c = s.campaign_id
    root, other = f"rt-{c}"[:60], f"reset-{c}"[:60]
    await add_user(s.rt("identity").sessions, root, "admin", STAFF_PASSWORD)
    await add_user(s.rt("identity").sessions, other, "auditor", STAFF_PASSWORD)
    root_token = _cookie_value(await s.login(root, STAFF_PASSWORD), "parindex_session") or ""
    old = _cookie_value(await s.login(other, STAFF_PASSWORD), "parindex_session") or ""
    assert await _signed_in(s, old, "scoring", "/dashboard", other)
    r: httpx.Response = await s.request(
        "identity",
        "POST",
        "/admin/staff/reset",
        token=root_token,
        csrf="tok",
        data={"username": other, "csrf": "tok"},
    )
    assert r.status_code == 200
    fresh_pw = re.search(r'id="new-password">([^<]+)<', r.text).group(1)  # type: ignore[union-attr]  # no match: fails

    async def old_refused() -> bool:
        return not await _signed_in(s, old, "scoring", "/dashboard", other)

    await eventually(old_refused, timeout=10)
    # A login right after the reset, in the same second, is a new session and counts.
    new = _cookie_value(await s.login(other, fresh_pw), "parindex_session") or ""
    for service, path in [("identity", "/"), ("scoring", "/dashboard")]:
        assert await _signed_in(s, new, service, path, other), (service, path)


@pytest.mark.unit
def test_revocations_decide_by_issue_time() -> None:
    r = Revocations()
    reset = make(
        StaffPasswordReset(username="a", reset_by="root"), campaign_id="staff", producer="t"
    )
    r.apply(encode(reset))
    at = reset.occurred_at.timestamp()
    assert r.revoked("a", at - 0.001) and r.revoked("a", at)
    assert not r.revoked("a", at + 0.001) and not r.revoked("b", at - 100)
    r.apply(
        encode(
            make(
                StaffAccountDisabled(username="a", disabled_by="root"),
                campaign_id="staff",
                producer="t",
            )
        )
    )
    assert r.after["a"] == math.inf and r.revoked("a", at + 10_000)
    r.apply(b"not an event")  # skipped with a warning, never raises
    assert r.revoked("a", at + 1)


@pytest.mark.unit
def test_revocations_skip_an_event_off_its_own_subject() -> None:
    """A staff event on an account subject must name the staff campaign (decision 47)."""
    r = Revocations()
    disabled = StaffAccountDisabled(username="b", disabled_by="x")
    r.apply(encode(make(disabled, campaign_id="c1", producer="t")), 1, subjects.staff_account("b"))
    assert not r.revoked("b", 0.0)
    on = make(disabled, campaign_id="staff", producer="t")
    r.apply(encode(on), 2, subjects.staff_account("b"))
    assert r.revoked("b", 0.0) and r.seen == 2
