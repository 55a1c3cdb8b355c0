"""Who is asking, from memory: never older than the projection's rows (decision 49).

services/survey/intake.py keeps each INTAKE read, tagged with the projection offset the read
saw, and forgets a key when the ProjectionRunner is about to apply an event on its subject.
The unit tests drive it with a stand-in runner and read pool. The service tests hold the promise
on real NATS and PostgreSQL: once the projection's table says a person is withdrawn, their
ballot is refused, even though their registration was just answered from memory.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import text

from contracts import subjects
from contracts.events import RespondentUpdated, RespondentWithdrawn, decode, make
from parindex.bus.publish import publish_event
from services.survey.intake import LIVE_S, IntakeCache
from services.survey.secrecy import pseudonym
from tests.survey.test_service import (
    KEY,
    Survey,
    full_answers,
    respondent,
    setup_open_campaign,
)
from tests.waiting import eventually

C = "c1"


class FakeRunner:
    def __init__(self) -> None:
        self.applied_seq = 10
        self.caught_up_at = time.monotonic()
        self.log_mismatch = False


class FakeReads:
    """The projection's rows as INTAKE would read them, at offset `applied`."""

    def __init__(self) -> None:
        self.applied = 10
        self.people: dict[str, dict[str, Any]] = {
            "an": {"unit_code": "H-A", "form_code": "02", "withdrawn": False}
        }
        self.waves = ["w1"]
        self.calls: list[str] = []
        self.hold: asyncio.Event | None = None  # when set, a read waits for it
        self.entered = asyncio.Event()  # a read has taken its snapshot

    async def fetchrow(self, sql: str, campaign_id: str, rid: str) -> dict[str, Any] | None:
        self.calls.append(rid)
        applied = self.applied  # the statement's snapshot is taken when it starts
        person = dict(self.people.get(rid) or {"unit_code": None, "form_code": None})
        self.entered.set()
        if self.hold is not None:
            await self.hold.wait()
        return {
            "row_version": "7",
            "withdrawn": False,
            **person,
            "waves": list(self.waves),
            "closed": False,
            "applied": applied,
        }

    async def fetch(self, sql: str, campaign_id: str, limit: int) -> list[dict[str, Any]]:
        self.calls.append("*")
        return [
            {"respondent_id": r, "withdrawn": False, **p, "applied": self.applied}
            for r, p in self.people.items()
        ]


async def _kept_once_the_projection_passes(
    cache: IntakeCache, reads: FakeReads, rid: str, seq: int
) -> None:
    """Reads while the projection is older than `seq` are answered and not kept; once it has
    passed `seq`, a read is kept."""
    before = reads.calls.count(rid)
    for _ in range(2):
        await cache.read(C, rid)
    assert reads.calls.count(rid) == before + 2
    reads.applied = seq
    for _ in range(2):
        await cache.read(C, rid)
    assert reads.calls.count(rid) == before + 3


def _cache() -> tuple[IntakeCache, FakeRunner, FakeReads]:
    runner, reads = FakeRunner(), FakeReads()
    return IntakeCache(reads, runner), runner, reads  # type: ignore[arg-type]  # stand-ins with the same methods


@pytest.mark.unit
async def test_a_second_read_comes_from_memory() -> None:
    cache, _, reads = _cache()
    first = await cache.read(C, "an")
    second = await cache.read(C, "an")
    assert first == second and first is not None and first.form_code == "02"
    assert reads.calls.count("an") == 1 and cache.hits == 1


@pytest.mark.unit
async def test_an_event_on_the_respondent_subject_is_read_again() -> None:
    cache, _, reads = _cache()
    await cache.read(C, "an")
    cache.saw([(11, subjects.respondent(C, "an"))])
    reads.people["an"]["withdrawn"] = True
    reads.applied = 11
    again = await cache.read(C, "an")
    assert again is not None and again.withdrawn and reads.calls.count("an") == 2


@pytest.mark.unit
async def test_a_read_older_than_an_event_seen_meanwhile_is_not_kept() -> None:
    """The runner saw the withdrawal while the read was out, before its batch committed: the
    read's rows are older than that event and must not be answered again from memory."""
    cache, _, reads = _cache()
    reads.hold = asyncio.Event()
    reading = asyncio.create_task(cache.read(C, "an"))
    await reads.entered.wait()  # the read has taken its snapshot at offset 10
    cache.saw([(11, subjects.respondent(C, "an"))])
    reads.hold.set()
    assert (await reading) is not None
    reads.hold = None
    await cache.read(C, "an")
    assert reads.calls.count("an") == 2  # not from memory


@pytest.mark.unit
@pytest.mark.parametrize(
    ("subject", "read_again"),
    [
        (subjects.wave(C, "w2"), True),
        (subjects.deadline(C), True),
        (subjects.campaign(C), True),
        (subjects.respondent(C, "binh"), False),  # another person's subject
        (subjects.ballot(C, "p"), False),
        (subjects.delivery(C, "an"), False),
        (subjects.respondent_reminder(C, "an"), False),
        (subjects.results(C), False),
    ],
)
async def test_which_events_make_the_next_request_read_again(
    subject: str, read_again: bool
) -> None:
    cache, _, reads = _cache()
    await cache.read(C, "an")
    cache.saw([(11, subject)])
    reads.applied = 11
    await cache.read(C, "an")
    assert reads.calls.count("an") == (2 if read_again else 1)


