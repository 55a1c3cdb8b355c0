"""The survey service's read model: campaigns, respondents, waves, deadline, ballot counts.

Participation ("who voted") is neither an event nor a stored row: participation.py derives it
from the log when asked, so no table keeps the order in which people voted (docs/architecture.md,
decision 15). Answers are never stored; ballots become counts per (campaign, unit, form), a
ballot counting once for every unit it answers, and ballots sequenced after DeadlineReached are
not counted: both exactly as scoring counts (services/scoring/method.py, projection.py).

Two instances may run this projection against the same database: each batch first locks the
offset row and skips what another instance already applied (the 0002 trigger keeps the offset
from moving backwards), so effects stay exactly-once.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.campaign import Campaign
from contracts.events import (
    BallotFields,
    BallotSubmitted,
    CampaignClosed,
    CampaignDefined,
    DeadlineReached,
    RespondentRegistered,
    RespondentUpdated,
    RespondentWithdrawn,
    WaveOpened,
)
from parindex.bus.projection import Event, FastBallots, on
from parindex.db import campaigns
from parindex.db.campaigns import CampaignTable

NAME = "survey"


class SurveyProjection(FastBallots):
    name = NAME

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str, str]] = Counter()
        self._deadlines: dict[str, int | None] = {}

    async def reset(self, session: AsyncSession) -> None:
        for table in (
            "survey_campaigns",
            "survey_respondents",
            "survey_waves_opened",
            "survey_deadlines",
            "survey_ballot_counts",
        ):
            await session.execute(text(f"DELETE FROM {table}"))

    @on(CampaignDefined)
    async def campaign_defined(self, s: AsyncSession, e: Event, p: CampaignDefined) -> None:
        c = e.envelope.campaign_id
        await s.execute(
            text(
                "INSERT INTO survey_campaigns (id, version, definition) "
                "VALUES (:id, :v, CAST(:d AS jsonb)) ON CONFLICT (id) DO UPDATE "
                "SET version = EXCLUDED.version, definition = EXCLUDED.definition "
                "WHERE NOT survey_campaigns.frozen"
            ),
            {"id": c, "v": p.campaign.version, "d": p.campaign.model_dump_json()},
        )

    @on(CampaignClosed)
    async def campaign_closed(self, s: AsyncSession, e: Event, p: CampaignClosed) -> None:
        c = e.envelope.campaign_id
        await s.execute(text("UPDATE survey_campaigns SET closed = true WHERE id = :c"), {"c": c})

    @on(RespondentRegistered)
    async def registered(self, s: AsyncSession, e: Event, p: RespondentRegistered) -> None:
        c = e.envelope.campaign_id
        await s.execute(
            text(
                "INSERT INTO survey_respondents "
                "(campaign, respondent_id, unit_code, form_code, full_name) "
                "VALUES (:c, :r, :u, :f, :n) ON CONFLICT (campaign, respondent_id) DO UPDATE "
                "SET unit_code = EXCLUDED.unit_code, form_code = EXCLUDED.form_code, "
                "full_name = EXCLUDED.full_name, withdrawn = false"
            ),
            {
                "c": c,
                "r": p.respondent_id,
                "u": p.unit_code,
                "f": p.form_code,
                "n": p.full_name,
            },
        )

    @on(RespondentUpdated)
    async def updated(self, s: AsyncSession, e: Event, p: RespondentUpdated) -> None:
        c = e.envelope.campaign_id
        await s.execute(
            text(
                "UPDATE survey_respondents SET full_name = COALESCE(:n, full_name), "
                "unit_code = COALESCE(:u, unit_code) "
                "WHERE campaign = :c AND respondent_id = :r"
            ),
            {"c": c, "r": p.respondent_id, "n": p.full_name, "u": p.unit_code},
        )

    @on(RespondentWithdrawn)
    async def withdrawn(self, s: AsyncSession, e: Event, p: RespondentWithdrawn) -> None:
        c = e.envelope.campaign_id
        await s.execute(
            text(
                "UPDATE survey_respondents SET withdrawn = true "
                "WHERE campaign = :c AND respondent_id = :r"
            ),
            {"c": c, "r": p.respondent_id},
        )

    @on(WaveOpened)
    async def wave_opened(self, s: AsyncSession, e: Event, p: WaveOpened) -> None:
        c = e.envelope.campaign_id
        await s.execute(
            text(
                "INSERT INTO survey_waves_opened (campaign, wave_id, seq) VALUES (:c, :w, :s) "
                "ON CONFLICT DO NOTHING"
            ),
            {"c": c, "w": p.wave_id, "s": e.seq},
        )
        await s.execute(text("UPDATE survey_campaigns SET frozen = true WHERE id = :c"), {"c": c})

    @on(DeadlineReached)
    async def deadline_reached(self, s: AsyncSession, e: Event, p: DeadlineReached) -> None:
        c = e.envelope.campaign_id
        first = await self._deadline(s, c)  # the table keeps the first DeadlineReached
        self._deadlines[c] = e.seq if first is None else first
        await s.execute(
            text(
                "INSERT INTO survey_deadlines (campaign, seq) VALUES (:c, :s) "
                "ON CONFLICT DO NOTHING"
            ),
            {"c": c, "s": e.seq},
        )

    @on(BallotSubmitted)
    async def ballot(self, s: AsyncSession, e: Event, p: BallotSubmitted) -> None:
        # A ballot decode_ballot left to decode(): counted by the same rules.
        await self._count(s, e, p.form_code, {a.unit_code for a in p.answers})

    async def ballot_fields(self, session: AsyncSession, e: Event, p: BallotFields) -> None:
        await self._count(session, e, p.form_code, {a["unit_code"] for a in p.answers})

    async def _count(self, s: AsyncSession, e: Event, form_code: str, units: set[str]) -> None:
        c = e.envelope.campaign_id
        closed_at = await self._deadline(s, c)
        if closed_at is not None and closed_at < e.seq:
            return  # sequenced after the deadline: not counted, as in scoring
        # Once per unit the ballot answers, as services/scoring/method.py Tally.of_ballot.
        for unit_code in units:
            self._counts[(c, unit_code, form_code)] += 1

    async def _deadline(self, s: AsyncSession, campaign_id: str) -> int | None:
        """The sequence of the campaign's DeadlineReached, read once per batch."""
        if campaign_id not in self._deadlines:
            self._deadlines[campaign_id] = await s.scalar(
                text("SELECT seq FROM survey_deadlines WHERE campaign = :c"), {"c": campaign_id}
            )
        return self._deadlines[campaign_id]

    async def begin(self, session: AsyncSession) -> None:
        # Ballots are counted in memory and written once per batch, one statement for all
        # (docs/architecture.md, decision 44); the deadline is read once per campaign and batch.
        self._counts = Counter()
        self._deadlines = {}

    async def end(self, session: AsyncSession) -> None:
        if not self._counts:
            return
        keys = sorted(self._counts)  # a fixed order: two instances never deadlock on the rows
        await session.execute(
            text(
                "INSERT INTO survey_ballot_counts (campaign, unit_code, form_code, received) "
                "SELECT * FROM unnest(CAST(:c AS text[]), CAST(:u AS text[]), "
                "CAST(:f AS text[]), CAST(:n AS int[])) "
                "ON CONFLICT (campaign, unit_code, form_code) "
                "DO UPDATE SET received = survey_ballot_counts.received + EXCLUDED.received"
            ),
            {
                "c": [k[0] for k in keys],
                "u": [k[1] for k in keys],
                "f": [k[2] for k in keys],
                "n": [self._counts[k] for k in keys],
            },
        )
        self._counts.clear()


# Reads used by the HTTP API and the scheduler --------------------------------------------
CAMPAIGNS = CampaignTable("survey_campaigns")


async def load_campaign(s: AsyncSession, campaign_id: str) -> Campaign | None:
    """The campaign, parsed once per definition: every ballot request needs it."""
    return await campaigns.load_campaign(s, CAMPAIGNS, campaign_id)
