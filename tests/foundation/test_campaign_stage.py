"""A campaign's stage from its lifecycle facts: one pure function (docs/architecture.md,
decision 39)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from contracts.events import (
    CampaignClosed,
    CampaignDefined,
    DeadlineReached,
    ResultsPublished,
    ResultsReleased,
    WaveOpened,
)
from contracts.lifecycle import Facts, Stage, accepts_imports, definition_frozen, status
from tests.identity.conftest import make_campaign

pytestmark = pytest.mark.unit
NOW = datetime(2023, 10, 6, tzinfo=UTC)
STEPS = [
    (CampaignDefined(campaign=make_campaign()), Stage.PUBLISHED),
    (WaveOpened(wave_id="w1", opens_at=NOW), Stage.COLLECTING),
    (WaveOpened(wave_id="w2", opens_at=NOW), Stage.COLLECTING),
    (DeadlineReached(deadline=NOW), Stage.CLOSED),
    (ResultsPublished(digest="d", last_sequence=9, rows=[]), Stage.RESULTS_FROZEN),
    (
        ResultsReleased(digest="d", released_by="admin", released_on=date(2023, 10, 7)),
        Stage.RESULTS_PUBLISHED,
    ),
]


def test_each_event_moves_the_stage_in_order() -> None:
    facts = Facts()
    assert status(None) == status(facts) == Stage.DRAFT
    for payload, expected in STEPS:
        facts.apply(payload)
        assert status(facts) == expected, payload
    assert facts.name == make_campaign().name


def test_later_facts_win_so_a_stage_never_moves_back() -> None:
    """A reader that missed a fact (or reads events out of order) still names the later stage."""
    facts = Facts()
    facts.apply(STEPS[-1][0])  # the release alone
    assert status(facts) == Stage.RESULTS_PUBLISHED
    facts.apply(STEPS[0][0])  # a redefinition read afterwards changes nothing
    assert status(facts) == Stage.RESULTS_PUBLISHED
    closed = Facts(defined=True)
    closed.apply(CampaignClosed())
    assert status(closed) == Stage.CLOSED


def test_what_each_stage_allows() -> None:
    allowed = {s for s in Stage if accepts_imports(s)}
    assert allowed == {Stage.PUBLISHED, Stage.COLLECTING}
    frozen = {s for s in Stage if definition_frozen(s)}
    assert frozen == set(Stage) - {Stage.DRAFT, Stage.PUBLISHED}


def test_the_watch_lists_the_newest_definition_first_and_skips_bad_events() -> None:
    from contracts import events
    from parindex.bus.campaign_watch import CampaignWatch

    def raw(payload: events.Payload, campaign_id: str) -> bytes:
        return events.encode(events.make(payload, campaign_id=campaign_id, producer="test"))

    a = make_campaign().model_copy(update={"id": "a"})
    b = make_campaign().model_copy(update={"id": "b"})
    w = CampaignWatch()
    w.apply(raw(CampaignDefined(campaign=a), "a"), 1)
    w.apply(raw(CampaignDefined(campaign=b), "b"), 2)
    assert w.campaigns() == ["b", "a"]
    w.apply(b"not an event", 3)  # dead-lettered elsewhere; never a stage fact
    w.apply(raw(DeadlineReached(deadline=NOW), "a"), 4)
    assert w.stage("a") == Stage.CLOSED and w.stage("b") == Stage.PUBLISHED
    w.apply(raw(CampaignDefined(campaign=a), "a"), 5)  # an amendment: newest again
    assert w.campaigns() == ["a", "b"] and w.seen == 5
    assert w.stage("a") == Stage.CLOSED  # and still closed
    assert w.stage("nobody") == Stage.DRAFT


def test_the_watch_skips_an_event_off_its_own_subject() -> None:
    """Scoring may publish on the results subject, not a deadline (decision 47): the stage
    shown on every staff page does not move for one placed there."""
    from contracts import events, subjects
    from parindex.bus.campaign_watch import CampaignWatch

    a = make_campaign().model_copy(update={"id": "a"})
    w = CampaignWatch()
    defined = events.make(CampaignDefined(campaign=a), campaign_id="a", producer="survey")
    w.apply(events.encode(defined), 1, subjects.campaign("a"))
    forged = events.make(DeadlineReached(deadline=NOW), campaign_id="a", producer="scoring")
    w.apply(events.encode(forged), 2, subjects.results("a"))
    assert w.stage("a") == Stage.PUBLISHED and w.seen == 2
    w.apply(events.encode(forged), 3, subjects.deadline("a"))  # on its own subject it counts
    assert w.stage("a") == Stage.CLOSED
