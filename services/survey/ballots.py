"""The respondent's use cases: who is asking, whether the form is open, the ballot, the draft.

Service layer (docs/architecture.md, decision 31): every function takes its dependencies
(`Deps`: the log, the projection's sessions, the ballot key, the clock) as arguments, knows
nothing of HTTP, and refuses by raising the domain errors of errors.py. The JSON API (api.py)
and the pages (web.py) are thin adapters over these same functions, so a ballot takes one path
whichever way it comes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts import subjects
from contracts.campaign import Campaign
from contracts.events import Answer, BallotSubmitted, decode
from parindex.bus.publish import ConcurrencyConflict, publish_event
from parindex.clock import Clock
from parindex.db.campaigns import ByRowVersion
from parindex.db.reads import ReadPool
from services.survey import participation
from services.survey import receipt as receipts
from services.survey.ballot import ballot_envelope, local_day, problems
from services.survey.drafts import DraftCleaner
from services.survey.errors import (
    AlreadySubmitted,
    DeadlinePassed,
    InvalidBallot,
    NotARespondent,
    NotOpen,
)
from services.survey.intake import Intake, IntakeCache, intake_of
from services.survey.projection import load_campaign
from services.survey.secrecy import draft_holder, pseudonym
from services.survey.storage import queries


@dataclass(frozen=True)
class Deps:
    """What the respondent's use cases need; adapters build it from the service's runtime."""

    js: JetStreamContext
    sessions: async_sessionmaker[AsyncSession]
    reads: ReadPool  # the hot path's one read, straight on asyncpg (decision 44)
    ballot_key: str
    clock: Clock
    deadlines: participation.DeadlineProbe  # one per instance, shared by the ballots in flight
    campaigns: ByRowVersion = field(default_factory=ByRowVersion)
    drafts: DraftCleaner | None = None  # None: a submitted ballot's draft is deleted at once
    intake: IntakeCache | None = None  # None: every request reads the projection (decision 49)


@dataclass(frozen=True)
class Who:
    """A registered, not withdrawn respondent: its campaign, form and unit (from the log), and
    what the projection said of the campaign's waves and deadline in the same read."""

    campaign: Campaign
    respondent_id: str
    form_code: str
    unit_code: str | None
    waves_opened: frozenset[str] = frozenset()
    deadline_seen: bool = False


@dataclass(frozen=True)
class Status:
    """The respondent's wave and whether it opened; whether the projection saw the deadline."""

    wave_id: str | None
    open: bool
    deadline_passed: bool


@dataclass
class Logged:
    """A ballot as the log holds it; `counted` is false when sequenced after the deadline."""

    ballot: BallotSubmitted
    counted: bool


@dataclass(frozen=True)
class Accepted:
    """A counted ballot and its receipt."""

    receipt: str
    submitted_on: date


async def respondent(d: Deps, campaign_id: str | None, respondent_id: str) -> Who:
    """The respondent's campaign and registration, from the projection (the log), not the token."""
    if not campaign_id:
        raise NotARespondent("no_campaign")
    row = await _intake(d, campaign_id, respondent_id)  # at most one round trip
    if row is None or row.form_code is None or row.withdrawn:
        raise NotARespondent("not_a_respondent")
    campaign = d.campaigns.get(campaign_id, row.row_version)
    if campaign is None:  # a new version of the campaign row: parse it once
        async with d.sessions() as s:
            campaign = await load_campaign(s, campaign_id)
        if campaign is None:
            raise NotARespondent("not_a_respondent")
        d.campaigns.put(campaign_id, row.row_version, campaign)
    return Who(campaign, respondent_id, row.form_code, row.unit_code, row.waves, row.closed)


async def _intake(d: Deps, campaign_id: str, respondent_id: str) -> Intake | None:
    if d.intake is not None:
        return await d.intake.read(campaign_id, respondent_id)
    row = await queries.intake(d.reads, campaign_id, respondent_id)
    return None if row is None else intake_of(row)


def pseudonym_of(d: Deps, who: Who) -> str:
    """The ballot's pseudonym; MissingBallotKey without the key (docs/architecture.md, 7)."""
    return pseudonym(d.ballot_key, who.campaign.id, who.respondent_id)


async def status(d: Deps, who: Who) -> Status:
    """From the projection's state read with the respondent (no further round trip)."""
    wave = who.campaign.wave_for(who.form_code, who.unit_code)
    opened = wave is not None and wave.id in who.waves_opened
    return Status(wave.id if wave else None, opened, who.deadline_seen)


async def submitted(d: Deps, campaign_id: str, pseudo: str) -> Logged | None:
    """The ballot on this pseudonym's subject, if any, and whether it counts (read from the log)."""
    try:
        msg = await d.js.get_last_msg(subjects.EVENTS_STREAM, subjects.ballot(campaign_id, pseudo))
    except NotFoundError:
        return None
    _, payload = decode(msg.data or b"")
    assert isinstance(payload, BallotSubmitted)
    return Logged(payload, await d.deadlines.counted(campaign_id, int(msg.seq or 0)))


