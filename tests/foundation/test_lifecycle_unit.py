"""Bounded shutdown without servers: a task that loses a cancellation is still stopped."""

from __future__ import annotations

import asyncio
import time

import pytest

from parindex.lifecycle import bounded, stop_tasks

pytestmark = pytest.mark.unit


async def _swallows_first_cancel(started: asyncio.Event) -> None:
    """What Python 3.11's wait_for does when a cancel meets a completing future."""
    started.set()
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        pass  # the cancellation is lost here, as in the scoring shutdown hang
    await asyncio.Event().wait()  # and the task carries on until cancelled again


async def test_a_task_that_swallows_a_cancel_is_cancelled_again() -> None:
    started = asyncio.Event()
    task = asyncio.create_task(_swallows_first_cancel(started))
    await started.wait()
    t0 = time.monotonic()
    left = await stop_tasks([task], grace=5, every=0.05)
    assert left == [] and task.cancelled()
    assert time.monotonic() - t0 < 2


async def test_a_task_that_never_stops_is_left_behind_after_the_grace() -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    t0 = time.monotonic()
    left = await stop_tasks([task], grace=0.3, every=0.05)
    elapsed = time.monotonic() - t0
    assert left == [task] and 0.25 <= elapsed < 2
    release.set()
    task.cancel()
    await asyncio.wait([task], timeout=2)
    assert task.done()


async def test_bounded_gives_up_on_a_stuck_step() -> None:
    t0 = time.monotonic()
    await bounded(asyncio.sleep(3600), 0.2, "stuck step")
    await bounded(asyncio.sleep(0), 1, "quick step")
    assert time.monotonic() - t0 < 1.5
