"""Who is asking, kept in memory between the projection's changes (docs/architecture.md, 49).

Every respondent request began with one PostgreSQL read (storage/queries.py: INTAKE). During
a deadline-day rush that read was about a seventh of survey's CPU and most of PostgreSQL's
(issue #18). The rows it reads change only when the projection applies an event on the
campaign's subjects or on the respondent's own subject. So this process keeps what it read,
tagged with the projection offset the read saw (`at`). It forgets a key when its own
ProjectionRunner is about to apply an event on that key's subject, before that batch commits.
That gives the rule:

- A read that saw offset `at` is kept only if no event on its key after `at` has been seen.
- A kept entry is used only while the runner is caught up with the log (`LIVE_S`).

With one survey process, the runner is the only writer of those tables, so the cache answers
exactly as the tables would. With several processes, another process's runner may apply an
event a batch before this one sees it. The projection tables lag the log in the same way.

A campaign's respondents are read in one statement at its first request, so a rush finds them
in memory. Subjects are compared whole, never parsed for ids. An event on a subject this module
does not know clears everything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from contracts import subjects
from parindex.db.reads import ReadPool
from services.survey.storage import queries

log = logging.getLogger(__name__)

LIVE_S = 2.0  # the runner read the log to its end this recently, or the cache is not asked
WARM_LIMIT = 300_000  # respondents of one campaign read ahead; more are read one by one
CHANGED_LIMIT = 200_000  # respondent subjects remembered one by one, then as one sequence
# Subject kinds (the token after the campaign) that change nothing the intake reads.
_NOT_INTAKE = frozenset({"ballot", "delivery", "results", "release", "account"})
_CAMPAIGN_WIDE = frozenset({"campaign", "wave", "deadline"})


@dataclass(frozen=True, slots=True)
class Intake:
    """INTAKE's answer: the campaign row's version, the registration (form_code None when not
    registered), the waves opened, whether the projection saw the deadline."""

    row_version: str
    unit_code: str | None
    form_code: str | None
    withdrawn: bool
    waves: frozenset[str]
    closed: bool


def intake_of(row: Mapping[str, Any]) -> Intake:
    """INTAKE's row (storage/queries.py) as an Intake."""
    return Intake(
        row["row_version"],
        row["unit_code"],
        row["form_code"],
        bool(row["withdrawn"]),
        frozenset(row["waves"] or ()),
        bool(row["closed"]),
    )


@dataclass(frozen=True, slots=True)
class _Campaign:
    row_version: str
    waves: frozenset[str]
    closed: bool
    at: int


@dataclass(frozen=True, slots=True)
class _Person:
    unit_code: str | None
    form_code: str | None
    withdrawn: bool
    at: int


class Runner(Protocol):
    """What the cache reads of the ProjectionRunner that feeds it."""

    applied_seq: int
    caught_up_at: float
    log_mismatch: bool


