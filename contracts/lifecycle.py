"""A campaign's stage, derived from the events already on its log (docs/architecture.md,
decision 39).

One pure function, `status`, turns the lifecycle facts of a campaign into its stage; every
service draws the same stage from the same facts, so no page can say "collecting" while
another says "closed". `Facts.apply` folds one event into the facts, so a reader of the log
(parindex/bus/campaign_watch.py) and a test build them the same way.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from contracts.events import (
    CampaignClosed,
    CampaignDefined,
    DeadlineReached,
    Payload,
    ResultsPublished,
    ResultsReleased,
    WaveOpened,
)


class Stage(enum.StrEnum):
    """In order. "frozen at the first wave" and "collecting" begin with the same WaveOpened,
    so they are one stage: its definition can no longer be amended (`definition_frozen`)."""

    DRAFT = "draft"  # being prepared, not on the log yet (workbook drafts)
    PUBLISHED = "published"  # CampaignDefined; amendments allowed until the first wave
    COLLECTING = "collecting"  # a wave opened: definition frozen, ballots counted
    CLOSED = "closed"  # DeadlineReached (or CampaignClosed): no ballot, no import
    RESULTS_FROZEN = "results_frozen"  # ResultsPublished: digest frozen, not yet public
    RESULTS_PUBLISHED = "results_published"  # ResultsReleased by an admin


ORDER = list(Stage)


@dataclass
class Facts:
    """What the log says about one campaign, as far as its stage goes."""

    name: str = ""
    defined: bool = False
    waves_opened: int = 0
    deadline_reached: bool = False
    closed: bool = False
    results_frozen: bool = False
    results_released: bool = False

    def apply(self, payload: Payload) -> None:
        if isinstance(payload, CampaignDefined):
            self.defined = True
            self.name = payload.campaign.name
        elif isinstance(payload, WaveOpened):
            self.waves_opened += 1
        elif isinstance(payload, DeadlineReached):
            self.deadline_reached = True
        elif isinstance(payload, CampaignClosed):
            self.closed = True
        elif isinstance(payload, ResultsPublished):
            self.results_frozen = True
        elif isinstance(payload, ResultsReleased):
            self.results_released = True


def status(facts: Facts | None) -> Stage:
    """The campaign's stage. Later facts win: a release implies frozen results, and so on, so
    a log read from its middle (or a fact missed) never moves a campaign backwards."""
    if facts is None:
        return Stage.DRAFT
    if facts.results_released:
        return Stage.RESULTS_PUBLISHED
    if facts.results_frozen:
        return Stage.RESULTS_FROZEN
    if facts.deadline_reached or facts.closed:
        return Stage.CLOSED
    if facts.waves_opened:
        return Stage.COLLECTING
    if facts.defined:
        return Stage.PUBLISHED
    return Stage.DRAFT


def definition_frozen(stage: Stage) -> bool:
    """No amendment of the campaign from its first wave on (services/survey/define.py)."""
    return ORDER.index(stage) >= ORDER.index(Stage.COLLECTING)


def accepts_imports(stage: Stage) -> bool:
    """Respondent lists change only before the deadline (docs/architecture.md, decision 39)."""
    return stage in (Stage.PUBLISHED, Stage.COLLECTING)


# The event types that move a stage, and where they live (contracts/subjects.py).
SUBJECT_FILTERS = [
    "par.evt.*.campaign",
    "par.evt.*.wave.*",
    "par.evt.*.deadline",
    "par.evt.*.results",
    "par.evt.*.release",
]
