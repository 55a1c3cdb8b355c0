"""`parindex campaign load FILE`: put a campaign definition on the log."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

from parindex.runtime.locate import add_stack_options, settings_for

if TYPE_CHECKING:
    from parindex.settings import Settings


async def _load_async(path: str, settings: Settings) -> int:
    from parindex.bus.connection import connect, wait_for_streams
    from parindex.bus.publish import ConcurrencyConflict
    from services.survey.campaign_file import CampaignFileError, load_campaign_file
    from services.survey.define import CampaignFrozen, define_campaign

    try:
        campaign = load_campaign_file(path)
    except CampaignFileError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    nc = await connect(settings, "cli")
    try:
        js = nc.jetstream()
        await wait_for_streams(js, timeout=30)
        try:
            defined = await define_campaign(js, campaign, producer="cli")
        except CampaignFrozen as exc:
            print(f"parindex: {campaign.id}: {exc}", file=sys.stderr)
            return 3
        except ConcurrencyConflict:
            print(f"parindex: {campaign.id} was changed meanwhile; run again", file=sys.stderr)
            return 3
    finally:
        await nc.drain()
    print(f"campaign {defined.id} defined, version {defined.version}")
    return 0


def _load(args: argparse.Namespace) -> int:
    settings = settings_for(args, "survey", database=False)
    return asyncio.run(_load_async(args.file, settings))


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    text = "campaign definitions"
    campaign = subparsers.add_parser("campaign", help=text, description="Campaign definitions.")
    sub = campaign.add_subparsers(dest="campaign_cmd", required=True, metavar="ACTION")
    text = "publish a campaign file (YAML/JSON) as CampaignDefined"
    load = sub.add_parser("load", help=text, description=text[:1].upper() + text[1:] + ".")
    load.add_argument("file", help="the campaign definition, YAML or JSON")
    add_stack_options(load, database=False)
    load.set_defaults(fn=_load)
