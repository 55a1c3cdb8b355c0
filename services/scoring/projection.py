"""The scoring projection: counters from the log, results recomputed per batch.

Only ballots sequenced before the campaign's DeadlineReached count (docs/architecture.md,
decision 8): the projection applies in stream order, so once it has seen DeadlineReached every
later ballot is skipped. The same class fills the live database and the auditor's scratch database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.campaign import Campaign
from contracts.events import (
    BallotFields,
    BallotSubmitted,
    CampaignDefined,
    DeadlineReached,
    ResultRow,
    ResultsPublished,
    ResultsReleased,
)
from parindex.bus.projection import Event, FastBallots, Rejected, on
from parindex.db import campaigns
from parindex.db.campaigns import CampaignTable
from services.scoring.method import BallotCounter, Tally, compute_results, result_rows

TABLES = (
    "scoring_results",
    "scoring_ballot_counts",
    "scoring_question_counts",
    "scoring_deadlines",
    "scoring_campaigns",
    "scoring_published",
    "scoring_released",
    "scoring_stale_results",
)


class ScoringProjection(FastBallots):
    name = "scoring"

    def __init__(self) -> None:
        self._campaigns: dict[str, Campaign] = {}
        self._deadlines: dict[str, int | None] = {}
        self._counters: dict[str, BallotCounter] = {}  # one batch's ballots, flushed at its end
        self._touched: set[str] = set()
        self._settled: set[str] = set()  # defined or past its deadline in this batch

    async def ballot_fields(self, session: AsyncSession, e: Event, p: BallotFields) -> None:
        await self._count(session, e, p.ballot_id, p.form_code, p.unit_code, p.answers)

    async def reset(self, session: AsyncSession) -> None:
        for table in TABLES:
            await session.execute(text(f"DELETE FROM {table}"))
        self._campaigns.clear()
        self._deadlines.clear()

    async def _campaign(self, session: AsyncSession, campaign_id: str) -> Campaign | None:
        if campaign_id not in self._campaigns:
            campaign = await load_campaign(session, campaign_id)
            if campaign is None:
                return None
            self._campaigns[campaign_id] = campaign
        return self._campaigns[campaign_id]

    async def _deadline(self, session: AsyncSession, campaign_id: str) -> int | None:
        if campaign_id not in self._deadlines:  # None is cached too: one query per batch
            seq = await session.scalar(
                text("SELECT seq FROM scoring_deadlines WHERE campaign_id = :c"),
                {"c": campaign_id},
            )
            self._deadlines[campaign_id] = None if seq is None else int(seq)
        return self._deadlines[campaign_id]

    async def begin(self, session: AsyncSession) -> None:
        # Caches live for one batch: a rolled-back batch must not leave cached state behind.
        self._campaigns.clear()
        self._deadlines.clear()
        self._counters = {}
        self._touched = set()
        self._settled = set()

    async def end(self, session: AsyncSession) -> None:
        """Write the batch's counters, then the results of the campaigns it touched.

        In a catch-up batch with more to follow (`more_follows`), results that only ballots
        changed are left to a later batch: the campaign is marked in scoring_stale_results in
        this same transaction, and the next batch without more to follow (the catch-up's last,
        or any live batch, of any instance) recomputes every marked campaign. A campaign
        defined or past its deadline in the batch is recomputed at once, so results are never
        frozen or published (decision 16) from stale rows (docs/architecture.md, decision 43).
        """
        await self._flush(session)
        todo = set(self._settled)
        if self.more_follows:
            deferred = sorted(self._touched - todo)
            if deferred:
                await session.execute(
                    text(
                        "INSERT INTO scoring_stale_results (campaign_id) "
                        "SELECT unnest(CAST(:ids AS text[])) ON CONFLICT DO NOTHING"
                    ),
                    {"ids": deferred},
                )
            if todo:
                await session.execute(
                    text(
                        "DELETE FROM scoring_stale_results "
                        "WHERE campaign_id = ANY(CAST(:ids AS text[]))"
                    ),
                    {"ids": sorted(todo)},
                )
        else:
            stale = await session.scalars(
                text("DELETE FROM scoring_stale_results RETURNING campaign_id")
            )
            todo |= self._touched | set(stale)
        for cid in sorted(todo):
            await self._recompute(session, cid)

    @on(CampaignDefined)
    async def campaign_defined(self, session: AsyncSession, e: Event, p: CampaignDefined) -> None:
        cid = e.envelope.campaign_id
        await self._flush(session)  # counters of an older version first
        await session.execute(
            text(
                "INSERT INTO scoring_campaigns (campaign_id, version, definition) "
                "VALUES (:c, :v, CAST(:d AS jsonb)) ON CONFLICT (campaign_id) DO UPDATE "
                "SET version = EXCLUDED.version, definition = EXCLUDED.definition "
                "WHERE scoring_campaigns.version <= EXCLUDED.version"
            ),
            {"c": cid, "v": p.campaign.version, "d": p.campaign.model_dump_json()},
        )
        self._campaigns.pop(cid, None)
        self._touched.add(cid)
        self._settled.add(cid)

    @on(DeadlineReached)
    async def deadline_reached(self, session: AsyncSession, e: Event, p: DeadlineReached) -> None:
        cid = e.envelope.campaign_id
        if await self._deadline(session, cid) is None:
            await session.execute(
                text("INSERT INTO scoring_deadlines (campaign_id, seq) VALUES (:c, :s)"),
                {"c": cid, "s": e.seq},
            )
            self._deadlines[cid] = e.seq
        self._touched.add(cid)
        self._settled.add(cid)

    @on(BallotSubmitted)
    async def ballot(self, session: AsyncSession, e: Event, p: BallotSubmitted) -> None:
        # A ballot decode_ballot left to decode(): counted by the same rules.
        await self._count(
            session, e, p.ballot_id, p.form_code, p.unit_code, [a.__dict__ for a in p.answers]
        )

    async def _count(
        self,
        session: AsyncSession,
        e: Event,
        ballot_id: str,
        form_code: str,
        unit_code: str | None,
        answers: Iterable[Mapping[str, str]],
    ) -> None:
        cid = e.envelope.campaign_id
        deadlines = self._deadlines
        deadline = deadlines[cid] if cid in deadlines else await self._deadline(session, cid)
        if deadline is not None:
            return  # sequenced after the deadline: not counted
        counter = self._counters.get(cid)
        if counter is None:
            campaign = await self._campaign(session, cid)
            if campaign is None:
                raise Rejected(e.seq, f"ballot for undefined campaign {cid}")
            counter = self._counters[cid] = BallotCounter(campaign)
        try:  # Tally.of_ballot's rules; a refused ballot counts nothing
            counter.add_fields(ballot_id, form_code, unit_code, answers)
        except ValueError as exc:
            raise Rejected(e.seq, str(exc)) from exc
        self._touched.add(cid)

    @on(ResultsPublished)
    async def results(self, session: AsyncSession, e: Event, p: ResultsPublished) -> None:
        await session.execute(
            text(
                "INSERT INTO scoring_published (campaign_id, digest, last_sequence, seq) "
                "VALUES (:c, :d, :l, :s) ON CONFLICT (campaign_id) DO NOTHING"
            ),
            {"c": e.envelope.campaign_id, "d": p.digest, "l": p.last_sequence, "s": e.seq},
        )

    @on(ResultsReleased)
    async def released(self, session: AsyncSession, e: Event, p: ResultsReleased) -> None:
        # Decided once on its own subject and checked against the frozen digest
        # before it was published (docs/architecture.md, decision 16).
        await session.execute(
            text(
                "INSERT INTO scoring_released "
                "(campaign_id, digest, released_by, released_on, seq) "
                "VALUES (:c, :d, :b, :o, :s) ON CONFLICT (campaign_id) DO NOTHING"
            ),
            {
                "c": e.envelope.campaign_id,
                "d": p.digest,
                "b": p.released_by,
                "o": p.released_on,
                "s": e.seq,
            },
        )

    async def _flush(self, session: AsyncSession) -> None:
        """Add the batch's counts to the stored counters: one statement per table."""
        for cid, counter in self._counters.items():
            tally = counter.tally()
            q_rows = [
                {"c": cid, "u": u, "f": f, "q": q, "a": a, "w": w, "d": d}
                for u, f, q, a, w, d in tally.question_rows()
            ]
            if q_rows:
                await session.execute(
                    text(
                        "INSERT INTO scoring_question_counts VALUES (:c, :u, :f, :q, :a, :w, :d) "
                        "ON CONFLICT (campaign_id, unit_code, form_code, question_id) DO UPDATE "
                        "SET answered_count = scoring_question_counts.answered_count "
                        "+ EXCLUDED.answered_count, "
                        "weight_sum = scoring_question_counts.weight_sum + EXCLUDED.weight_sum, "
                        "dont_know_count = scoring_question_counts.dont_know_count "
                        "+ EXCLUDED.dont_know_count"
                    ),
                    q_rows,
                )
            b_rows = [{"c": cid, "u": u, "f": f, "n": n} for u, f, n in tally.ballot_rows()]
            if b_rows:
                await session.execute(
                    text(
                        "INSERT INTO scoring_ballot_counts VALUES (:c, :u, :f, :n) "
                        "ON CONFLICT (campaign_id, unit_code, form_code) DO UPDATE "
                        "SET received = scoring_ballot_counts.received + EXCLUDED.received"
                    ),
                    b_rows,
                )
        self._counters.clear()

    async def _recompute(self, session: AsyncSession, cid: str) -> None:
        campaign = await self._campaign(session, cid)
        if campaign is None:
            return
        tally = await load_tally(session, cid)
        rows = result_rows(compute_results(campaign, tally))
        await session.execute(
            text("DELETE FROM scoring_results WHERE campaign_id = :c"), {"c": cid}
        )
        if rows:
            await session.execute(
                text(
                    "INSERT INTO scoring_results VALUES (:c, :u, :f, :k, :r, :q, :raw, :adj, :rank)"
                ),
                [
                    {
                        "c": cid,
                        "u": r.unit_code,
                        "f": r.form_code or "",
                        "k": r.unit_kind,
                        "r": r.received,
                        "q": r.quota,
                        "raw": r.raw,
                        "adj": r.adjusted,
                        "rank": r.rank,
                    }
                    for r in rows
                ],
            )


