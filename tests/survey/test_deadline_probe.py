"""DeadlineProbe: one lookup of the deadline subject serves many ballots, never too early a one."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import pytest
from nats.js.errors import NotFoundError

from services.survey.participation import DeadlineProbe

pytestmark = pytest.mark.unit


class Stream:
    """The deadline subject as the server sees it; a lookup reads it when the server gets it,
    and answers only when the test lets it go."""

    def __init__(self) -> None:
        self.deadline: int | None = None
        self.lookups = 0
        self.gates: list[asyncio.Event] = []
        self.fail: Exception | None = None
        self.sent = asyncio.Condition()

    async def get_last_msg(self, stream: str, subject: str) -> SimpleNamespace:
        self.lookups += 1
        seen = self.deadline  # read now, as the server would on receipt
        gate = asyncio.Event()
        async with self.sent:
            self.gates.append(gate)
            self.sent.notify_all()
        await gate.wait()
        if self.fail is not None:
            raise self.fail
        if seen is None:
            raise NotFoundError()
        return SimpleNamespace(seq=seen)

    async def out(self, n: int) -> None:
        """Until the n-th lookup has reached the server."""
        async with asyncio.timeout(5), self.sent:
            await self.sent.wait_for(lambda: len(self.gates) >= n)

    async def release(self, n: int) -> None:
        """Let the n-th lookup answer, once it is out."""
        await self.out(n)
        self.gates[n - 1].set()


async def lookup_out(campaign: str = "c", seq: int = 1) -> tuple[Stream, DeadlineProbe, Any]:
    """A probe over a fresh stream, and a first ballot whose lookup is out and unanswered."""
    stream = Stream()
    probe = DeadlineProbe(cast(Any, stream))  # the probe only calls get_last_msg
    first = asyncio.create_task(probe.counted(campaign, seq))
    await stream.out(1)
    return stream, probe, first


@pytest.mark.timeout(10)
async def test_ballots_acked_while_a_lookup_is_out_share_the_next_one() -> None:
    stream, probe, first = await lookup_out(seq=10)
    # The deadline is sequenced at 15 while the first lookup is out: ballots acked from now
    # on must not be answered by that lookup, which read the subject before.
    stream.deadline = 15
    later = [asyncio.create_task(probe.counted("c", seq)) for seq in (12, 14, 16, 20)]
    await stream.release(1)
    assert await first is True  # no deadline before 10 as its lookup saw the log
    await stream.release(2)
    assert [await t for t in later] == [True, True, False, False]
    assert stream.lookups == 2  # five ballots, two lookups


@pytest.mark.timeout(10)
async def test_a_failed_lookup_fails_its_waiters_and_the_next_one_starts_afresh() -> None:
    stream, probe, first = await lookup_out()
    stream.fail = TimeoutError("bus slow")
    second = asyncio.create_task(probe.counted("c", 2))
    await stream.release(1)
    with pytest.raises(TimeoutError):
        await first
    await stream.release(2)
    with pytest.raises(TimeoutError):
        await second
    stream.fail = None
    again = asyncio.create_task(probe.counted("c", 3))
    await stream.release(3)
    assert await again is True
    assert stream.lookups == 3


@pytest.mark.timeout(10)
async def test_a_caller_that_gives_up_does_not_cancel_the_lookup_others_wait_on() -> None:
    stream, probe, impatient = await lookup_out()
    patient = asyncio.create_task(probe.counted("c", 2))
    impatient.cancel()
    await stream.release(1)
    await stream.release(2)
    assert await patient is True
    with pytest.raises(asyncio.CancelledError):
        await impatient


@pytest.mark.timeout(10)
async def test_campaigns_are_looked_up_apart() -> None:
    stream, probe, a = await lookup_out("a")
    b = asyncio.create_task(probe.counted("b", 1))
    await stream.release(1)
    await stream.release(2)
    assert (await a, await b) == (True, True)
    assert stream.lookups == 2