class IntakeCache:
    def __init__(
        self,
        reads: ReadPool,
        runner: Runner,
        warm_limit: int = WARM_LIMIT,
        changed_limit: int = CHANGED_LIMIT,
    ) -> None:
        self.reads = reads
        self.runner = runner
        self.warm_limit = warm_limit
        self.changed_limit = changed_limit
        self._campaigns: dict[str, _Campaign] = {}
        self._people: dict[str, _Person] = {}  # by the respondent's subject
        self._changed: dict[str, int] = {}  # respondent subject → last sequence seen on it
        self._campaign_changed = 0  # last sequence seen on any campaign-wide subject
        self._everything_changed = 0  # last sequence on a subject this module does not know
        self._generation = 0  # moves when everything is forgotten: reads begun before are not kept
        self._warmed: set[str] = set()
        self._warming: set[asyncio.Task[None]] = set()
        self._applied_high = 0
        self.hits = 0
        self.reads_made = 0

    # --- fed by the runner, before it commits a batch ------------------------------------
    def saw(self, events: Iterable[tuple[int, str]]) -> None:
        """(stream sequence, subject) of events the runner is about to apply."""
        for seq, subject in events:
            tokens = subject.split(".")
            kind = tokens[3] if len(tokens) > 3 and tokens[:2] == ["par", "evt"] else ""
            if kind in _NOT_INTAKE:
                continue
            if kind == "respondent" and len(tokens) == 5:
                self._changed[subject] = max(seq, self._changed.get(subject, 0))
                self._people.pop(subject, None)
                if len(self._changed) > self.changed_limit:
                    self._compact()
            elif kind == "respondent" and len(tokens) == 6 and tokens[5] == "reminder":
                continue
            elif kind in _CAMPAIGN_WIDE:
                self._campaign_changed = max(seq, self._campaign_changed)
                self._campaigns.clear()
            else:  # not a subject this module knows: nothing kept can be trusted
                self._forget_all(seq)

    def _compact(self) -> None:
        """Bound the memory of what changed: every respondent is then taken to have changed
        at the last sequence seen. What is kept stays (it was checked when kept); a read older
        than that sequence is answered and not kept, until the projection passes it."""
        self._everything_changed = max(self._everything_changed, *self._changed.values())
        self._changed.clear()

    def _forget_all(self, seq: int) -> None:
        self._generation += 1
        self._campaigns.clear()
        self._people.clear()
        self._warmed.clear()
        self._changed.clear()
        self._campaign_changed = max(seq, self._campaign_changed)
        self._everything_changed = max(seq, self._everything_changed)

    # --- asked by the ballot, the form and the draft -------------------------------------
    def trusted(self) -> bool:
        """The runner is live and caught up, and has not gone back (a rebuild)."""
        r = self.runner
        if r.log_mismatch or r.applied_seq < self._applied_high:
            # Rebuilding from sequence 1: what was kept, and the sequences seen, belong to
            # a log that is no longer there.
            self._forget_all(0)
            self._everything_changed = self._campaign_changed = 0
            self._applied_high = r.applied_seq
            return False
        self._applied_high = r.applied_seq
        return time.monotonic() - r.caught_up_at < LIVE_S

    async def read(self, campaign_id: str, respondent_id: str) -> Intake | None:
        """As queries.intake, from memory when it may be; None if the campaign is unknown."""
        key = subjects.respondent(campaign_id, respondent_id)
        if self.trusted():
            found = self._kept(campaign_id, key)
            if found is not None:
                self.hits += 1
                return found
            self._warm_soon(campaign_id)
        generation = self._generation
        row = await queries.intake(self.reads, campaign_id, respondent_id)
        self.reads_made += 1
        if row is None:
            return None
        found = intake_of(row)
        if generation == self._generation:
            at = int(row["applied"] or 0)
            self._keep_campaign(
                campaign_id, _Campaign(found.row_version, found.waves, found.closed, at)
            )
            self._keep_person(key, _Person(found.unit_code, found.form_code, found.withdrawn, at))
        return found

    def _kept(self, campaign_id: str, key: str) -> Intake | None:
        campaign = self._campaigns.get(campaign_id)
        person = self._people.get(key)
        if campaign is None or person is None:
            return None
        return _joined(campaign, person)

    def _keep_campaign(self, campaign_id: str, c: _Campaign) -> None:
        if c.at >= max(self._campaign_changed, self._everything_changed):
            self._campaigns[campaign_id] = c

    def _keep_person(self, key: str, p: _Person) -> None:
        if p.at >= max(self._changed.get(key, 0), self._everything_changed):
            self._people[key] = p

    def _warm_soon(self, campaign_id: str) -> None:
        """Read the campaign's respondents in one statement, once, in the background."""
        if campaign_id in self._warmed:
            return
        self._warmed.add(campaign_id)
        task = asyncio.get_running_loop().create_task(self._warm(campaign_id))
        self._warming.add(task)
        task.add_done_callback(self._warming.discard)

    async def _warm(self, campaign_id: str) -> None:
        generation = self._generation
        try:
            rows = await queries.respondents_intake(self.reads, campaign_id, self.warm_limit)
        except Exception as exc:  # the requests read one by one meanwhile; tried again later
            log.warning("reading campaign %s's respondents ahead failed: %s", campaign_id, exc)
            self._warmed.discard(campaign_id)
            return
        if generation != self._generation:
            return  # everything was forgotten meanwhile; the next miss reads again
        for r in rows:
            self._keep_person(
                subjects.respondent(campaign_id, r["respondent_id"]),
                _Person(
                    r["unit_code"], r["form_code"], bool(r["withdrawn"]), int(r["applied"] or 0)
                ),
            )


def _joined(c: _Campaign, p: _Person) -> Intake:
    return Intake(
        c.row_version,
        p.unit_code,
        p.form_code,
        p.withdrawn,
        c.waves,
        c.closed,
    )
