"""Survey's request-reply adapter for other services (notify's reminders, dashboards).

Served through parindex/bus/rpc.py as the nats.micro service "survey" (docs/architecture.md,
decision 28): nonrespondents (ids only, never answers: participation is derived from the log
when asked, decision 15) and progress (what GET /api/progress answers). Domain errors become
RPC errors here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from contracts.rpc import NONRESPONDENTS, PROGRESS, NonrespondentsReply, ProgressReply, UnitRequest
from parindex.bus import rpc
from parindex.web.service import Runtime
from services.survey.errors import MissingBallotKey, UnknownCampaign
from services.survey.progress import nonrespondents, progress_report
from services.survey.runtime import deps

T = TypeVar("T")


async def _translated(work: Callable[[], Awaitable[T]]) -> T:
    try:
        return await work()
    except UnknownCampaign as exc:
        raise rpc.RpcError("unknown_campaign", "unknown campaign") from exc
    except MissingBallotKey as exc:
        raise rpc.RpcError("ballot_key_missing", "survey has no ballot key") from exc


async def start(rt: Runtime) -> None:
    async def missing(req: UnitRequest) -> NonrespondentsReply:
        ids = await _translated(lambda: nonrespondents(deps(rt), req.campaign_id, req.unit_code))
        return NonrespondentsReply(respondent_ids=ids)

    async def progress(req: UnitRequest) -> ProgressReply:
        report = await _translated(
            lambda: progress_report(deps(rt), req.campaign_id, req.unit_code)
        )
        return ProgressReply.model_validate(report)

    svc = await rpc.serve(
        rt.nc, "survey", [rpc.route(NONRESPONDENTS, missing), rpc.route(PROGRESS, progress)]
    )
    rt.stopping.append(svc.stop)
