"""Which reminder is due: notify's pure decision, without servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notify.reminders import due_reminder
from tests.notify.test_service import small_campaign

pytestmark = pytest.mark.unit

DEADLINE = datetime(2023, 10, 6, 16, 59, 59, tzinfo=UTC)
C = small_campaign("t-reminders", DEADLINE).model_copy(update={"reminder_offsets_days": [7, 3, 1]})


def days_before(d: float) -> datetime:
    return DEADLINE - timedelta(days=d)


def test_the_nearest_due_reminder_is_sent_and_earlier_ones_skipped() -> None:
    assert due_reminder(C, days_before(8), set()) == (None, [])
    assert due_reminder(C, days_before(7), set()) == (7, [])
    assert due_reminder(C, days_before(5), {7}) == (None, [])
    assert due_reminder(C, days_before(2.5), {7}) == (3, [])
    # Down from d-8 to d-0.5: one reminder (d-1), the others recorded as skipped.
    assert due_reminder(C, days_before(0.5), set()) == (1, [3, 7])
    assert due_reminder(C, days_before(0.5), {1}) == (None, [3, 7])  # a nearer one went out
    assert due_reminder(C, DEADLINE, set()) == (None, [])  # never at or after the deadline


offsets = st.sets(st.integers(min_value=1, max_value=30), min_size=1, max_size=5)


@given(
    offs=offsets,
    done=st.sets(st.integers(min_value=1, max_value=30), max_size=5),
    before=st.timedeltas(min_value=timedelta(days=-3), max_value=timedelta(days=40)),
)
def test_at_most_one_reminder_never_twice_never_late(
    offs: set[int], done: set[int], before: timedelta
) -> None:
    campaign = C.model_copy(update={"reminder_offsets_days": sorted(offs)})
    now = DEADLINE - before
    send, skip = due_reminder(campaign, now, done)
    if now >= DEADLINE:
        assert (send, skip) == (None, [])
        return
    decided = [o for o in [send, *skip] if o is not None]
    assert not set(decided) & done and set(decided) <= offs
    assert all(now >= DEADLINE - timedelta(days=o) for o in decided)
    if send is not None:
        assert send == min(decided) and all(d > send for d in done)
    assert due_reminder(campaign, now, done | set(decided)) == (None, [])  # decided once
