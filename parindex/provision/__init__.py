"""The provisioning step: create or update the streams as the one identity allowed to.

`parindex up` calls `provision` before it starts the services; compose runs
`python -m parindex.provision` once as user `provisioner` (docs/architecture.md, decision 18).
"""

from __future__ import annotations

import asyncio
import logging
import time

from parindex.bus.connection import connect, ensure_streams
from parindex.settings import Settings

log = logging.getLogger(__name__)


async def _ensure(settings: Settings) -> None:
    nc = await connect(settings, "provision")
    try:
        await ensure_streams(nc.jetstream(), settings.stream_replicas)
    finally:
        await nc.close()


async def provision(settings: Settings, timeout: float = 60.0) -> None:
    """Ensure the streams, retrying while NATS (or its JetStream cluster) is still starting."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            # Bounded: a connection that reconnects forever (wrong server, refused password)
            # must fail here by the deadline, not hang whoever starts the stack.
            left = max(1.0, deadline - time.monotonic())
            await asyncio.wait_for(_ensure(settings), left)
            return
        except Exception as exc:  # noqa: BLE001 - any failure is retried until the deadline
            if time.monotonic() >= deadline:
                raise
            log.warning("provisioning the streams failed (%s); retrying", exc)
            await asyncio.sleep(1)
