"""The shape every service shares: NATS + its own database + HTTP edge + background consumers.

A service module provides `SERVICE = ServiceSpec(...)`; this builds its FastAPI app, whose
lifespan connects, provisions the streams, migrates the database, starts the consumers and
stops them cleanly. /healthz, /readyz and /metrics come for free.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from nats.aio.client import Client
from nats.js import JetStreamContext
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from parindex.bus.campaign_watch import CampaignWatch
from parindex.bus.connection import connect, wait_for_streams
from parindex.bus.projection import ProjectionRunner
from parindex.db.engine import prepare, sessionmaker
from parindex.lifecycle import bounded, stop_tasks
from parindex.settings import Settings, get_settings
from parindex.telemetry.lag import lag_updater
from parindex.telemetry.tracing import setup_tracing
from parindex.web import database_down
from parindex.web.edge import Edge
from parindex.web.measure import Measure
from parindex.web.revocation import Revocations

if TYPE_CHECKING:  # fast_write reads the session through deps, which needs Runtime from here
    from parindex.web.fast_write import FastJsonWrite

log = logging.getLogger(__name__)
# After a start, staff requests wait this long in all for the revocation watch (decision 42).
STAFF_GRACE_S = 20.0


@dataclass
class Runtime:
    """What a running service holds; handed to its start hook and stored on app.state.rt."""

    name: str
    settings: Settings
    nc: Client
    js: JetStreamContext
    engine: AsyncEngine
    sessions: async_sessionmaker
    tasks: list[asyncio.Task] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    stopping: list[Callable[[], Awaitable[None] | None]] = field(default_factory=list)
    revocations: Revocations = field(default_factory=Revocations)

    def spawn(self, coro: Awaitable[None], name: str) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        task.set_name(f"{self.name}:{name}")
        self.tasks.append(task)
        return task


@dataclass
class ServiceSpec:
    name: str
    versions_dir: Path
    routers: list[APIRouter] = field(default_factory=list)
    start: Callable[[Runtime], Awaitable[None]] | None = None
    title: str = ""
    static_dir: Path | None = None
    # Hot JSON writes answered before FastAPI's routing when ordinary (decision 46).
    fast_writes: list[FastJsonWrite[Any]] = field(default_factory=list)


def create_app(spec: ServiceSpec, settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        setup_tracing(f"parindex-{spec.name}")
        nc = await connect(settings, spec.name)
        js = nc.jetstream()
        await wait_for_streams(js)
        engine = await prepare(settings.service_database_url(spec.name), spec.versions_dir)
        rt = Runtime(spec.name, settings, nc, js, engine, sessionmaker(engine))
        app.state.rt = rt
        follow_stop = asyncio.Event()
        rt.stopping.append(follow_stop.set)
        rt.revocations.patience_until = time.monotonic() + STAFF_GRACE_S
        rt.spawn(rt.revocations.run(nc, follow_stop), "revocations")
        if spec.start is not None:
            await spec.start(rt)
        # The stage of every campaign, for the staff bar (docs/architecture.md, decision 39).
        app.state.campaign_watch = CampaignWatch()
        rt.spawn(app.state.campaign_watch.run(nc, follow_stop), "campaign-watch")
        # Staff tokens are refused until the disabled accounts are known (decision 42).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(rt.revocations.caught_up.wait(), 10)
        runners = [v for v in rt.extras.values() if isinstance(v, ProjectionRunner)]
        if runners:  # parindex_consumer_lag{handler} on /metrics
            rt.spawn(lag_updater(rt.js, runners), "lag")
        log.info("%s started", spec.name)
        try:
            yield
        finally:
            # Every step is bounded: a stopping service finishes whatever its tasks are doing
            # (docs/architecture.md, decision 14).
            for hook in rt.stopping:
                res = hook()
                if asyncio.iscoroutine(res):
                    await bounded(res, 5, f"{spec.name} stop hook")
            await stop_tasks(rt.tasks, grace=settings.shutdown_grace)
            await bounded(nc.drain(), 5, f"{spec.name} NATS drain")
            if not nc.is_closed:
                await bounded(nc.close(), 2, f"{spec.name} NATS close")
            await bounded(engine.dispose(), 5, f"{spec.name} database pool")

    app = FastAPI(
        title=spec.title or f"parindex {spec.name}", lifespan=lifespan, **_no_native_telemetry()
    )
    app.state.spec = spec
    app.state.settings = settings

    # One pure ASGI middleware for the span and the latency (docs/architecture.md, decision 44).
    app.add_middleware(Measure, service=spec.name)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": spec.name}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        rt: Runtime | None = getattr(request.app.state, "rt", None)
        checks = {"nats": False, "database": False}
        if rt is not None:
            checks["nats"] = rt.nc.is_connected
            try:
                async with rt.engine.connect() as conn:
                    await asyncio.wait_for(conn.execute(text("SELECT 1")), 2)
                checks["database"] = True
            except Exception:
                checks["database"] = False
            # A projection rebuilding after the log moved back (docs/architecture.md, decision 24).
            checks["projections"] = not any(
                v.log_mismatch for v in rt.extras.values() if isinstance(v, ProjectionRunner)
            )
        ok = all(checks.values())
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)

    from fastapi import Depends

    from parindex.web import csrf, errors
    from parindex.web.scope import campaign_scope

    errors.install(app)  # pages or JSON for every refusal (docs/architecture.md, decision 25)
    _refuse_bad_input(app)
    database_down.install(app)  # 503 while PostgreSQL restarts (docs/architecture.md, decision 20)
    _bus_unavailable(app)
    for router in spec.routers:
        # Campaign scopes on every route, checked once (docs/architecture.md, decision 25).
        app.include_router(router, dependencies=[Depends(campaign_scope)])
    for write in spec.fast_writes:  # in front of the route each hands the others back to
        write.mount(app)
    unguarded = csrf.unprotected_writes(app)
    if unguarded:  # a write without form_csrf or json_csrf never starts (decision 25)
        raise RuntimeError(f"{spec.name}: state-changing routes without a CSRF check: {unguarded}")
    if spec.static_dir is not None:
        from fastapi.staticfiles import StaticFiles

        app.mount("/static", StaticFiles(directory=spec.static_dir), name="static")
    # Added last: outermost, so every answer gets its headers (docs/architecture.md, decision 22).
    app.add_middleware(Edge, settings=settings)
    return app


def _no_native_telemetry() -> dict[str, Any]:
    """FastAPI's own telemetry (newer releases) would add a second server span and one per
    dependency, endpoint and serialisation to every request: Measure keeps the one span and the
    latency histogram (docs/architecture.md, decision 44)."""
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    off = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
    return {"telemetry": off}


def _bus_unavailable(app: FastAPI) -> None:
    """A bus that only gave transient answers is a 503 with Retry-After, never a 500.

    docs/architecture.md, decision 23: publish_event already retried within its budget.
    """
    from parindex.bus.publish import TRANSIENT, PublishUnavailable
    from parindex.web.errors import answer

    @app.exception_handler(PublishUnavailable)
    async def unavailable(request: Request, exc: Exception) -> Response:
        detail = "event bus unavailable, try again"
        return answer(request, 503, detail, headers={"Retry-After": RETRY_AFTER_SECONDS})

    # A read after a landed publish (the deadline's sequence, the subject's last ballot) can
    # meet the same election: 503 too, and the retry with the same submission id gets its
    # receipt (docs/architecture.md, decision 26; found by tests/faults/test_cluster_faults.py).
    for cls in TRANSIENT:
        app.add_exception_handler(cls, unavailable)


RETRY_AFTER_SECONDS = "5"


def _refuse_bad_input(app: FastAPI) -> None:
    """Clear 4xx answers for input that would otherwise surface as a 500 with a stack trace."""
    import json

    from parindex.web.errors import answer

    async def malformed(request: Request, exc: Exception) -> Response:
        return answer(request, 400, f"malformed request body: {type(exc).__name__}")

    for kind in (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        app.add_exception_handler(kind, malformed)
