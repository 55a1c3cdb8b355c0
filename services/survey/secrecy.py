"""The ballot pseudonym: the only link between a person and a ballot, and it needs the key.

HMAC-SHA256(ballot_key, "<campaign>|<respondent_id>"), first 32 hex digits. It names the
ballot's aggregate subject (one ballot per person, enforced by JetStream) while the log alone
cannot say whose ballot it is: linking takes the key, which lives only in the survey service's
secret configuration (docs/architecture.md, decision 7). Never store a pseudonym next to a
respondent id.
"""

from __future__ import annotations

import hashlib
import hmac


class MissingBallotKey(RuntimeError):
    """PARINDEX_BALLOT_KEY is empty: ballots cannot be taken without it."""


def pseudonym(ballot_key: str, campaign_id: str, respondent_id: str) -> str:
    if not ballot_key:
        raise MissingBallotKey("PARINDEX_BALLOT_KEY is not set")
    mac = hmac.new(ballot_key.encode(), f"{campaign_id}|{respondent_id}".encode(), hashlib.sha256)
    return mac.hexdigest()[:32]


def draft_holder(ballot_key: str, pseudo: str, holder: str) -> str:
    """The key a draft is kept under besides its pseudonym: the session's credential holder
    (docs/architecture.md, decision 48), keyed like the pseudonym so the survey database cannot
    be joined to identity's holders. "" for a session from before holders, as stored then."""
    if not holder:
        return ""
    if not ballot_key:
        raise MissingBallotKey("PARINDEX_BALLOT_KEY is not set")
    mac = hmac.new(ballot_key.encode(), f"draft|{pseudo}|{holder}".encode(), hashlib.sha256)
    return mac.hexdigest()[:32]
