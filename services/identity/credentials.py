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
A re-issued password is held as pending and replaces the previous one only when it is first
used (docs/architecture.md, decision 19); a reminder to someone who already holds a credential
issues none at all, so it can never break the invitation's password (decision 37). Who may
send requests on par.rpc.identity.* is a NATS permission matter (only notify should publish to
the credential subject in production).

Each credential names a holder, which the session carries and which a respondent's draft is
kept under: a credential mailed to the address of the one it replaces keeps its holder, one
mailed anywhere else gets a new one, so an admin who redirects someone's mail gets a working
credential but not their unfinished answers (docs/architecture.md, decision 48).
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


class AddressChanged(Exception):
    """The requester would mail another address than identity holds: one of the two has not
    applied the latest correction yet, and the holder is decided for the address mailed."""


def generate_password(length: int = PASSWORD_LENGTH) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def _address(email: str | None) -> str:
    return (email or "").strip().lower()


async def issue_credential(
    rt: Runtime,
    campaign_id: str,
    respondent_id: str,
    purpose: str = "invitation",
    address: str | None = None,
) -> dict[str, Any] | None:
    """A fresh password for a registered respondent, or None if not registered.

    An earlier credential works until the new one is used (decision 19). A reminder issues
    nothing when the person holds a credential: the reply has no password, and the mail says
    the invitation's password still works (docs/architecture.md, decision 37). `address` is
    where the requester will mail it; AddressChanged if identity holds another (decision 48).
    """
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}")
    async with rt.sessions() as s:
        # One row, not the campaign's whole registry: a wave asks once per respondent.
        person = (
            (
                await s.execute(
                    text(
                        "SELECT r.username, r.full_name, r.email, "
                        "(c.respondent_id IS NOT NULL) AS holds "
                        "FROM identity_respondents r LEFT JOIN identity_credentials c "
                        "ON c.campaign = r.campaign AND c.respondent_id = r.respondent_id "
                        "WHERE r.campaign = :c AND r.respondent_id = :r AND NOT r.withdrawn"
                    ),
                    {"c": campaign_id, "r": respondent_id},
                )
            )
            .mappings()
            .first()
        )
    if person is None:
        return None
    sent_to = _address(person["email"])
    if address is not None and _address(address) != sent_to:
        raise AddressChanged(f"identity holds another address for {respondent_id}")
    reply: dict[str, Any] = {
        "username": person["username"],
        "full_name": person["full_name"],
        "email": person["email"],
    }
    if purpose == "reminder" and person["holds"]:
        return {**reply, "password": None, "replaces": False}
    # A pair hashed ahead while the pool was idle, else hash now (decision 29).
    stock = rt.extras.get("credential_stock")
    pair = stock.take() if stock is not None else None
    if pair is not None:
        password, hashed = pair
    else:
        password = generate_password()
        hashed = await hash_password(password)
    async with rt.sessions.begin() as s:
        held = await s.scalar(
            text(
                # A respondent who already holds a credential keeps it until the new one is
                # used (docs/architecture.md, decision 19): a reset request never silently
                # breaks the password from the invitation. The new one keeps the holder only
                # if it goes to the address the held one went to (decision 48).
                "INSERT INTO identity_credentials (campaign, respondent_id, password_hash, "
                "purpose, holder, sent_to) VALUES (:c, :r, :h, :p, :holder, :to) "
                "ON CONFLICT (campaign, respondent_id) DO UPDATE SET "
                "pending_hash = EXCLUDED.password_hash, pending_purpose = EXCLUDED.purpose, "
                "pending_holder = CASE WHEN identity_credentials.sent_to = EXCLUDED.sent_to "
                "AND identity_credentials.holder IS NOT NULL THEN identity_credentials.holder "
                "ELSE EXCLUDED.holder END, pending_sent_to = EXCLUDED.sent_to "
                "RETURNING (xmax <> 0)"
            ),
            {
                "c": campaign_id,
                "r": respondent_id,
                "h": hashed,
                "p": purpose,
                "holder": secrets.token_hex(16),
                "to": sent_to,
            },
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
    # `xmax <> 0`: the row existed, so the new password replaces it on first use.
    return {**reply, "password": password, "replaces": bool(held)}
