"""Notify's domain errors: why a resend was refused, in words of notify, not of HTTP.

deliveries.py raises them; api.py maps them to HTTP status and web.py shows that refusal as a
page, rpc.py to the RPC code `refused` (docs/architecture.md, decision 31).
"""

from __future__ import annotations


class ResendRefused(Exception):
    """A resend that must not be queued; `reason` is the short English text the API answers."""

    reason = "refused"

    def __init__(self) -> None:
        super().__init__(self.reason)


class UnknownCampaign(ResendRefused):
    reason = "unknown campaign"


class CampaignClosed(ResendRefused):
    reason = "campaign is closed"


class UnknownRespondent(ResendRefused):
    reason = "unknown respondent"


class RespondentWithdrawn(ResendRefused):
    reason = "respondent withdrawn"
