"""Who may log in: staff users (private rows, never events) and respondents; throttling.

Throttling is stored in the database, not in memory, so it holds across instances and
restarts: 5 failed attempts for a username within 15 minutes (counted since its last success)
lock that username for the rest of the window, i.e. until the oldest of those failures is 15
minutes old; while locked, even the right password is refused and the attempt is recorded as
`locked` (not a failure, so the lock does not extend itself). One address may fail at most 30
times per 15 minutes, across usernames, which slows password spraying.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from parindex.web.auth import ROLES, Principal
from services.identity.credentials import hash_password, verify_password

STAFF_ROLES = tuple(r for r in ROLES if r != "respondent")
WINDOW_MIN = 15
MAX_USER_FAILURES = 5
MAX_IP_FAILURES = 30


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


async def _failures(s: AsyncSession, column: str, value: str) -> int:
    since_ok = (
        f"(SELECT max(at) FROM identity_login_attempts WHERE {column} = :v AND outcome = 'ok')"
        if column == "username"
        else "NULL::timestamptz"
    )
    return int(
        await s.scalar(
            text(
                f"SELECT count(*) FROM identity_login_attempts WHERE {column} = :v "
                f"AND outcome = 'failed' AND at > now() - interval '{WINDOW_MIN} minutes' "
                f"AND at > COALESCE({since_ok}, '-infinity'::timestamptz)"
            ),
            {"v": value},
        )
        or 0
    )


async def _record(sessions: async_sessionmaker, username: str, ip: str, outcome: str) -> None:
    async with sessions.begin() as s:
        await s.execute(
            text("INSERT INTO identity_login_attempts (username, ip, outcome) VALUES (:u, :i, :o)"),
            {"u": username, "i": ip, "o": outcome},
        )


async def authenticate(
    sessions: async_sessionmaker, username: str, password: str, ip: str
) -> LoginResult:
    """Staff first, then respondents; every outcome is recorded for throttling."""
    username = username.strip()
    key = username.lower()
    async with sessions() as s:
        if (
            await _failures(s, "username", key) >= MAX_USER_FAILURES
            or await _failures(s, "ip", ip) >= MAX_IP_FAILURES
        ):
            locked = True
        else:
            locked = False
            staff = (
                (
                    await s.execute(
                        text(
                            "SELECT username, role, unit_code, campaign_id, password_hash "
                            "FROM identity_users WHERE lower(username) = :u"
                        ),
                        {"u": key},
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
                            "r.form_code, c.password_hash FROM identity_respondents r "
                            "JOIN identity_credentials c ON c.campaign = r.campaign "
                            "AND c.respondent_id = r.respondent_id "
                            "WHERE lower(r.username) = :u AND NOT r.withdrawn"
                        ),
                        {"u": key},
                    )
                )
                .mappings()
                .all()
            )
    if locked:
        await _record(sessions, key, ip, "locked")
        return LoginResult(None, locked=True)
    principal: Principal | None = None
    if staff is not None:
        if await verify_password(staff["password_hash"], password):
            principal = Principal(
                subject=staff["username"],
                role=staff["role"],
                campaign_id=staff["campaign_id"],
                unit_code=staff["unit_code"],
                name=staff["username"],
            )
    elif people:
        for p in people:  # the same username in two campaigns: the password decides
            if await verify_password(p["password_hash"], password):
                principal = Principal(
                    subject=p["respondent_id"],
                    role="respondent",
                    campaign_id=p["campaign"],
                    unit_code=p["unit_code"],
                    form_code=p["form_code"],
                    name=p["full_name"],
                )
                break
    else:
        await verify_password(None, password)  # same work as for a real user
    await _record(sessions, key, ip, "ok" if principal else "failed")
    return LoginResult(principal)


RESETS_PER_DAY = 3


async def record_reset_request(sessions: async_sessionmaker, email: str, ip: str) -> bool:
    """Record it; False when this address already asked RESETS_PER_DAY times today."""
    address = email.strip().lower()
    async with sessions.begin() as s:
        recent = await s.scalar(
            text(
                "SELECT count(*) FROM identity_reset_requests WHERE email = :e "
                "AND at > now() - interval '1 day'"
            ),
            {"e": address},
        )
        await s.execute(
            text("INSERT INTO identity_reset_requests (email, ip) VALUES (:e, :i)"),
            {"e": address, "i": ip},
        )
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
