"""The survey service: its spec (HTTP routers, consumers) for parindex.web.service.

On start it runs the survey projection (campaigns, respondents, waves, deadline, counts) and
the scheduler that puts time on the log, and answers the survey RPCs (rpc.py). The clock
lives in rt.extras["clock"] so tests and the accelerated demo can move campaign time.
"""

from __future__ import annotations

import logging
from pathlib import Path

from parindex.bus.projection import ProjectionRunner
from parindex.clock import clock_from_settings
from parindex.db.reads import ReadPool
from parindex.web.service import Runtime, ServiceSpec
from services.survey import rpc
from services.survey.api import FAST_BALLOTS, router
from services.survey.drafts import DraftCleaner, sweep
from services.survey.intake import IntakeCache
from services.survey.participation import DeadlineProbe
from services.survey.projection import SurveyProjection
from services.survey.scheduler import Scheduler
from services.survey.web import router as web_router
from services.survey.workbook_web import router as workbook_router

log = logging.getLogger(__name__)


async def start(rt: Runtime) -> None:
    reads = ReadPool(rt.settings.service_database_url("survey"))
    await reads.open()
    rt.extras["reads"] = reads  # the ballot's one read (docs/architecture.md, decision 44)
    rt.stopping.append(reads.close)
    clock = rt.extras.setdefault("clock", clock_from_settings(rt.settings))
    # One deadline lookup answers the ballots in flight (docs/architecture.md, decision 46).
    rt.extras["deadlines"] = DeadlineProbe(rt.js)
    runner = ProjectionRunner(rt.nc, rt.sessions, SurveyProjection())
    rt.extras["projection"] = runner
    # Who is asking, from memory while the runner keeps it true (docs/architecture.md, 49).
    intake = IntakeCache(reads, runner)
    runner.on_seen = intake.saw
    rt.extras["intake"] = intake
    rt.stopping.append(runner.stop)
    rt.spawn(runner.run(), "projection")
    cleaner = DraftCleaner(rt.sessions)  # submitted drafts, off the request path
    rt.extras["drafts"] = cleaner
    rt.stopping.append(cleaner.flush)
    rt.spawn(cleaner.run(), "drafts")
    rt.spawn(_sweep_drafts(rt), "draft sweep")
    scheduler = Scheduler(rt.js, rt.sessions, clock)
    rt.extras["scheduler"] = scheduler
    rt.spawn(scheduler.run(), "scheduler")
    await rpc.start(rt)


async def _sweep_drafts(rt: Runtime) -> None:
    """Drafts a killed process left queued (docs/architecture.md, decision 41)."""
    try:
        deleted = await sweep(rt.js, rt.sessions)
    except Exception:  # retried at the next start; nothing depends on it
        log.exception("sweeping the drafts of submitted ballots failed")
        return
    if deleted:
        log.info("deleted %s drafts of ballots already on the log", deleted)


SERVICE = ServiceSpec(
    name="survey",
    versions_dir=Path(__file__).parent / "storage" / "versions",
    routers=[router, web_router, workbook_router],
    start=start,
    title="parindex survey",
    fast_writes=[FAST_BALLOTS],
)