def issue_receipt(d: Deps, campaign_id: str, day: date, submission_id: str | None) -> str:
    """A receipt for a counted ballot: proves the day, not the ballot (see receipt.py)."""
    return receipts.issue(d.ballot_key, campaign_id, day, submission_id)


def verify_receipt(ballot_key: str, campaign_id: str, receipt: str) -> date | None:
    """The day a receipt proves, or None (MissingBallotKey without the key)."""
    return receipts.verify(ballot_key, campaign_id, receipt[:200])


async def submit_ballot(
    d: Deps, who: Who, answers: list[Answer], client_submission_id: str | None
) -> Accepted:
    """The one path a ballot takes (JSON API and HTML form): checks, then the log decides.

    The clock and projection checks only narrow the window: the ballot counts if and only if
    the log sequenced it before DeadlineReached, and only then is there a receipt
    (docs/architecture.md, decision 15). PublishUnavailable passes through (decision 23).
    """
    campaign = who.campaign
    st = await status(d, who)
    now = d.clock.now()
    if st.deadline_passed or now >= campaign.deadline:
        raise DeadlinePassed()
    if not st.open:
        raise NotOpen(st.wave_id)
    found = problems(campaign, who.form_code, who.unit_code, answers)
    if found:
        raise InvalidBallot(found)
    pseudo = pseudonym_of(d, who)
    envelope = ballot_envelope(
        campaign,
        pseudonym=pseudo,
        form_code=who.form_code,
        unit_code=who.unit_code,
        answers=answers,
        now=now,
        client_submission_id=client_submission_id,
    )
    day = local_day(campaign, now)  # the event's submitted_on, as ballot_envelope made it
    try:
        published = await publish_event(
            d.js, subjects.ballot(campaign.id, pseudo), envelope, expected_last_subject_seq=0
        )
    except ConcurrencyConflict:
        existing = await submitted(d, campaign.id, pseudo)
        if existing is not None and not existing.counted:
            raise DeadlinePassed() from None
        if existing is None:
            raise AlreadySubmitted() from None
        day = existing.ballot.submitted_on
        if existing.ballot.ballot_id == envelope.data["ballot_id"]:
            # This very submission landed on an earlier, ambiguous try: its receipt, not an
            # error (docs/architecture.md, decision 23).
            return Accepted(issue_receipt(d, campaign.id, day, client_submission_id), day)
        raise AlreadySubmitted(day) from None
    if published.duplicate:  # a retry: answer with what the log holds
        again = await submitted(d, campaign.id, pseudo)
        day = again.ballot.submitted_on if again is not None else day
    if d.drafts is not None:
        d.drafts.discard(campaign.id, pseudo)  # deleted off the request path (decision 41)
    else:
        async with d.sessions.begin() as s:
            await queries.delete_draft(s, campaign.id, pseudo)
    if not await d.deadlines.counted(campaign.id, published.seq):
        raise DeadlinePassed()  # sequenced after DeadlineReached: never counted
    return Accepted(issue_receipt(d, campaign.id, day, client_submission_id), day)


async def store_draft(
    d: Deps, campaign_id: str, pseudo: str, holder: str, answers: list[dict[str, Any]]
) -> None:
    """Keep unfinished answers, keyed by the pseudonym (not the person) and the session's
    credential holder (docs/architecture.md, decision 48); deleted on submit."""
    kept_under = draft_holder(d.ballot_key, pseudo, holder)
    async with d.sessions.begin() as s:
        await queries.save_draft(s, campaign_id, pseudo, kept_under, answers)


async def save_draft(d: Deps, who: Who, holder: str, answers: list[Answer]) -> None:
    """The draft use case: refused (AlreadySubmitted) once a ballot is on the log."""
    pseudo = pseudonym_of(d, who)
    if await submitted(d, who.campaign.id, pseudo) is not None:
        raise AlreadySubmitted()
    await store_draft(d, who.campaign.id, pseudo, holder, [a.model_dump() for a in answers])


async def load_draft(d: Deps, campaign_id: str, pseudo: str, holder: str) -> list[dict[str, Any]]:
    """The draft saved under this credential holder: a credential mailed elsewhere (an admin
    who changed the address) holds none of the person's answers (decision 48)."""
    if d.drafts is not None and d.drafts.pending(campaign_id, pseudo):
        return []  # submitted; its deletion is queued
    kept_under = draft_holder(d.ballot_key, pseudo, holder)
    async with d.sessions() as s:
        stored = await queries.draft(s, campaign_id, pseudo, kept_under)
    return [a.model_dump() for a in well_formed(stored)]


def well_formed(stored: object) -> list[Answer]:
    """The draft answers that still have the shape of an answer (older rows may not)."""
    if not isinstance(stored, list):
        return []
    kept = []
    for item in stored:
        try:
            kept.append(Answer.model_validate(item))
        except ValueError:  # pydantic's ValidationError: skip it, keep the page working
            continue
    return kept
