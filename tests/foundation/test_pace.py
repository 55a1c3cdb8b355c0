"""The demo's pace file: campaign time waits for it, follows it, never goes back (decision 40)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from parindex.clock import StartedLaterClock, clock_from_settings, write_pace
from parindex.settings import Settings

pytestmark = pytest.mark.unit
START = datetime(2023, 9, 20, tzinfo=UTC)


def _fresh(clock: StartedLaterClock) -> None:
    clock._next = 0.0  # re-read now, not after RECHECK_S


def test_stands_still_until_the_file_then_runs_at_its_speed(tmp_path: Path) -> None:
    pace = tmp_path / "pace"
    clock = StartedLaterClock(START, 1000.0, pace)
    assert clock.now() == START
    wall = write_pace(pace, START, 3600.0, wall=time.time() - 2)  # started 2 s ago, 1 h/s
    _fresh(clock)
    now = clock.now()
    # the file keeps wall time to the millisecond: 3.6 s of campaign time at 3,600×; above,
    # a second of wall time for a busy machine (the suite runs in two processes)
    assert START + timedelta(hours=2) - timedelta(seconds=3.6) <= now < START + timedelta(hours=3)
    # slowed down from here: continuous, and a later anchor never moves time backwards
    at = now + timedelta(minutes=1)
    write_pace(pace, at, 60.0, wall=wall + 2.5)
    os.utime(pace, ns=(time.time_ns(), time.time_ns() + 1))  # a new stamp even on coarse clocks
    _fresh(clock)
    later = clock.now()
    assert later >= now and later < at + timedelta(hours=1)
    write_pace(pace, START, 1.0)  # an anchor in the past: the process keeps its time
    os.utime(pace, ns=(time.time_ns(), time.time_ns() + 2))
    _fresh(clock)
    assert clock.now() >= later


def test_settings_choose_the_pace_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARINDEX_CLOCK_START", START.isoformat())
    monkeypatch.setenv("PARINDEX_CLOCK_SPEED", "100")
    monkeypatch.setenv("PARINDEX_CLOCK_EPOCH_FILE", str(tmp_path / "pace"))
    clock = clock_from_settings(Settings())
    assert isinstance(clock, StartedLaterClock) and clock.now() == START
    (tmp_path / "pace").write_text("garbage")
    _fresh(clock)
    assert clock.now() == START
