"""Staff accounts made in the pages: create, disable, reset a password (decision 34).

Accounts stay private rows of identity's database (the argon2 hash, decision 6); what happened
to them is an event on the log, with who did it and never a password or a hash. The event is
published inside the transaction that writes the row: a failed publish changes nothing.
"""

from __future__ import annotations

import re
from typing import Any

from nats.js import JetStreamContext
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from contracts import subjects
from contracts.events import (
    Payload,
    StaffAccountCreated,
    StaffAccountDisabled,
    StaffPasswordReset,
    make,
)
from parindex.bus.publish import publish_event
from services.identity.credentials import generate_password, hash_password

PRODUCER = "identity"
ROLES = ("admin", "focal_point", "auditor")
# Also a NATS subject token (contracts.subjects.staff_account): no dots, no wildcards.
USERNAME = re.compile(r"^[a-z0-9][a-z0-9_-]{2,63}$")
CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
MIN_PASSWORD = 10
STAFF_PASSWORD_LENGTH = 16


class StaffRefused(Exception):
    """A request the page answers with a sentence: `key` is a catalog key."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


async def users(sessions: async_sessionmaker) -> list[dict[str, Any]]:
    async with sessions() as s:
        rows = await s.execute(
            text(
                "SELECT username, role, unit_code, campaign_id, disabled FROM identity_users "
                "ORDER BY disabled, role, username"
            )
        )
        return [dict(r) for r in rows.mappings()]


async def _publish(js: JetStreamContext, username: str, payload: Payload, by: str) -> None:
    env = make(
        payload,
        campaign_id=subjects.STAFF_CAMPAIGN,
        producer=PRODUCER,
        correlation_id=f"staff:{by}",
    )
    await publish_event(js, subjects.staff_account(username), env)


async def create(
    js: JetStreamContext,
    sessions: async_sessionmaker,
    *,
    username: str,
    role: str,
    unit_code: str,
    campaign_id: str,
    password: str,
    by: str,
) -> str:
    """The account, and the password to show once (generated when none was typed)."""
    name = username.strip().lower()
    unit = unit_code.strip() or None
    scope = campaign_id.strip() or None
    if not USERNAME.match(name):
        raise StaffRefused("id.staff.bad_username")
    if role not in ROLES:
        raise StaffRefused("id.staff.bad_role")
    if role == "focal_point" and unit is None:
        raise StaffRefused("id.staff.needs_unit")
    if role != "focal_point":
        unit = None
    if (unit and not CODE.match(unit)) or (scope and not CODE.match(scope)):
        raise StaffRefused("id.staff.bad_code")
    if password and len(password) < MIN_PASSWORD:
        raise StaffRefused("id.staff.short_password")
    chosen = password or generate_password(STAFF_PASSWORD_LENGTH)
    hashed = await hash_password(chosen)
    async with sessions.begin() as s:
        taken = await s.scalar(
            text("SELECT 1 FROM identity_users WHERE lower(username) = :u FOR UPDATE"),
            {"u": name},
        )
        if taken:
            raise StaffRefused("id.staff.exists")
        try:
            await s.execute(
                text(
                    "INSERT INTO identity_users (username, role, unit_code, campaign_id, "
                    "password_hash) VALUES (:u, :r, :unit, :c, :h)"
                ),
                {"u": name, "r": role, "unit": unit, "c": scope, "h": hashed},
            )
        except IntegrityError:  # the same name made at the same moment by another request
            raise StaffRefused("id.staff.exists") from None
        payload = StaffAccountCreated(
            username=name, role=role, unit_code=unit, scope_campaign_id=scope, created_by=by
        )
        await _publish(js, name, payload, by)
    return "" if password else chosen


async def disable(
    js: JetStreamContext, sessions: async_sessionmaker, username: str, by: str
) -> None:
    if username == by:
        raise StaffRefused("id.staff.not_yourself")  # the last admin cannot lock everyone out
    async with sessions.begin() as s:
        res = await s.execute(
            text("UPDATE identity_users SET disabled = true WHERE username = :u AND NOT disabled"),
            {"u": username},
        )
        if res.rowcount == 0:
            raise StaffRefused("id.staff.unknown")
        await _publish(js, username, StaffAccountDisabled(username=username, disabled_by=by), by)


async def reset_password(
    js: JetStreamContext, sessions: async_sessionmaker, username: str, by: str
) -> str:
    """A new generated password, returned to be shown once; the old one stops working."""
    password = generate_password(STAFF_PASSWORD_LENGTH)
    hashed = await hash_password(password)
    async with sessions.begin() as s:
        res = await s.execute(
            text(
                "UPDATE identity_users SET password_hash = :h WHERE username = :u AND NOT disabled"
            ),
            {"u": username, "h": hashed},
        )
        if res.rowcount == 0:
            raise StaffRefused("id.staff.unknown")
        await _publish(js, username, StaffPasswordReset(username=username, reset_by=by), by)
    return password
