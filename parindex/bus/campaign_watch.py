"""Every service keeps the stage of every campaign in memory, read from the log.

The staff layout shows the picked campaign's stage on every page of every service
(docs/architecture.md, decision 39). Each service's projection sees only some of the events
that move a stage, so instead of four migrations this watcher reads just those subjects
(contracts/lifecycle.py: SUBJECT_FILTERS — a handful of events per campaign) with an
unacknowledged consumer from sequence 1, and folds them with `Facts.apply`. Reading a page never
waits on it; it answers from memory. Decisions that must be exact (an import into a closed
campaign) ask the log directly (`stage_from_log`).
"""

from __future__ import annotations

import logging

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts import subjects
from contracts.events import CampaignClosed, Envelope, EventError, Payload, decode
from contracts.lifecycle import SUBJECT_FILTERS, Facts, Stage, status
from parindex.bus.follow import LogFollower

log = logging.getLogger(__name__)


class CampaignWatch(LogFollower):
    """The lifecycle facts of every campaign on the log, newest definition order kept."""

    label = "campaign watch"
    filters = list(SUBJECT_FILTERS)

    def __init__(self) -> None:
        super().__init__()
        self.facts: dict[str, Facts] = {}

    def stage(self, campaign_id: str | None) -> Stage:
        return status(self.facts.get(campaign_id or ""))

    def campaigns(self) -> list[str]:
        """Defined campaigns, the most recently defined first (as pages default to)."""
        return [c for c in reversed(self.facts) if self.facts[c].defined]

    def name(self, campaign_id: str) -> str:
        f = self.facts.get(campaign_id)
        return f.name if f else ""

    def fold(self, env: Envelope, payload: Payload) -> None:
        facts = self.facts.setdefault(env.campaign_id, Facts())
        if type(payload).__name__ == "CampaignDefined" and facts.defined:
            self.facts.pop(env.campaign_id)  # a redefinition moves it to the newest place
            self.facts[env.campaign_id] = facts
        facts.apply(payload)


async def closed_on_log(js: JetStreamContext, campaign_id: str) -> bool:
    """Exactly, from the log: has the campaign's deadline passed or has it been closed?"""
    for subject in (subjects.deadline(campaign_id), subjects.results(campaign_id)):
        try:
            await js.get_last_msg(subjects.EVENTS_STREAM, subject)
            return True
        except NotFoundError:
            pass
    try:
        last = await js.get_last_msg(subjects.EVENTS_STREAM, subjects.campaign(campaign_id))
    except NotFoundError:
        return False
    try:
        return isinstance(decode(last.data or b"")[1], CampaignClosed)
    except EventError:
        return False
