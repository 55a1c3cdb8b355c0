"""Campaign time, one abstraction for every service (docs/architecture.md, decisions 8 and 28).

Waves, the deadline and reminders are decided against `Clock.now()`. Production reads the wall
clock; the accelerated demo and the tests move campaign time with `AcceleratedClock` (speed 0:
time stands still until `set`) without touching the wall clock. Pure decisions take the time
read from the clock as an argument, never the clock itself.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from parindex.settings import Settings


class Clock:
    """Wall-clock time, UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class AcceleratedClock(Clock):
    """Campaign time = start + speed × wall seconds since `set`; `set` jumps (tests, demo)."""

    def __init__(self, start: datetime, speed: float = 1.0) -> None:
        self.speed = speed
        self.set(start)

    def set(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("clock time needs a UTC offset")
        self._start = at.astimezone(UTC)
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=(time.monotonic() - self._t0) * self.speed)


class StartedLaterClock(Clock):
    """Campaign time standing at `start` until a file says when and how fast it runs.

    The demo's services start before the campaign and its lists are loaded, which takes tens
    of seconds on two cores: days of an accelerated campaign. They all read one pace file,
    written (atomically) when the demo is ready and again when it changes the pace, so they
    agree on campaign time; no wave opens before its people are registered, and campaign time
    slows while the letters of a wave are still going out (docs/architecture.md, decision 40).
    The file holds `wall at speed`: at unix time `wall` campaign time was `at` (ISO 8601) and
    it runs `speed` × from there. Campaign time never goes back within a process.
    """

    RECHECK_S = 0.25

    def __init__(self, start: datetime, speed: float, pace_file: Path) -> None:
        self.start, self.speed, self.pace_file = start, speed, pace_file
        self.anchor: tuple[float, datetime, float] | None = None
        self._seen: int | None = None
        self._next = 0.0
        self._last = start

    def _reread(self) -> None:
        self._next = time.monotonic() + self.RECHECK_S
        try:
            stamp = self.pace_file.stat().st_mtime_ns
            if stamp == self._seen:
                return
            wall, at, speed = self.pace_file.read_text().split()
            self.anchor = (float(wall), datetime.fromisoformat(at), float(speed))
            self._seen = stamp
        except (OSError, ValueError):
            return  # not written yet (or half a line): keep what was read

    def now(self) -> datetime:
        if time.monotonic() >= self._next:
            self._reread()
        if self.anchor is None:
            return self.start
        wall, at, speed = self.anchor
        now = at + timedelta(seconds=max(0.0, time.time() - wall) * speed)
        self._last = max(self._last, now)
        return self._last


def write_pace(path: Path, at: datetime, speed: float, wall: float | None = None) -> float:
    """Campaign time is `at` now (or at unix time `wall`) and runs `speed`× from there, for
    every StartedLaterClock reading `path`. Atomic: a reader never sees half a line."""
    wall = time.time() if wall is None else wall
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{wall:.3f} {at.isoformat()} {speed:.3f}\n")
    os.replace(tmp, path)
    return wall


def clock_from_settings(settings: Settings) -> Clock:
    """Real UTC, or clock_start advanced clock_speed× (demo, tests).

    With clock_epoch (the wall time at which the clock read clock_start) every process of one
    `parindex up` agrees on campaign time, whenever it started.
    """
    if not settings.clock_start and settings.clock_speed == 1:
        return Clock()
    start = datetime.fromisoformat(settings.clock_start) if settings.clock_start else None
    start = start or datetime.now(UTC)
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    if settings.clock_epoch_file:
        return StartedLaterClock(start, settings.clock_speed, Path(settings.clock_epoch_file))
    if settings.clock_epoch:
        start += timedelta(seconds=(time.time() - settings.clock_epoch) * settings.clock_speed)
    return AcceleratedClock(start, settings.clock_speed)
