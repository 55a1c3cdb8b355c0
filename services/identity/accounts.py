"""Who may log in: staff users (private rows, never events) and respondents; throttling.

Throttling lives in the database, so it holds across instances and restarts
(docs/architecture.md, decision 19):
- an account is locked for a source after MAX_PAIR_FAILURES failures from that source within
  WINDOW_MIN minutes, and for every source after MAX_ACCOUNT_FAILURES (a distributed guess);
  failures count since the account's last success. There is no lock on an address alone: under a
  proxy, or in an office behind one NAT, that would lock out everyone behind it;
- the check and the recording of an attempt happen under a per-account transaction lock, and an
  attempt is recorded as failed *before* its password is checked (then turned into ok), so
  parallel guesses cannot exceed the limit;
- attempts carry a keyed digest of the account name, never the name as typed: a password typed
  into the username field is not stored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from parindex.web.auth import ROLES, Principal
from services.identity.hashing import hash_password, verify_password

STAFF_ROLES = tuple(r for r in ROLES if r != "respondent")
WINDOW_MIN = 15
MAX_PAIR_FAILURES = 5
MAX_ACCOUNT_FAILURES = 20


class UserExists(Exception):
    pass


async def add_user(
    sessions: async_sessionmaker,
    username: str,
    role: str,
    password: str,
    *,
    unit_code: str | None = None,
    campaign_id: str | None = None,
    replace: bool = False,
) -> None:
    if role not in STAFF_ROLES:
        raise ValueError(f"role must be one of {', '.join(STAFF_ROLES)}")
    if role == "focal_point" and not unit_code:
        raise ValueError("a focal point needs --unit")
    if len(password) < 10:
        raise ValueError("password must have at least 10 characters")
    hashed = await hash_password(password)
    sql = (
        "INSERT INTO identity_users (username, role, unit_code, campaign_id, password_hash) "
        "VALUES (:u, :r, :unit, :c, :h)"
    )
    if replace:
        sql += (
            " ON CONFLICT (username) DO UPDATE SET role = EXCLUDED.role, "
            "unit_code = EXCLUDED.unit_code, campaign_id = EXCLUDED.campaign_id, "
            "password_hash = EXCLUDED.password_hash"
        )
    else:
        sql += " ON CONFLICT (username) DO NOTHING"
    async with sessions.begin() as s:
        res = await s.execute(
            text(sql),
            {"u": username, "r": role, "unit": unit_code, "c": campaign_id, "h": hashed},
        )
        if res.rowcount == 0:
            raise UserExists(username)


@dataclass(frozen=True)
class LoginResult:
    principal: Principal | None
    locked: bool = False


def account_digest(key: bytes, username: str) -> str:
    """What the attempts table stores instead of the typed name (keyed: not reversible offline)."""
    name = username.strip().lower().encode()
    return hashlib.blake2b(name, key=key[:64], digest_size=20).hexdigest()


async def _failures(s: AsyncSession, account: str, ip: str | None) -> int:
    source = "AND ip = :ip" if ip is not None else ""
    return int(
        await s.scalar(
            text(
                "SELECT count(*) FROM identity_login_attempts WHERE account = :a "
                f"AND outcome = 'failed' {source} "
                f"AND at > now() - interval '{WINDOW_MIN} minutes' "
                "AND at > COALESCE((SELECT max(at) FROM identity_login_attempts "
                "WHERE account = :a AND outcome = 'ok'), '-infinity'::timestamptz)"
            ),
            {"a": account, "ip": ip},
        )
        or 0
    )


async def _claim_attempt(sessions: async_sessionmaker, account: str, ip: str) -> int | None:
    """Record an attempt as failed before checking it; None when the account is locked."""
    async with sessions.begin() as s:
        await s.execute(text("SELECT pg_advisory_xact_lock(hashtext(:a))"), {"a": account})
        locked = (
            await _failures(s, account, ip) >= MAX_PAIR_FAILURES
            or await _failures(s, account, None) >= MAX_ACCOUNT_FAILURES
        )
        outcome = "locked" if locked else "failed"
        attempt = await s.scalar(
            text(
                "INSERT INTO identity_login_attempts (account, ip, outcome) "
                "VALUES (:a, :i, :o) RETURNING id"
            ),
            {"a": account, "i": ip, "o": outcome},
        )
    await _forget_expired(sessions)
    return None if locked else int(attempt)


async def _forget_expired(sessions: async_sessionmaker) -> None:
    """Attempts older than the lockout window decide nothing; kept, they would record when each
    person logged in, close to when they voted (docs/architecture.md, decision 15).

    SKIP LOCKED: concurrent logins never wait on, or deadlock over, each other's purge.
    """
    async with sessions.begin() as s:
        await s.execute(
            text(
                "DELETE FROM identity_login_attempts WHERE id IN (SELECT id FROM "
                f"identity_login_attempts WHERE at < now() - interval '{WINDOW_MIN} minutes' "
                "FOR UPDATE SKIP LOCKED)"
            )
        )


async def _succeeded(sessions: async_sessionmaker, attempt: int) -> None:
    async with sessions.begin() as s:
        await s.execute(
            text("UPDATE identity_login_attempts SET outcome = 'ok', at = now() WHERE id = :i"),
            {"i": attempt},
        )


async def _promote_pending(
    sessions: async_sessionmaker, campaign: str, respondent_id: str, pending_hash: str
) -> None:
    """The newer credential was used: it replaces the earlier one, which stops working."""
    async with sessions.begin() as s:
        await s.execute(
            text(
                "UPDATE identity_credentials SET password_hash = pending_hash, "
                "purpose = COALESCE(pending_purpose, purpose), holder = pending_holder, "
                "sent_to = pending_sent_to, pending_hash = NULL, pending_purpose = NULL, "
                "pending_holder = NULL, pending_sent_to = NULL "
                "WHERE campaign = :c AND respondent_id = :r AND pending_hash = :h"
            ),
            {"c": campaign, "r": respondent_id, "h": pending_hash},
        )


async def authenticate(
    sessions: async_sessionmaker, username: str, password: str, ip: str, *, key: bytes
) -> LoginResult:
    """Staff first, then respondents; every attempt is counted before its password is checked."""
    name = username.strip().lower()
    attempt = await _claim_attempt(sessions, account_digest(key, name), ip)
    if attempt is None:
        return LoginResult(None, locked=True)
    async with sessions() as s:
        staff = (
            (
                await s.execute(
                    text(
                        "SELECT username, role, unit_code, campaign_id, password_hash, "
                        "disabled "
                        "FROM identity_users WHERE lower(username) = :u"
                    ),
                    {"u": name},
                )
            )
            .mappings()
            .first()
        )
        people = (
            (
                await s.execute(
                    text(
                        "SELECT r.campaign, r.respondent_id, r.full_name, r.unit_code, "
                        "r.form_code, c.password_hash, c.pending_hash, c.holder, c.pending_holder "
                        "FROM identity_respondents r "
                        "JOIN identity_credentials c ON c.campaign = r.campaign "
                        "AND c.respondent_id = r.respondent_id "
                        "WHERE lower(r.username) = :u AND NOT r.withdrawn"
                    ),
                    {"u": name},
                )
            )
            .mappings()
            .all()
        )
    principal: Principal | None = None
    if staff is not None:
        # A disabled account does the same work and fails the same way (decision 34).
        matched = await verify_password(staff["password_hash"], password)
        if matched and not staff["disabled"]:
            principal = Principal(
                subject=staff["username"],
                role=staff["role"],
                campaign_id=staff["campaign_id"],
                unit_code=staff["unit_code"],
                name=staff["username"],
            )
    elif people:
        for p in people:  # the same username in two campaigns: the password decides
            matched = await verify_password(p["password_hash"], password)
            holder = p["holder"]
            if not matched and p["pending_hash"]:
                matched = await verify_password(p["pending_hash"], password)
                holder = p["pending_holder"]
                if matched:
                    await _promote_pending(
                        sessions, p["campaign"], p["respondent_id"], p["pending_hash"]
                    )
            if matched:
                principal = Principal(
                    subject=p["respondent_id"],
                    role="respondent",
                    campaign_id=p["campaign"],
                    unit_code=p["unit_code"],
                    form_code=p["form_code"],
                    name=p["full_name"],
                    holder=holder or "",  # whose drafts this session reads (decision 48)
                )
                break
    else:
        await verify_password(None, password)  # same work as for a real user
    if principal is not None:
        await _succeeded(sessions, attempt)
    return LoginResult(principal)


RESETS_PER_DAY = 3
# Per-person times are kept to the UTC day (docs/architecture.md, decision 15).
TODAY = "(now() AT TIME ZONE 'UTC')::date"


async def record_reset_request(sessions: async_sessionmaker, email: str, ip: str) -> bool:
    """Record it; False when this address already asked RESETS_PER_DAY times today."""
    address = email.strip().lower()
    async with sessions.begin() as s:
        recent = await s.scalar(
            text(
                "SELECT count(*) FROM identity_reset_requests WHERE email = :e "
                f"AND requested_on = {TODAY}"
            ),
            {"e": address},
        )
        await s.execute(
            text("INSERT INTO identity_reset_requests (email, ip) VALUES (:e, :i)"),
            {"e": address, "i": ip},
        )
        # The limit needs today's rows only: older days are not kept (decision 15).
        await s.execute(text(f"DELETE FROM identity_reset_requests WHERE requested_on < {TODAY}"))
    return int(recent or 0) < RESETS_PER_DAY


async def open_registrations(sessions: async_sessionmaker, email: str) -> list[tuple[str, str]]:
    """(campaign, respondent_id) of the active registrations with this e-mail address."""
    async with sessions() as s:
        rows = await s.execute(
            text(
                "SELECT campaign, respondent_id FROM identity_respondents "
                "WHERE lower(email) = :e AND NOT withdrawn"
            ),
            {"e": email.strip().lower()},
        )
        return [(c, r) for c, r in rows.all()]
