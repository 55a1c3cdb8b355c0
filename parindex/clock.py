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
    """Campaign time standing at `start` until a file names the wall time it began to run.

    The demo's services start before the campaign and its lists are loaded, which takes tens
    of seconds on two cores: days of an accelerated campaign. They all read one epoch file,
    written once (atomically) when the demo is ready, so they agree on campaign time and no
    wave opens before its people are registered (docs/architecture.md, decision 40).
    """

    def __init__(self, start: datetime, speed: float, epoch_file: Path) -> None:
        self.start, self.speed, self.epoch_file = start, speed, epoch_file
        self.epoch: float | None = None

    def now(self) -> datetime:
        if self.epoch is None:
            try:
                self.epoch = float(self.epoch_file.read_text().strip())
            except (OSError, ValueError):
                return self.start
        wall = max(0.0, time.time() - self.epoch)
        return self.start + timedelta(seconds=wall * self.speed)


def write_epoch(path: Path, epoch: float) -> None:
    """Start every StartedLaterClock reading `path` (atomic: a reader never sees half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{epoch:.3f}\n")
    os.replace(tmp, path)


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
