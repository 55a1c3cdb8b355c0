"""`parindex audit` (`parindex rebuild scoring` is parindex.ops.rebuild, like every service's)."""

from __future__ import annotations

import argparse
import asyncio

from parindex.runtime.locate import add_stack_options, settings_for


def register(sub: argparse._SubParsersAction) -> None:
    text = "replay the log and verify a campaign's published results"
    a = sub.add_parser("audit", help=text, description=text[:1].upper() + text[1:] + ".")
    a.add_argument("--campaign", required=True, help="the id of the campaign to audit")
    a.add_argument("--json", action="store_true", help="print the report as JSON")
    a.add_argument("--no-live", action="store_true", help="skip comparing with the live database")
    add_stack_options(a)
    a.set_defaults(fn=_audit)


def _audit(args: argparse.Namespace) -> int:
    from parindex.bus.connection import connect
    from services.scoring.audit import audit, report_json

    settings = settings_for(args, "auditor")

    async def run() -> int:
        nc = await connect(settings, "auditor")
        try:
            report = await audit(nc, settings, args.campaign, compare_live=not args.no_live)
        finally:
            await nc.close()
        print(report_json(report) if args.json else report.render())
        return 0 if report.ok else 1

    return asyncio.run(run())