async def load_tally(session: AsyncSession, cid: str) -> Tally:
    q = await session.execute(
        text(
            "SELECT unit_code, form_code, question_id, answered_count, weight_sum, dont_know_count "
            "FROM scoring_question_counts WHERE campaign_id = :c"
        ),
        {"c": cid},
    )
    b = await session.execute(
        text(
            "SELECT unit_code, form_code, received FROM scoring_ballot_counts "
            "WHERE campaign_id = :c"
        ),
        {"c": cid},
    )
    return Tally.from_rows(q.all(), b.all())


async def load_rows(session: AsyncSession, cid: str) -> list[ResultRow]:
    res = await session.execute(
        text(
            "SELECT unit_code, unit_kind, form_code, received, quota, raw, adjusted, rank "
            "FROM scoring_results WHERE campaign_id = :c"
        ),
        {"c": cid},
    )
    rows = [
        ResultRow(
            unit_code=u,
            unit_kind=k,
            form_code=f or None,
            received=int(r),
            quota=None if q is None else int(q),
            raw=raw,
            adjusted=adj,
            rank=rank,
        )
        for u, k, f, r, q, raw, adj, rank in res.all()
    ]
    return sorted(rows, key=lambda r: (r.unit_code, r.form_code is None, r.form_code or ""))


CAMPAIGNS = CampaignTable("scoring_campaigns", id_column="campaign_id")


async def load_campaign(session: AsyncSession, cid: str) -> Campaign | None:
    return await campaigns.load_campaign(session, CAMPAIGNS, cid)
