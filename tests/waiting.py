"""Waiting on a condition with a deadline: the only synchronisation tests use."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def eventually(
    check: Callable[[], object], timeout: float = 15.0, interval: float = 0.05
) -> object:
    """Wait for a condition with a deadline (no sleeps as synchronisation)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
