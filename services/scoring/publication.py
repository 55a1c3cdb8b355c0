"""Who may see results when: live, frozen at the deadline, published by a person.

A live score lets anyone who watches who votes subtract consecutive readings and recover each
ballot (issue #13), so while the campaign runs nobody sees a score, and a frozen result stays
with admins and auditors until an admin publishes it (docs/architecture.md, decision 16).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from nats.js import JetStreamContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import subjects
from contracts.events import ResultsReleased, make
from parindex.bus.publish import ConcurrencyConflict, publish_event
from parindex.web.auth import Principal
from parindex.web.i18n import VN

Status = Literal["live", "frozen", "released"]
PRODUCER = "scoring"
STAFF_BEFORE_RELEASE = ("admin", "auditor")


@dataclass(frozen=True)
class Stage:
    status: Status
    digest: str | None = None  # the frozen results' digest (ResultsPublished)
    last_sequence: int | None = None
    released_by: str | None = None
    released_on: date | None = None


async def load_stage(session: AsyncSession, campaign_id: str) -> Stage:
    """The deadline alone is not enough: results are frozen once their digest is recorded."""
    frozen = (
        await session.execute(
            text("SELECT digest, last_sequence FROM scoring_published WHERE campaign_id = :c"),
            {"c": campaign_id},
        )
    ).first()
    if frozen is None:
        return Stage("live")
    released = (
        await session.execute(
            text("SELECT released_by, released_on FROM scoring_released WHERE campaign_id = :c"),
            {"c": campaign_id},
        )
    ).first()
    if released is None:
        return Stage("frozen", frozen[0], int(frozen[1]))
    return Stage("released", frozen[0], int(frozen[1]), released[0], released[1])


def may_see_scores(stage: Stage, principal: Principal | None) -> bool:
    """Never while live; admins and auditors once frozen; everybody once released."""
    if stage.status == "released":
        return True
    if stage.status == "frozen":
        return principal is not None and principal.role in STAFF_BEFORE_RELEASE
    return False


class ReleaseRefused(Exception):
    """Why the publication was refused, in a few English words for logs and the API."""


async def release(
    js: JetStreamContext, stage: Stage, campaign_id: str, digest: str, publisher: str
) -> ResultsReleased:
    """Put ResultsReleased on the log, once per campaign, only for the frozen digest."""
    if stage.status == "live":
        raise ReleaseRefused("results are not frozen yet")
    if stage.status == "released":
        raise ReleaseRefused("results are already published")
    if digest != stage.digest:
        raise ReleaseRefused("the digest does not match the frozen results")
    payload = ResultsReleased(
        digest=digest, released_by=publisher, released_on=datetime.now(VN).date()
    )
    env = make(payload, campaign_id=campaign_id, producer=PRODUCER, event_id=str(uuid.uuid4()))
    try:
        await publish_event(js, subjects.release(campaign_id), env, expected_last_subject_seq=0)
    except ConcurrencyConflict:
        raise ReleaseRefused("results are already published") from None
    return payload