@pytest.mark.unit
async def test_a_subject_it_does_not_know_forgets_everything() -> None:
    cache, _, reads = _cache()
    await cache.read(C, "an")
    cache.saw([(11, f"par.evt.{C}.something_new.x")])
    await _kept_once_the_projection_passes(cache, reads, "an", 11)


@pytest.mark.unit
async def test_the_memory_of_changes_is_bounded_and_stays_safe() -> None:
    cache, _, reads = _cache()
    cache.changed_limit = 3
    await cache.read(C, "an")
    cache.saw([(10 + i, subjects.respondent(C, f"p{i}")) for i in range(1, 5)])
    assert len(cache._changed) <= 3
    await cache.read(C, "an")  # kept before the changes, not among them: still from memory
    assert reads.calls.count("an") == 1
    reads.people["p1"] = {"unit_code": "H-B", "form_code": "02", "withdrawn": False}
    await _kept_once_the_projection_passes(cache, reads, "p1", 14)


@pytest.mark.unit
async def test_not_used_while_the_runner_is_behind_or_rebuilding() -> None:
    cache, runner, reads = _cache()
    await cache.read(C, "an")
    runner.caught_up_at = time.monotonic() - LIVE_S - 1
    await cache.read(C, "an")
    assert reads.calls.count("an") == 2
    runner.caught_up_at = time.monotonic()
    runner.applied_seq = 0  # a rebuild from sequence 1: what was kept is forgotten
    reads.applied = 0
    await cache.read(C, "an")
    assert reads.calls.count("an") == 3
    runner.applied_seq = 1  # the rebuild reads on; kept again while it tells what it applies
    await cache.read(C, "an")
    assert reads.calls.count("an") == 3


@pytest.mark.unit
async def test_the_campaign_s_people_are_read_ahead_once() -> None:
    cache, _, reads = _cache()
    reads.people["binh"] = {"unit_code": "H-B", "form_code": "01", "withdrawn": False}
    await cache.read(C, "an")  # not yet kept: read, and the campaign's people read ahead
    await eventually(lambda: reads.calls.count("*") == 1)
    for _ in range(3):
        found = await cache.read(C, "binh")
        assert found is not None and found.unit_code == "H-B"
    assert reads.calls == ["an", "*"]


# --- the service, on real NATS and PostgreSQL --------------------------------------------
async def _projection_says(survey: Survey, campaign_id: str, rid: str, column: str) -> Any:
    async with survey.rt.sessions() as s:
        return await s.scalar(
            text(
                f"SELECT {column} FROM survey_respondents "  # noqa: S608 - a fixed column name
                "WHERE campaign = :c AND respondent_id = :r"
            ),
            {"c": campaign_id, "r": rid},
        )


async def test_a_withdrawal_refuses_the_ballot_once_the_projection_has_it(
    survey: Survey, nc, campaign_id: str
) -> None:
    await setup_open_campaign(survey, nc, campaign_id, [("an", "H-A", "02"), ("binh", "H-A", "02")])
    binh = survey.as_(respondent(campaign_id, "binh"))
    intake = survey.rt.extras["intake"]
    for _ in range(2):
        assert (await survey.client.get("/api/form", headers=binh)).status_code == 200
    hits = intake.hits
    assert (await survey.client.get("/api/form", headers=binh)).status_code == 200
    assert intake.hits == hits + 1  # binh is answered from memory now

    await publish_event(
        nc.jetstream(),
        subjects.respondent(campaign_id, "binh"),
        make(RespondentWithdrawn(respondent_id="binh"), campaign_id=campaign_id, producer="t"),
    )
    await eventually(lambda: _projection_says(survey, campaign_id, "binh", "withdrawn"))
    r = await survey.client.post(
        "/api/ballots", json={"answers": full_answers("H-A")}, headers=binh
    )
    assert r.status_code == 403, r.text
    assert r.json()["detail"]["error"] == "not_a_respondent"


async def test_a_unit_change_reaches_the_next_ballot(survey: Survey, nc, campaign_id: str) -> None:
    await setup_open_campaign(survey, nc, campaign_id, [("an", "H-A", "02")])
    an = survey.as_(respondent(campaign_id, "an"))
    for _ in range(2):
        assert (await survey.client.get("/api/form", headers=an)).status_code == 200
    await publish_event(
        nc.jetstream(),
        subjects.respondent(campaign_id, "an"),
        make(
            RespondentUpdated(respondent_id="an", unit_code="H-B"),
            campaign_id=campaign_id,
            producer="t",
        ),
    )
    await eventually(lambda: _projection_says(survey, campaign_id, "an", "unit_code = 'H-B'"))
    r = await survey.client.post("/api/ballots", json={"answers": full_answers("H-B")}, headers=an)
    assert r.status_code == 201, r.text
    msg = await nc.jetstream().get_last_msg(
        subjects.EVENTS_STREAM, subjects.ballot(campaign_id, pseudonym(KEY, campaign_id, "an"))
    )
    _, ballot = decode(msg.data)
    assert ballot.unit_code == "H-B"
