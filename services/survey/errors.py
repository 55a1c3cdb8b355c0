"""Survey's domain errors: why a use case refused, in words of the survey, not of HTTP.

The use cases (ballots.py, progress.py, define.py) raise these; each adapter maps them once, in
its own table: api.py to JSON status and body, web.py to pages, rpc.py to RPC error codes
(docs/architecture.md, decision 31).
"""

from __future__ import annotations

from datetime import date

from services.survey.define import CampaignFrozen
from services.survey.secrecy import MissingBallotKey

__all__ = [
    "AlreadySubmitted",
    "CampaignFrozen",
    "DeadlinePassed",
    "InvalidBallot",
    "MissingBallotKey",
    "NotARespondent",
    "NotAllowed",
    "NotOpen",
    "SurveyError",
    "UnknownCampaign",
]


class SurveyError(Exception):
    """A refusal of a survey use case; `code` is the stable English code the API answers."""

    code = "refused"

    def __init__(self, code: str | None = None) -> None:
        super().__init__(code or self.code)
        if code:
            self.code = code


class NotARespondent(SurveyError):
    """The principal names no campaign (`no_campaign`), or is not registered in it or was
    withdrawn (`not_a_respondent`)."""

    code = "not_a_respondent"


class NotAllowed(SurveyError):
    """A focal point asks for another campaign (`other_campaign`) or has no unit (`no_unit`)."""

    code = "not_allowed"


class DeadlinePassed(SurveyError):
    """The deadline passed, or the log sequenced the ballot after DeadlineReached."""

    code = "deadline_passed"


class NotOpen(SurveyError):
    """The respondent's wave has not opened yet."""

    code = "wave_not_open"

    def __init__(self, wave_id: str | None) -> None:
        super().__init__()
        self.wave_id = wave_id


class InvalidBallot(SurveyError):
    """The answers do not fit the form: every problem found (ballot.problems)."""

    code = "invalid_ballot"

    def __init__(self, problems: list[dict[str, str | None]]) -> None:
        super().__init__()
        self.problems = problems


class AlreadySubmitted(SurveyError):
    """Another ballot of this respondent is on the log; `submitted_on` is its day when known."""

    code = "already_submitted"

    def __init__(self, submitted_on: date | None = None) -> None:
        super().__init__()
        self.submitted_on = submitted_on


class UnknownCampaign(LookupError):
    """No such campaign in survey's projection."""
