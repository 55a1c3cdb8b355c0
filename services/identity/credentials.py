"""Respondent credentials: generated, hashed, issued (served over NATS by services/identity/rpc.py).

Passwords: 12 characters drawn with `secrets` from an alphabet without look-alikes (no 0/O,
1/l/I, 5/S, 2/Z, 8/B), about 68 bits: read aloud or typed from an e-mail on a phone without
mistakes. Hashes: argon2id with the OWASP Password Storage Cheat Sheet minimum (m=19456 KiB,
t=2, p=1), ~20-40 ms per hash here, run in a thread so the event loop keeps serving.

The plaintext exists only in the reply to RPC_IDENTITY_CREDENTIAL (notify, at send time) and is
never logged or published (docs/architecture.md, decision 6): the log gets CredentialsIssued,
the fact only.
Re-issuing replaces the previous hash, so an old e-mail's password stops working. Who may
send requests on par.rpc.identity.* is a NATS permission matter (only notify should publish to
the credential subject in production).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import uuid
from datetime import UTC, datetime, time
from typing import Any

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import text

from contracts import subjects
from contracts.events import CredentialsIssued, make
from parindex.bus.publish import publish_event
from parindex.web.service import Runtime
from services.identity import projection
from services.identity.imports import PRODUCER

log = logging.getLogger(__name__)

ALPHABET = "abcdefghjkmnpqrstuvwxyzACDEFGHJKLMNPQRTUVWXY34679"
PASSWORD_LENGTH = 12
PURPOSES = ("invitation", "reminder", "reset", "admin")
# OWASP's argon2id minimum (m=19 MiB, t=2, p=1). The accelerated demo may lower it through
# PARINDEX_ARGON2_MEMORY_KIB / PARINDEX_ARGON2_TIME (each hash records its own parameters).
HASHER = PasswordHasher(
    time_cost=int(os.environ.get("PARINDEX_ARGON2_TIME", "2")),
    memory_cost=int(os.environ.get("PARINDEX_ARGON2_MEMORY_KIB", "19456")),
    parallelism=1,
    hash_len=32,
    salt_len=16,
    type=Type.ID,
)


def generate_password(length: int = PASSWORD_LENGTH) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(HASHER.hash, password)


_DUMMY_HASH = HASHER.hash(generate_password())


async def verify_password(hashed: str | None, password: str) -> bool:
    """Constant work whether or not the user exists: an unknown user verifies a dummy hash."""

    def check() -> bool:
        try:
            return HASHER.verify(hashed or _DUMMY_HASH, password) and hashed is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


async def issue_credential(
    rt: Runtime, campaign_id: str, respondent_id: str, purpose: str = "invitation"
) -> dict[str, Any] | None:
    """A fresh password for a registered respondent, or None; an earlier one works until used."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}")
    async with rt.sessions() as s:
        rows = await projection.respondents(s, campaign_id)
    person = next((r for r in rows if r["respondent_id"] == respondent_id), None)
    if person is None:
        return None
    password = generate_password()
    hashed = await hash_password(password)
    async with rt.sessions.begin() as s:
        await s.execute(
            text(
                # A respondent who already holds a credential keeps it until the new one is
                # used (docs/architecture.md, decision 19): a reset request or a reminder
                # never silently breaks the password from the invitation.
                "INSERT INTO identity_credentials (campaign, respondent_id, password_hash, "
                "purpose) VALUES (:c, :r, :h, :p) "
                "ON CONFLICT (campaign, respondent_id) DO UPDATE SET "
                "pending_hash = EXCLUDED.password_hash, pending_purpose = EXCLUDED.purpose"
            ),
            {"c": campaign_id, "r": respondent_id, "h": hashed, "p": purpose},
        )
    event = make(
        CredentialsIssued(
            respondent_id=respondent_id, username=person["username"], purpose=purpose
        ),
        campaign_id=campaign_id,
        producer=PRODUCER,
        event_id=str(uuid.uuid4()),
        # the day only, as BallotSubmitted (docs/architecture.md, decision 15)
        occurred_at=datetime.combine(datetime.now(UTC).date(), time(0), UTC),
    )
    await publish_event(rt.js, subjects.respondent(campaign_id, respondent_id), event)
    log.debug("credential issued (%s)", purpose)
    return {
        "username": person["username"],
        "password": password,
        "full_name": person["full_name"],
        "email": person["email"],
    }
