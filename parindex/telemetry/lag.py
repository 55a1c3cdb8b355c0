"""Consumer lag: how far each projection is behind the end of the event stream.

`lag_updater` runs beside a service's projection runners and, every `interval` seconds, sets
parindex_stream_last_sequence and parindex_consumer_lag{handler} = last_seq - applied_seq.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Protocol

from nats.js import JetStreamContext

from contracts import subjects
from parindex.telemetry import metrics

log = logging.getLogger(__name__)


class _Projection(Protocol):
    @property
    def name(self) -> str: ...


class _Runner(Protocol):
    # Read-only members, so that a runner holding a richer projection still matches.
    @property
    def projection(self) -> _Projection: ...

    @property
    def applied_seq(self) -> int: ...


async def update_lag(js: JetStreamContext, runners: Iterable[_Runner]) -> int:
    """One measurement; returns the stream's last sequence."""
    info = await js.stream_info(subjects.EVENTS_STREAM)
    last = int(info.state.last_seq)
    metrics.stream_last_seq.set(last)
    for runner in runners:
        metrics.consumer_lag.labels(runner.projection.name).set(max(0, last - runner.applied_seq))
    return last


async def lag_updater(
    js: JetStreamContext, runners: Iterable[_Runner], interval: float = 5.0
) -> None:
    """Measure every `interval` seconds until cancelled; a failed measurement is retried."""
    runners = list(runners)
    while True:
        try:
            await update_lag(js, runners)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # NATS down or restarting: keep the last values, try again
            log.debug("consumer lag not measured: %s", exc)
        await asyncio.sleep(interval)
