"""Keeping what `parindex up` started alive, and stopping all of it on SIGTERM or Ctrl-C.

docs/architecture.md, decision 20: a crashed child is restarted in place (same port, same data)
with backoff and the restart logged; a stop signal at any moment stops every child, in order.
"""

from __future__ import annotations

import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from parindex.runtime.up import Stack

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
# A child that stayed up this long is healthy again: its next crash restarts at once.
HEALTHY_AFTER_S = 60.0


class StopRequested(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so every `finally` on the way up stops what was started."""


def _raise_stop(signum: int, _frame: object) -> None:
    ignore_stop_signals()  # once: a second signal must not interrupt the stop half-way
    raise StopRequested(signal.Signals(signum).name)


def install_stop_signals() -> None:
    """From the first line of `up`: a signal during start-up or the demo stops the stack too."""
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)


def ignore_stop_signals() -> None:
    """While stopping: a second Ctrl-C must not interrupt the orderly stop half-way."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def log(state_dir: Path, message: str) -> None:
    """To stderr and <state-dir>/logs/supervisor.log, so a restart is never silent."""
    line = f"{datetime.now(UTC).isoformat(timespec='seconds')} parindex: {message}"
    logs = state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / "supervisor.log", "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    print(line, file=sys.stderr, flush=True)


class Backoff:
    """Per-child restart delay: doubles on each quick crash, resets after a healthy spell."""

    def __init__(self) -> None:
        self.delay: dict[str, float] = {}
        self.started: dict[str, float] = {}
        self.due: dict[str, float] = {}

    def schedule(self, name: str, now: float) -> float:
        if now - self.started.get(name, 0.0) > HEALTHY_AFTER_S:
            self.delay[name] = 0.0
        delay = self.delay.get(name, 0.0)
        self.delay[name] = min(max(delay * 2, BACKOFF_FIRST_S), BACKOFF_MAX_S)
        self.due[name] = now + delay
        return delay

    def ready(self, name: str, now: float) -> bool:
        return now >= self.due.get(name, 0.0)

    def restarted(self, name: str, now: float) -> None:
        self.started[name] = now
        self.due.pop(name, None)


def supervise(stack: Stack, poll_s: float = 0.2) -> int:
    """Reap and restart dead children until a stop signal; then stop everything."""
    install_stop_signals()
    backoff = Backoff()
    try:
        while True:
            now = time.monotonic()
            for name in stack.dead_children():
                if name not in backoff.due:
                    delay = backoff.schedule(name, now)
                    log(
                        stack.state_dir,
                        f"{name} exited ({stack.returncode_of(name)}); restarting in {delay:.1f}s",
                    )
                if not backoff.ready(name, now):
                    continue
                try:
                    stack.restart_child(name)
                    backoff.restarted(name, time.monotonic())
                    log(stack.state_dir, f"{name} restarted")
                except Exception as exc:  # noqa: BLE001 - retried with a longer delay
                    backoff.due.pop(name, None)
                    log(stack.state_dir, f"{name} did not restart: {exc}")
            time.sleep(poll_s)
    except KeyboardInterrupt:
        pass
    finally:
        ignore_stop_signals()
        log(stack.state_dir, "stopping…")
        stack.stop()
    return 0
