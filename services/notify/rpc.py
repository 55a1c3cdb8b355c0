"""Notify's request-reply adapter: identity passes on a respondent's request for a credential.

Served through parindex/bus/rpc.py as the nats.micro service "notify" (docs/architecture.md,
decision 28). Identity publishes without waiting for the answer; a caller that asks gets the
queued purpose or the refusal.
"""

from __future__ import annotations

from contracts.rpc import RESET, ResetReply, ResetRequest
from parindex.bus import rpc
from parindex.web.service import Runtime
from services.notify.deliveries import queue_resend
from services.notify.errors import ResendRefused


async def start(rt: Runtime) -> None:
    async def reset(req: ResetRequest) -> ResetReply:
        """A respondent asked identity for a new credential: e-mail a fresh one."""
        try:
            done = await queue_resend(
                rt.sessions, rt.extras.get("sender"), req.campaign_id, req.respondent_id, "reset"
            )
        except ResendRefused as exc:
            raise rpc.RpcError("refused", exc.reason) from exc
        return ResetReply(queued=done["purpose"])

    svc = await rpc.serve(rt.nc, "notify", [rpc.route(RESET, reset)])
    rt.stopping.append(svc.stop)
