"""`parindex respondents import` and `parindex users add` (registered by parindex.cli).

The import talks to NATS and identity's database directly, so it works whether or not the
identity service is running: it catches the projection up itself (safe alongside a running
service, see projection.py), publishes, and waits until its events are applied.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from pathlib import Path

from parindex.bus.connection import connect, wait_for_streams
from parindex.bus.projection import ProjectionRunner
from parindex.db.engine import prepare, sessionmaker
from parindex.runtime.locate import add_stack_options, settings_for

VERSIONS = Path(__file__).parent / "storage" / "versions"


async def _import(args: argparse.Namespace, content: bytes) -> int:
    from services.identity.imports import CampaignClosedToImports, UnknownCampaign, run_import
    from services.identity.projection import IdentityProjection

    settings = settings_for(args, "identity")
    nc = await connect(settings, "identity-cli")
    engine = await prepare(settings.service_database_url("identity"), VERSIONS, pool_size=2)
    try:
        js = nc.jetstream()
        await wait_for_streams(js, timeout=30)
        runner = ProjectionRunner(nc, sessionmaker(engine), IdentityProjection())

        async def wait_applied(seq: int) -> None:
            await runner.catch_up(until_seq=seq)

        try:
            report = await run_import(
                js,
                runner.sessions,
                args.campaign,
                content,
                Path(args.file).name,
                wait_applied=wait_applied,
                correlation_id="import:cli",
            )
        except UnknownCampaign:
            print(f"parindex: unknown campaign {args.campaign}", file=sys.stderr)
            return 2
        except CampaignClosedToImports:  # docs/architecture.md, decision 39
            print(
                f"parindex: đợt khảo sát {args.campaign} đã đóng, không thể nhập danh sách / "
                f"campaign {args.campaign} is closed: its list can no longer change",
                file=sys.stderr,
            )
            return 2
        print(report.render())
        return 0 if report.ok else 1
    finally:
        await nc.drain()
        await engine.dispose()


async def _add_user(args: argparse.Namespace) -> int:
    from services.identity.accounts import UserExists, add_user

    settings = settings_for(args, None, nats=False)  # before the prompt: is there a stack?
    password = args.password
    if password is None:
        password = getpass.getpass("Mật khẩu / password: ")
        if password != getpass.getpass("Nhập lại / again: "):
            print("parindex: passwords differ", file=sys.stderr)
            return 1
    engine = await prepare(settings.service_database_url("identity"), VERSIONS, pool_size=2)
    try:
        await add_user(
            sessionmaker(engine),
            args.username,
            args.role,
            password,
            unit_code=args.unit,
            campaign_id=args.campaign,
            replace=args.replace,
        )
    except UserExists:
        print(f"parindex: user {args.username} exists (use --replace)", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"parindex: {exc}", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()
    print(f"user {args.username} ({args.role}) saved")
    return 0


def _command(sub: argparse._SubParsersAction, name: str, text: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=text, description=text[:1].upper() + text[1:] + ".")


def _import_command(args: argparse.Namespace) -> int:
    settings_for(args, "identity")  # a stopped stack is said before the file is read
    return asyncio.run(_import(args, Path(args.file).read_bytes()))


def register(sub: argparse._SubParsersAction) -> None:
    resp = _command(sub, "respondents", "respondent registry (identity)")
    rsub = resp.add_subparsers(dest="respondents_cmd", required=True, metavar="ACTION")
    imp = _command(rsub, "import", "check and import a respondent list (.xlsx/.csv)")
    imp.add_argument("file", help="the list: the respondents workbook (.xlsx) or a .csv")
    imp.add_argument("--campaign", required=True, help="the campaign id the list belongs to")
    add_stack_options(imp)
    imp.set_defaults(fn=_import_command)

    users = _command(sub, "users", "staff users (identity)")
    usub = users.add_subparsers(dest="users_cmd", required=True, metavar="ACTION")
    add = _command(usub, "add", "add a staff user (argon2id hash in identity's database)")
    add.add_argument("username", help="the login name")
    add.add_argument(
        "--role", required=True, choices=["admin", "focal_point", "auditor"],
        help="what the user may do: admin, focal_point (one unit) or auditor (read-only)",
    )  # fmt: skip
    add.add_argument("--unit", help="unit code (focal points)")
    add.add_argument("--campaign", help="restrict to one campaign")
    add.add_argument("--password", help="omit to be prompted (keeps it out of shell history)")
    add.add_argument("--replace", action="store_true", help="overwrite an existing user")
    add_stack_options(add, nats=False)
    add.set_defaults(fn=lambda a: asyncio.run(_add_user(a)))
