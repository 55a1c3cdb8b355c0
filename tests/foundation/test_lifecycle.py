"""Two instances of every service start, run and stop cleanly in any order, in bounded time."""

from __future__ import annotations

import time
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
from fastapi import FastAPI

from parindex.settings import Settings
from parindex.web.service import create_app

SERVICES = ("identity", "survey", "scoring", "notify")
STOP_BOUND_S = 25.0  # shutdown_grace (10 s) + drain and pool bounds, with room for a slow machine


def _spec(name: str):  # type: ignore[no-untyped-def]  # each service module exposes SERVICE
    import importlib

    return importlib.import_module(f"services.{name}.service").SERVICE


class Instance:
    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.cm: AbstractAsyncContextManager[None] = app.router.lifespan_context(app)

    async def start(self) -> None:
        await self.cm.__aenter__()

    async def stop(self) -> float:
        t0 = time.monotonic()
        await self.cm.__aexit__(None, None, None)
        return time.monotonic() - t0


@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", SERVICES)
async def test_two_instances_start_and_stop_in_any_order(
    name: str, nc, nats_url: str, pg_url: str, tmp_path: Path
) -> None:
    settings = Settings(nats_url=nats_url, database_url=pg_url, state_dir=tmp_path)
    # Orders: first started stops first; last started stops first; stop one while a third starts.
    for order in ("fifo", "lifo", "overlap"):
        a = Instance(create_app(_spec(name), settings))
        b = Instance(create_app(_spec(name), settings))
        await a.start()
        await b.start()
        assert a.app.state.rt.nc.is_connected and b.app.state.rt.nc.is_connected
        if order == "fifo":
            times = [await a.stop(), await b.stop()]
        elif order == "lifo":
            times = [await b.stop(), await a.stop()]
        else:
            c = Instance(create_app(_spec(name), settings))
            t_a = await a.stop()
            await c.start()
            times = [t_a, await b.stop(), await c.stop()]
        assert max(times) < STOP_BOUND_S, (name, order, times)
        assert a.app.state.rt.nc.is_closed and b.app.state.rt.nc.is_closed
        assert all(t.done() for t in a.app.state.rt.tasks + b.app.state.rt.tasks), (name, order)


@pytest.mark.timeout(300)
async def test_scoring_stops_in_bounded_time_while_busy_publishing_results(
    nc, nats_url: str, pg_url: str, tmp_path: Path
) -> None:
    """The wedge of issue 12: two instances stopped while catching up and publishing results."""
    import random
    import uuid

    from tests.scoring.test_service import _publish_campaign_with_late_ballot

    settings = Settings(nats_url=nats_url, database_url=pg_url, state_dir=tmp_path)
    js = nc.jetstream()
    rng = random.Random(12)
    for _ in range(8):
        await _publish_campaign_with_late_ballot(js, f"t-{uuid.uuid4().hex[:12]}")
        a = Instance(create_app(_spec("scoring"), settings))
        b = Instance(create_app(_spec("scoring"), settings))
        await a.start()
        await b.start()
        first, second = (a, b) if rng.random() < 0.5 else (b, a)
        times = [await first.stop(), await second.stop()]
        assert max(times) < STOP_BOUND_S, times
