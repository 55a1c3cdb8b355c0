"""Staff sessions the log has ended: a disabled account, a password reset (decision 42).

A session is a signed token every service verifies alone (decision 5), so disabling an account
in identity used to leave its sessions valid in every service until they expired, up to eight
hours. Each service now follows the staff accounts' events on the log and refuses a staff
token issued before the account's last reset, or any token of a disabled account. The follower
catches up before the service answers; until it has, staff tokens are refused (fail closed).
"""

from __future__ import annotations

import logging
import math

from contracts import subjects
from contracts.events import Envelope, Payload, StaffAccountDisabled, StaffPasswordReset
from parindex.bus.follow import LogFollower

log = logging.getLogger("parindex.revocation")

STAFF_ROLES = frozenset({"admin", "auditor", "focal_point"})
FILTER = f"par.evt.{subjects.STAFF_CAMPAIGN}.account.>"


class Revocations(LogFollower):
    """username → the moment before which its sessions no longer count (inf: disabled)."""

    label = "revocations"
    filters = [FILTER]

    def __init__(self) -> None:
        super().__init__()
        self.after: dict[str, float] = {}
        # Until this moment (monotonic) a staff request waits for the watch to catch up
        # instead of failing closed at once: the start's grace, not a wait on every request.
        self.patience_until = 0.0

    def fold(self, env: Envelope, payload: Payload) -> None:
        if isinstance(payload, StaffAccountDisabled):
            self.after[payload.username] = math.inf
        elif isinstance(payload, StaffPasswordReset):
            at = env.occurred_at.timestamp()
            self.after[payload.username] = max(self.after.get(payload.username, 0.0), at)

    def revoked(self, username: str, issued_at: float) -> bool:
        after = self.after.get(username)
        return after is not None and issued_at <= after
