"""Stopping background tasks within a bound, whatever they are doing.

Cancelling a task once is not enough on Python 3.11: `asyncio.wait_for` swallows a cancellation
that arrives as its inner future completes (fixed in 3.12), and nats-py's request and fetch
paths are built on it. A task that lost its cancellation sleeps on and an unbounded
`gather()` waits for it forever; that wedged the scoring service's shutdown (a hang in the
two-instance test). So: cancel again until every task is done, and after the grace period log
what still runs and go on (docs/architecture.md, decision 14).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Iterable

log = logging.getLogger(__name__)


async def stop_tasks(
    tasks: Iterable[asyncio.Task], grace: float = 10.0, every: float = 0.25
) -> list[asyncio.Task]:
    """Cancel `tasks` repeatedly until all are done or `grace` seconds pass; return stragglers."""
    pending = {t for t in tasks if not t.done()}
    deadline = time.monotonic() + grace
    while pending:
        for task in pending:
            task.cancel()
        left = deadline - time.monotonic()
        if left <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(every, left))
    for task in pending:
        log.error("task %s did not stop within %.0fs; leaving it", task.get_name(), grace)
    return list(pending)


async def bounded(awaitable: Awaitable[object], seconds: float, what: str) -> None:
    """Await a clean-up step for at most `seconds`; a stuck step is logged, not waited on."""
    try:
        await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        log.error("%s did not finish within %.0fs; going on", what, seconds)
    except Exception as exc:  # clean-up must not stop the rest of the shutdown
        log.warning("%s failed: %s", what, exc)
