"""`parindex audit` and `parindex rebuild scoring`."""

from __future__ import annotations

import argparse
import asyncio
import sys


def register(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser("audit", help="replay the log and verify a campaign's published results")
    a.add_argument("--campaign", required=True)
    a.add_argument("--json", action="store_true", help="print the report as JSON")
    a.add_argument("--no-live", action="store_true", help="skip comparing with the live database")
    a.set_defaults(fn=_audit)
    r = sub.add_parser("rebuild", help="drop and rebuild a service's projections from sequence 1")
    r.add_argument("service", choices=["scoring"])
    r.set_defaults(fn=_rebuild)


def _audit(args: argparse.Namespace) -> int:
    from parindex.bus.connection import connect
    from parindex.bus.credentials import settings_as
    from services.scoring.audit import audit, report_json

    async def run() -> int:
        settings = settings_as("auditor")
        nc = await connect(settings, "auditor")
        try:
            report = await audit(nc, settings, args.campaign, compare_live=not args.no_live)
        finally:
            await nc.close()
        print(report_json(report) if args.json else report.render())
        return 0 if report.ok else 1

    return asyncio.run(run())


def _rebuild(args: argparse.Namespace) -> int:
    from contracts import subjects
    from parindex.bus.connection import connect
    from parindex.bus.credentials import settings_as
    from parindex.bus.projection import ProjectionRunner
    from parindex.db.engine import prepare, sessionmaker
    from services.scoring.projection import ScoringProjection
    from services.scoring.service import VERSIONS

    async def run() -> int:
        settings = settings_as("scoring")
        nc = await connect(settings, "rebuild")
        engine = await prepare(settings.service_database_url("scoring"), VERSIONS)
        info = await nc.jetstream().stream_info(subjects.EVENTS_STREAM)
        total = info.state.last_seq or 1

        async def progress(seq: int) -> None:
            done = int(40 * seq / total)
            sys.stderr.write(f"\rrebuild scoring [{'#' * done}{'.' * (40 - done)}] {seq}/{total}")

        runner = ProjectionRunner(
            nc, sessionmaker(engine), ScoringProjection(), batch_size=2000, on_batch=progress
        )
        await runner.reset()
        seq = await runner.catch_up()
        sys.stderr.write("\n")
        print(f"rebuilt scoring up to sequence {seq}")
        await engine.dispose()
        await nc.close()
        return 0

    return asyncio.run(run())
