"""Survey's pure decisions, without servers: what is due, what is wrong with a ballot, progress."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts import subjects
from contracts.events import Answer, DeadlineReached, WaveOpened
from services.survey.ballot import problems
from services.survey.progress import progress_rows
from services.survey.scheduler import due_events
from tests.survey.test_service import AFTER, BEFORE, OPEN, full_answers, small_campaign

pytestmark = pytest.mark.unit

C = small_campaign("t-decisions")
WAVE = C.waves[0]
moments = st.datetimes(
    min_value=datetime(2023, 8, 1),
    max_value=datetime(2023, 11, 1),
    timezones=st.just(BEFORE.tzinfo),
)


def answers(unit: str, option: str = "yes") -> list[Answer]:
    return [Answer.model_validate(a) for a in full_answers(unit, option)]


def test_waves_and_the_deadline_fall_due_in_order() -> None:
    assert due_events(C, BEFORE, set(), False) == []
    at_open = due_events(C, WAVE.opens_at, set(), False)
    assert [s for s, _ in at_open] == [subjects.wave(C.id, "w1")]
    assert at_open[0][1] == WaveOpened(wave_id="w1", opens_at=WAVE.opens_at)
    assert due_events(C, OPEN, {"w1"}, False) == []
    late = due_events(C, AFTER, set(), False)  # down for weeks: the wave before the deadline
    assert [s for s, _ in late] == [subjects.wave(C.id, "w1"), subjects.deadline(C.id)]
    assert late[1][1] == DeadlineReached(deadline=C.deadline)
    assert due_events(C, AFTER, {"w1"}, True) == []
    assert due_events(C, C.deadline - timedelta(microseconds=1), {"w1"}, False) == []


@given(now=moments, later=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=60)))
def test_due_events_only_grow_with_time_and_once_written_are_not_due(
    now: datetime, later: timedelta
) -> None:
    due = {s for s, _ in due_events(C, now, set(), False)}
    assert due <= {s for s, _ in due_events(C, now + later, set(), False)}
    opened = {p.wave_id for _, p in due_events(C, now, set(), False) if isinstance(p, WaveOpened)}
    deadline_done = subjects.deadline(C.id) in due
    assert due_events(C, now, opened, deadline_done) == []
    assert (subjects.deadline(C.id) in due) == (now >= C.deadline)


def test_ballot_problems() -> None:
    assert problems(C, "02", "H-A", answers("H-A")) == []
    missing = problems(C, "02", "H-A", answers("H-A")[:1])
    assert [(p["unit_code"], p["question_id"]) for p in missing] == [("H-A", "Q2")]
    other_unit = [*answers("H-A"), Answer(unit_code="H-B", question_id="Q1", option_code="yes")]
    assert [p["unit_code"] for p in problems(C, "02", "H-A", other_unit)] == ["H-B"]
    bad_option = [Answer(unit_code="H-A", question_id="Q1", option_code="zz"), answers("H-A")[1]]
    assert [p["question_id"] for p in problems(C, "02", "H-A", bad_option)] == ["Q1"]
    both = answers("H-A") + answers("H-B")
    assert problems(C, "01", None, both) == []  # a form that rates many units: every one
    assert {p["unit_code"] for p in problems(C, "01", None, answers("H-A"))} == {"H-B"}


@given(option=st.sampled_from(["yes", "no", "dk"]), unit=st.sampled_from(["H-A", "H-B"]))
def test_every_complete_ballot_of_its_own_unit_has_no_problem(option: str, unit: str) -> None:
    assert problems(C, "02", unit, answers(unit, option)) == []


def test_progress_rows() -> None:
    counts = {("H-A", "02"): 2, ("H-A", "01"): 4}
    registered = {("H-A", "02"): 3, ("H-B", "02"): 1}
    rows = progress_rows(C, counts, registered)
    assert [(r["unit_code"], r["form_code"]) for r in rows] == [
        ("H-A", "01"),
        ("H-A", "02"),
        ("H-B", "01"),
        ("H-B", "02"),
    ]
    by = {(r["unit_code"], r["form_code"]): r for r in rows}
    assert by[("H-A", "02")] == {
        "unit_code": "H-A",
        "unit_name": "Huyện A",
        "form_code": "02",
        "received": 2,
        "quota": 3,
        "rate": 0.6667,
        "registered": 3,
    }
    assert by[("H-A", "01")]["registered"] is None  # many units: nobody registers per unit
    assert by[("H-B", "02")]["received"] == 0 and by[("H-B", "02")]["rate"] == 0
    only = progress_rows(C, counts, registered, only_unit="H-B")
    assert {r["unit_code"] for r in only} == {"H-B"}


@given(received=st.integers(min_value=0, max_value=10_000))
def test_progress_rate_is_received_over_quota(received: int) -> None:
    rows = progress_rows(C, {("H-B", "02"): received}, {}, only_unit="H-B")
    row = next(r for r in rows if r["form_code"] == "02")
    assert row["received"] == received and row["rate"] == round(received / 2, 4)
