"""Typed one-method-per-event dispatch (parindex/bus/projection.py, Dispatching), server-free."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.events import CampaignClosed, DeadlineReached, WaveOpened, make
from parindex.bus.projection import Dispatching, Event, on

pytestmark = pytest.mark.unit
AT = datetime(2023, 10, 6, tzinfo=UTC)


def event(seq: int, payload: Any) -> Event:
    return Event(seq, "par.evt.t-x.any", make(payload, campaign_id="t-x", producer="t"), payload)


class Recorder(Dispatching):
    name = "recorder"

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def reset(self, session: Any) -> None:
        self.seen.clear()

    async def begin(self, session: Any) -> None:
        self.seen.append("begin")

    async def end(self, session: Any) -> None:
        self.seen.append("end")

    @on(CampaignClosed)
    async def closed(self, s: Any, e: Event, p: CampaignClosed) -> None:
        self.seen.append(f"{e.seq} closed: {p.reason}")

    @on(DeadlineReached)
    async def deadline(self, s: Any, e: Event, p: DeadlineReached) -> None:
        self.seen.append(f"{e.seq} deadline")


def test_each_event_goes_to_its_method_in_order_and_others_are_skipped() -> None:
    r = Recorder()
    batch = [
        event(1, DeadlineReached(deadline=AT)),
        event(2, WaveOpened(wave_id="w1", opens_at=AT)),  # no handler: skipped
        event(3, CampaignClosed(reason="why")),
    ]
    asyncio.run(r.apply(None, batch))  # type: ignore[arg-type]  # no database: handlers ignore it
    assert r.seen == ["begin", "1 deadline", "3 closed: why", "end"]
    assert Recorder.reads() == {"CampaignClosed", "DeadlineReached"}


def test_a_handler_annotated_for_another_event_is_refused() -> None:
    with pytest.raises(TypeError, match="handles DeadlineReached"):

        class Wrong(Dispatching):
            name = "wrong"

            @on(DeadlineReached)
            async def deadline(self, s: Any, e: Event, p: CampaignClosed) -> None:
                pass
