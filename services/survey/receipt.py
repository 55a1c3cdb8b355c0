"""The receipt: proof that a ballot was submitted on a day, not of which ballot it is.

"<YYYYMMDD>-<nonce>-<mac>", mac = HMAC-SHA256(receipt key, "<campaign>|<nonce>|<day>"). The
nonce is random (or derived from the client's submission id, so a double click shows the same
receipt); it depends on neither the pseudonym nor anything in the event, so the receipt cannot
be matched to a ballot on the log and a respondent cannot prove how they voted, only that they
voted on that day (docs/architecture.md, decision 15). The receipt key is derived from the ballot
key, which only the survey service holds.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import date, datetime

from services.survey.secrecy import MissingBallotKey

_FORMAT = re.compile(r"^(\d{8})-([0-9a-f]{12})-([0-9a-f]{16})$")


def _key(ballot_key: str) -> bytes:
    if not ballot_key:
        raise MissingBallotKey("PARINDEX_BALLOT_KEY is not set")
    return hmac.new(ballot_key.encode(), b"parindex receipt key v1", hashlib.sha256).digest()


def _mac(ballot_key: str, campaign_id: str, nonce: str, day: date) -> str:
    msg = f"{campaign_id}|{nonce}|{day.isoformat()}".encode()
    return hmac.new(_key(ballot_key), msg, hashlib.sha256).hexdigest()[:16]


def issue(ballot_key: str, campaign_id: str, day: date, submission_id: str | None = None) -> str:
    if submission_id:
        seed = f"nonce|{campaign_id}|{submission_id}".encode()
        nonce = hmac.new(_key(ballot_key), seed, hashlib.sha256).hexdigest()[:12]
    else:
        nonce = secrets.token_hex(6)
    return f"{day:%Y%m%d}-{nonce}-{_mac(ballot_key, campaign_id, nonce, day)}"


def verify(ballot_key: str, campaign_id: str, receipt: str) -> date | None:
    """The day the receipt proves a submission on, or None if it is not one of ours."""
    m = _FORMAT.match(receipt.strip().lower())
    if m is None:
        return None
    try:
        day = datetime.strptime(m.group(1), "%Y%m%d").date()
    except ValueError:
        return None
    expected = _mac(ballot_key, campaign_id, m.group(2), day)
    return day if hmac.compare_digest(expected, m.group(3)) else None
