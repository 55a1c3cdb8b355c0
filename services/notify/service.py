"""The notify service: projection → outbox, the sender, the reminder scheduler, the admin API.

The sender and the scheduler wait until the projection has caught up with the log as it stood
at start, so a restart (or a rebuild) first learns from InvitationSent events what was already
sent instead of sending it again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from contracts import subjects
from parindex.bus.projection import ProjectionRunner, read_offset
from parindex.clock import clock_from_settings
from parindex.web.service import Runtime, ServiceSpec
from services.notify import rpc
from services.notify.api import router
from services.notify.config import NotifyConfig
from services.notify.projection import NotifyProjection
from services.notify.reminders import ReminderScheduler
from services.notify.sender import Sender
from services.notify.web import router as web_router


def make_service(config: NotifyConfig | None = None) -> ServiceSpec:
    async def start(rt: Runtime) -> None:
        cfg = config or NotifyConfig()
        clock = cfg.clock or clock_from_settings(rt.settings)
        rt.extras["clock"] = clock
        ready = asyncio.Event()
        sender = Sender(rt, cfg, ready)
        reminders = ReminderScheduler(rt, cfg, clock, ready, on_queued=sender.poke)

        async def on_batch(seq: int) -> None:
            if seq >= target:
                ready.set()
            sender.poke()  # new outbox rows may have arrived with this batch
            reminders.wake.set()  # a campaign or wave may have arrived

        target = (await rt.js.stream_info(subjects.EVENTS_STREAM)).state.last_seq
        async with rt.sessions.begin() as session:
            if await read_offset(session, NotifyProjection.name) >= target:
                ready.set()
        runner = ProjectionRunner(rt.nc, rt.sessions, NotifyProjection(), on_batch=on_batch)
        rt.extras.update(projection=runner, sender=sender, reminders=reminders, ready=ready)

        rt.stopping.append(runner.stop)
        rt.stopping.append(sender.stop)
        rt.spawn(runner.run(), "projection")
        sender.start()
        rt.spawn(reminders.run(), "reminders")

        await rpc.start(rt)

    return ServiceSpec(
        name="notify",
        versions_dir=Path(__file__).parent / "storage" / "versions",
        routers=[router, web_router],
        start=start,
        title="parindex notify",
    )


SERVICE = make_service()
