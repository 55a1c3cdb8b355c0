"""One way to connect to NATS; streams are provisioned once and only checked by services."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from contracts import subjects
from parindex.settings import Settings

log = logging.getLogger(__name__)


async def connect(settings: Settings, name: str) -> Client:
    """A connection that reconnects forever: a NATS restart must not kill a service."""
    opts: dict = {
        "servers": [u.strip() for u in settings.nats_url.split(",")],
        "name": f"parindex-{name}",
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "connect_timeout": 5,
        # A server that hangs (SIGSTOP, a stalled VM) keeps the TCP connection open: without
        # pings answered within ~15 s we would wait for nats-py's default of 4 minutes before
        # moving to another node of the cluster (docs/architecture.md, decision 26).
        "ping_interval": 5,
        "max_outstanding_pings": 3,
    }
    if settings.nats_user:
        opts["user"] = settings.nats_user
        opts["password"] = settings.nats_password
        # Replies to this user arrive under its own prefix, which only it may subscribe to.
        opts["inbox_prefix"] = f"_INBOX_{settings.nats_user}"
    return await nats.connect(**opts)


def stream_configs(replicas: int) -> list[StreamConfig]:
    """The log (docs/architecture.md, decision 1): file storage, kept forever, no delete/purge."""
    common: dict[str, Any] = dict(
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.NEW,
        max_age=0,
        num_replicas=replicas,
        duplicate_window=subjects.DUPLICATE_WINDOW_S,
        deny_delete=True,
        deny_purge=True,
        allow_direct=True,
    )
    return [
        StreamConfig(
            name=subjects.EVENTS_STREAM,
            subjects=subjects.EVENTS_SUBJECTS,
            description="parindex events: the system of record",
            **common,
        ),
        StreamConfig(
            name=subjects.DLQ_STREAM,
            subjects=subjects.DLQ_SUBJECTS,
            description="messages a consumer could not read, with the reason",
            **common,
        ),
    ]


class StreamsMissing(RuntimeError):
    pass


async def ensure_streams(js: JetStreamContext, replicas: int = 1) -> None:
    """Create the streams, or update them to this config: the provisioning identity's job.

    Under the locked-down bus only the provisioner may (docs/architecture.md, decision 18);
    services call wait_for_streams instead.
    """
    for cfg in stream_configs(replicas):
        assert cfg.name is not None  # stream_configs names every stream
        try:
            await js.stream_info(cfg.name)
        except NotFoundError:
            try:
                await js.add_stream(cfg)
                log.info("created stream %s (replicas=%d)", cfg.name, replicas)
                continue
            except BadRequestError:  # another service created it first
                pass
        await js.update_stream(cfg)


async def wait_for_streams(js: JetStreamContext, timeout: float | None = None) -> None:
    """Return once both streams exist; a service never creates or edits them (decision 18).

    Retries while the provisioner has not run yet (compose starts it alongside), so a service
    started first simply waits; `timeout` (None: forever) bounds one-shot commands.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    warned = 0.0
    for name in (subjects.EVENTS_STREAM, subjects.DLQ_STREAM):
        while True:
            try:
                await js.stream_info(name)
                break
            except NotFoundError:
                reason = "missing"
            except (TimeoutError, nats.errors.TimeoutError, nats.errors.NoRespondersError):
                reason = "no answer"
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise StreamsMissing(
                    f"stream {name} {reason}: run the provisioning step (parindex up, or "
                    "the nats-provision service) first"
                )
            if now - warned > 10:
                log.warning("waiting for stream %s (%s) to be provisioned", name, reason)
                warned = now
            await asyncio.sleep(0.5)
