"""Scoring's domain errors for readers of results; the adapters map them (api.py to 404).

docs/architecture.md, decision 31. Publication's refusals are `publication.ReleaseRefused`.
"""

from __future__ import annotations


class UnknownCampaign(LookupError):
    def __init__(self, campaign_id: str) -> None:
        super().__init__(f"unknown campaign {campaign_id}")
        self.campaign_id = campaign_id


class UnknownUnit(LookupError):
    def __init__(self, campaign_id: str, unit_code: str) -> None:
        super().__init__(f"unit {unit_code} is not rated in {campaign_id}")
        self.campaign_id, self.unit_code = campaign_id, unit_code
