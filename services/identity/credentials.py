"""Respondent credentials: generated, hashed, issued (served over NATS by services/identity/rpc.py).

Passwords: 12 characters drawn with `secrets` from an alphabet without look-alikes (no 0/O,
1/l/I, 5/S, 2/Z, 8/B), about 68 bits: read aloud or typed from an e-mail on a phone without
mistakes. Hashes: argon2id with the OWASP Password Storage Cheat Sheet minimum (m=19456 KiB,
t=2, p=1), ~20-60 ms per hash here, run in identity's process pool (services/identity/hashing.py)
so the event loop keeps serving and every core hashes; a credential usually comes ready-hashed
from the stock made while the pool was idle (services/identity/stock.py).

The plaintext exists only in the reply to RPC_IDENTITY_CREDENTIAL (notify, at send time) and is
never logged or published (docs/architecture.md, decision 6): the log gets CredentialsIssued,
the fact only.
Re-issuing replaces the previous hash, so an old e-mail's password stops working. Who may
send requests on par.rpc.identity.* is a NATS permission matter (only notify should publish to
the credential subject in production).
"""

from __future__ import annotations

import logging
import secrets
import uuid
from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy import text

from contracts import subjects
from contracts.events import CredentialsIssued, make
from parindex.bus.publish import publish_event
from parindex.web.service import Runtime
from services.identity.hashing import hash_password
from services.identity.imports import PRODUCER

log = logging.getLogger(__name__)

ALPHABET = "abcdefghjkmnpqrstuvwxyzACDEFGHJKLMNPQRTUVWXY34679"
PASSWORD_LENGTH = 12
PURPOSES = ("invitation", "reminder", "reset", "admin")


def generate_password(length: int = PASSWORD_LENGTH) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


async def issue_credential(
    rt: Runtime, campaign_id: str, respondent_id: str, purpose: str = "invitation"
) -> dict[str, Any] | None:
    """A fresh password for a registered respondent, or None; an earlier one works until used."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}")
    async with rt.sessions() as s:
        # One row, not the campaign's whole registry: a wave asks once per respondent.
        person = (
            (
                await s.execute(
                    text(
                        "SELECT username, full_name, email FROM identity_respondents "
                        "WHERE campaign = :c AND respondent_id = :r AND NOT withdrawn"
                    ),
                    {"c": campaign_id, "r": respondent_id},
                )
            )
            .mappings()
            .first()
        )
    if person is None:
        return None
    # A pair hashed ahead while the pool was idle, else hash now (decision 29).
    stock = rt.extras.get("credential_stock")
    pair = stock.take() if stock is not None else None
    if pair is not None:
        password, hashed = pair
    else:
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
