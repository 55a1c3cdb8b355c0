"""Campaign time, one abstraction for every service (docs/architecture.md, decisions 8 and 28).

Waves, the deadline and reminders are decided against `Clock.now()`. Production reads the wall
clock; the accelerated demo and the tests move campaign time with `AcceleratedClock` (speed 0:
time stands still until `set`) without touching the wall clock. Pure decisions take the time
read from the clock as an argument, never the clock itself.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

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
    if settings.clock_epoch:
        start += timedelta(seconds=(time.time() - settings.clock_epoch) * settings.clock_speed)
    return AcceleratedClock(start, settings.clock_speed)
