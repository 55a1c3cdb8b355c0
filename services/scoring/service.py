"""The scoring service: projections from the log, results, audit, dashboards' JSON."""

from __future__ import annotations

from pathlib import Path

from parindex.bus.projection import ProjectionRunner
from parindex.web.service import Runtime, ServiceSpec

VERSIONS = Path(__file__).parent / "storage" / "versions"


async def start(rt: Runtime) -> None:
    from services.scoring.projection import ScoringProjection
    from services.scoring.results import publish_due_results

    async def after_batch(_seq: int) -> None:
        await publish_due_results(rt.js, rt.sessions)

    runner = ProjectionRunner(rt.nc, rt.sessions, ScoringProjection(), on_batch=after_batch)
    rt.extras["runner"] = runner
    rt.stopping.append(runner.stop)
    rt.spawn(runner.run(), "projection")


def _routers() -> list:
    from services.scoring.api import router
    from services.scoring.web import router as web_router

    return [router, web_router]


SERVICE = ServiceSpec(
    name="scoring",
    versions_dir=VERSIONS,
    title="parindex scoring",
    routers=_routers(),
    start=start,
)
