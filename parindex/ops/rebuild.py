"""`parindex rebuild <service>`: drop a service's projections and replay the log from sequence 1.

The reset happens in one transaction: the projection's rows and its offset row go together, so
an interrupted rebuild is simply a projection at offset 0 that catches up again. A running
service would race the replay with its own runner and its in-memory state (scoring's campaign
cache, notify's sender), so the rebuild refuses while any other session is connected to the
service's database and says to stop the service first (docs/architecture.md, decision 26).
Rows the log cannot give back are kept: identity's credentials and staff users are not
projection rows at all, and notify keeps its outbox (reminders and resends are queued by the
scheduler and by admins, and a sent mail's event may still be unpublished), which the replay
then completes idempotently.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import subjects
from contracts.events import decode
from parindex.bus.connection import connect, wait_for_streams
from parindex.bus.credentials import settings_as
from parindex.bus.projection import Event, Projection, ProjectionRunner
from parindex.db.engine import prepare, sessionmaker
from parindex.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Target:
    """What `rebuild` needs of one service: its projection and the tables its reset keeps."""

    service: str
    projection: str  # "module:Class"
    keep: tuple[str, ...] = ()

    @property
    def versions(self) -> Path:
        return ROOT / "services" / self.service / "storage" / "versions"

    def make(self) -> Projection:
        module, _, cls = self.projection.partition(":")
        return getattr(importlib.import_module(module), cls)()


TARGETS = {
    "identity": Target("identity", "services.identity.projection:IdentityProjection"),
    "survey": Target("survey", "services.survey.projection:SurveyProjection"),
    "scoring": Target("scoring", "services.scoring.projection:ScoringProjection"),
    "notify": Target("notify", "services.notify.projection:NotifyProjection", ("notify_outbox",)),
}


class ServiceRunning(RuntimeError):
    """Another session uses the service's database: most likely the service itself."""


OTHER_SESSIONS = text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
)


class _Resetting:
    """The projection, with a reset that first refuses a running service and keeps `keep`."""

    def __init__(self, inner: Projection, service: str, keep: Sequence[str]) -> None:
        self.inner = inner
        self.name = inner.name
        self.service = service
        self.keep = keep
        # The projection's own fast decode, as the service and the audit use it (decision 43).
        self.decode = getattr(inner, "decode", decode)

    async def apply(self, session: AsyncSession, events: Sequence[Event]) -> None:
        await self.inner.apply(session, events)

    async def reset(self, session: AsyncSession) -> None:
        others = int(await session.scalar(OTHER_SESSIONS) or 0)
        if others:
            raise ServiceRunning(
                f"{others} other connection(s) to the {self.service} database: the {self.service}"
                f" service (or another parindex command) is running. Stop it first (Ctrl-C"
                f" `parindex up`, or `docker compose stop {self.service}`), then run"
                f" `parindex rebuild {self.service}` again; nothing was changed"
            )
        for table in self.keep:  # a temporary copy, put back after the projection's reset
            await session.execute(
                text(f"CREATE TEMP TABLE keep_{table} ON COMMIT DROP AS SELECT * FROM {table}")
            )
        await self.inner.reset(session)
        for table in self.keep:
            await session.execute(text(f"DELETE FROM {table}"))
            await session.execute(text(f"INSERT INTO {table} SELECT * FROM keep_{table}"))


async def rebuild(
    service: str,
    on_batch: Callable[[int, int], Awaitable[None]] | None = None,
    settings: Settings | None = None,
) -> int:
    """Reset one service's projection in one transaction and replay the log; the last sequence.

    `settings`: where the stack is (the CLI's --state-dir); default the environment's."""
    target = TARGETS[service]
    settings = settings or settings_as(service)
    nc = await connect(settings, f"rebuild-{service}")
    engine = await prepare(settings.service_database_url(service), target.versions, pool_size=1)
    try:
        js = nc.jetstream()
        await wait_for_streams(js, timeout=30)
        await engine.dispose()  # no idle connection of ours may count as "another session"
        total = (await js.stream_info(subjects.EVENTS_STREAM)).state.last_seq

        async def progress(seq: int) -> None:
            if on_batch is not None:
                await on_batch(seq, total)

        runner = ProjectionRunner(
            nc,
            sessionmaker(engine),
            _Resetting(target.make(), service, target.keep),
            batch_size=2000,
            on_batch=progress,
        )
        await runner.reset()
        return await runner.catch_up()
    finally:
        await nc.close()
        await engine.dispose()


def progress_bar(service: str) -> Callable[[int, int], Awaitable[None]]:
    async def show(seq: int, total: int) -> None:
        done = int(40 * seq / max(total, 1))
        sys.stderr.write(f"\rrebuild {service} [{'#' * done}{'.' * (40 - done)}] {seq}/{total}")

    return show
