"""The `parindex` command."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from parindex.settings import Settings


def _demo(args: argparse.Namespace) -> int:
    from parindex.runtime.demo import run_demo
    from parindex.runtime.ports import PortTaken
    from parindex.runtime.practice import StepFailed
    from parindex.runtime.supervise import install_stop_signals
    from parindex.runtime.up import AlreadyRunning, FreshRefused

    install_stop_signals()  # SIGTERM mid-demo stops the stack too (decision 20)
    try:
        return run_demo(
            Path(args.state_dir), args.minutes, keep_running=not args.exit,
            port=getattr(args, "port", None), fresh=args.fresh,
        )  # fmt: skip
    except (AlreadyRunning, PortTaken, FreshRefused) as exc:
        print(f"parindex: {exc}", file=sys.stderr)
        return 2
    except StepFailed as exc:  # the stack is stopped; the failed command says why
        print(
            f"parindex demo: dừng / stopped: {exc}\n"
            "  `parindex up --demo --fresh` xoá dữ liệu và chạy lại / deletes it and starts over",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        return 0


def _up(args: argparse.Namespace, nats_users: dict[str, str] | None = None) -> int:
    from parindex.runtime.supervise import install_stop_signals
    from parindex.runtime.up import AlreadyRunning, FreshRefused, Stack, existing_data, run_forever

    if args.demo:
        return _demo(args)
    install_stop_signals()  # SIGTERM mid-start-up stops what was started (decision 20)
    if args.cluster:
        return _up_cluster(args)
    stack = Stack(
        state_dir=Path(args.state_dir),
        nats_url=args.nats_url or os.environ.get("PARINDEX_NATS_URL"),
        database_url=args.database_url or os.environ.get("PARINDEX_DATABASE_URL"),
        port=args.port,
        nats_users=nats_users or {},
        fresh=args.fresh,
    )
    # Say what this run does with what an earlier one left (docs/architecture.md, decision 40).
    if args.fresh:
        print(f"parindex: --fresh: xoá dữ liệu cũ / deleting the earlier data in {args.state_dir}")
    elif existing_data(Path(args.state_dir)):
        print(
            f"parindex: dùng tiếp dữ liệu trong / resuming the data in {args.state_dir} "
            "(`parindex up --fresh` xoá và bắt đầu lại / deletes it and starts over)",
            flush=True,
        )
    try:
        endpoints = stack.start(timeout=args.timeout)
    except (AlreadyRunning, FreshRefused) as exc:
        print(f"parindex: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Stack.start has stopped what it started
        return 0
    except Exception as exc:
        print(f"parindex: could not start: {exc}", file=sys.stderr)
        return 1
    if endpoints.get("mail"):
        print(f"hộp thư / mail: {endpoints['mail']}/")
    print(f"\nparindex is running. Open {endpoints['open']}  (Ctrl-C stops)", flush=True)
    return run_forever(stack)


def _nats_auth(s: Settings) -> dict[str, str]:
    """nats.connect's credentials for an operator command (backup, restore)."""
    if not s.nats_user:
        return {}
    return {
        "user": s.nats_user,
        "password": s.nats_password,
        "inbox_prefix": f"_INBOX_{s.nats_user}",
    }


def _up_cluster(args: argparse.Namespace) -> int:
    """`up` against N local JetStream nodes with R-N streams (docs/architecture.md, decision 21),
    locked down with the same accounts and users as the single node (decisions 18 and 26)."""
    from parindex.runtime.cluster import locked_cluster

    cluster, users = locked_cluster(Path(args.state_dir).resolve(), args.cluster)
    os.environ["PARINDEX_STREAM_REPLICAS"] = str(args.cluster)
    args.cluster, args.nats_url = 0, cluster.url
    try:
        cluster.start()
        monitor = ",".join(cluster.monitor_urls)
        print(f"parindex: NATS monitoring {monitor}", file=sys.stderr)
        print(f"parindex: parindex health stream --monitor {monitor}", file=sys.stderr)
        return _up(args, nats_users=users)
    finally:
        cluster.stop()


def _backup(args: argparse.Namespace) -> int:
    from parindex.ops.backup import backup
    from parindex.runtime.locate import settings_for

    s = settings_for(args, "admin")
    summary = backup(s.nats_url, s.database_url, Path(args.to), **_nats_auth(s))
    print(json.dumps({"messages": summary.messages, "databases": summary.databases}))
    return 0


def _restore(args: argparse.Namespace) -> int:
    from parindex.ops.backup import RestoreError, restore
    from parindex.runtime.locate import settings_for

    s = settings_for(args, "admin")
    try:
        summary = restore(
            s.nats_url, s.database_url, Path(args.source), args.replicas, **_nats_auth(s)
        )
    except RestoreError as exc:
        print(f"parindex: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"messages": summary.messages, "databases": summary.databases}))
    return 0


def _rebuild(args: argparse.Namespace) -> int:
    """Drop one service's projections and replay the log (docs/architecture.md, decision 26)."""
    import asyncio

    from parindex.ops.rebuild import ServiceRunning, progress_bar, rebuild
    from parindex.runtime.locate import settings_for

    settings = settings_for(args, args.service)
    try:
        seq = asyncio.run(rebuild(args.service, progress_bar(args.service), settings))
    except ServiceRunning as exc:
        print(f"parindex: {exc}", file=sys.stderr)
        return 3
    sys.stderr.write("\n")
    print(f"rebuilt {args.service} up to sequence {seq}")
    return 0


def _health(args: argparse.Namespace) -> int:
    """0 iff the log has a leader and a current follower (docs/architecture.md, decision 26)."""
    from parindex.ops.health import stream_health
    from parindex.runtime import endpoints
    from parindex.runtime.locate import NoStack

    monitor = (
        args.monitor
        or os.environ.get("PARINDEX_NATS_MONITOR_URLS")
        or endpoints.value(args.state_dir, "nats_monitor")
    )
    if not monitor:
        raise NoStack(
            f"parindex: nothing runs in {args.state_dir} (no NATS monitoring URL there).\n"
            f"Start it with `parindex up --state-dir {args.state_dir}`, or pass "
            "--monitor http://HOST:8222."
        )
    verdict = stream_health([u.strip() for u in monitor.split(",") if u.strip()])
    print(("ok: " if verdict.ok else "NOT OK: ") + verdict.detail)
    return 0 if verdict.ok else 1


def _contracts(args: argparse.Namespace) -> int:
    from contracts.export import write_all

    changed = write_all(Path(args.out) if args.out else None)
    print("\n".join(str(p) for p in changed) or "contracts up to date")
    return 0


def _deadletters(args: argparse.Namespace) -> int:
    """Dead letters for operators: the reason, who refused it and where it came from."""
    import asyncio

    from parindex.bus.connection import connect
    from parindex.bus.deadletter import dead_letter_at, dead_letters
    from parindex.runtime.locate import settings_for

    settings = settings_for(args, "admin", database=False)

    async def run() -> int:
        nc = await connect(settings, "deadletters")
        try:
            js = nc.jetstream()
            if args.action == "show":
                d = await dead_letter_at(js, args.seq)
                if d is None:
                    print(f"parindex: no dead letter {args.seq}", file=sys.stderr)
                    return 1
                print(f"dead letter {d.seq} ({d.time or '-'})")
                print(f"consumer:  {d.consumer}")
                print(f"subject:   {d.subject}")
                print(f"sequence:  {d.stream_seq}")
                print(f"reason:    {d.reason}")
                print("message:   " + d.data.decode("utf-8", "backslashreplace")[:4000])
                return 0
            letters = await dead_letters(js, limit=args.limit, consumer=args.consumer)
            print(f"{'SEQ':>6}  {'CONSUMER':<10} {'ORIG SEQ':>8}  SUBJECT / REASON")
            for d in letters:
                print(f"{d.seq:>6}  {d.consumer:<10} {d.stream_seq:>8}  {d.subject}")
                print(f"{'':>28}{d.reason[:200]}")
            print(f"{len(letters)} dead letter(s)")
            return 0
        finally:
            await nc.close()

    return asyncio.run(run())


SERVICE_CLIS = ("identity", "survey", "scoring", "notify")


def build_parser() -> argparse.ArgumentParser:
    """Every command, each with a description and help on every option (tests walk this)."""
    from parindex.runtime.locate import add_stack_options, add_state_dir

    parser = argparse.ArgumentParser(
        prog="parindex",
        description="PAR Index survey, event-sourced. Commands that talk to a running stack find "
        "it through --state-dir (default .parindex, where `parindex up` writes endpoints.json "
        "and secrets/).",
    )
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    up = _command(sub, "up", "run NATS, PostgreSQL and the four services on this machine")
    add_state_dir(up)
    up.add_argument("--demo", action="store_true", help="load the Sóc Trăng 2023 demo campaign")
    up.add_argument("--nats-url", help="use this NATS server instead of the embedded one")
    up.add_argument("--database-url", help="use this PostgreSQL server instead of the embedded one")
    up.add_argument(
        "--port", type=int,
        help="the front door's port (default: the one this state dir used before, else 8000)",
    )  # fmt: skip
    up.add_argument(
        "--timeout", type=float, default=90.0,
        help="seconds to wait for every service to be ready before giving up (default 90)",
    )  # fmt: skip
    up.add_argument("--minutes", type=float, default=6.0, help="demo length (with --demo)")
    up.add_argument("--exit", action="store_true", help="with --demo: stop when it is done")
    up.add_argument(
        "--fresh", action="store_true",
        help="delete this state dir's log, databases and mail first and start over",
    )  # fmt: skip
    up.add_argument(
        "--cluster",
        type=int,
        default=0,
        help="run N local JetStream nodes (R-N streams)",
    )
    up.set_defaults(fn=_up)

    demo = _command(sub, "demo", "the Sóc Trăng 2023 campaign on an accelerated clock")
    add_state_dir(demo, ".parindex-demo")
    demo.add_argument("--minutes", type=float, default=6.0, help="wall minutes for 20/09–07/10")
    demo.add_argument("--exit", action="store_true", help="stop when the demo is done")
    demo.add_argument(
        "--fresh", action="store_true", help="delete this state dir's data first and run anew"
    )
    demo.set_defaults(fn=_demo)

    con = _command(sub, "contracts", "regenerate contracts/schemas and asyncapi.json")
    con.add_argument("--out", help="directory (default: the contracts folder)")
    con.set_defaults(fn=_contracts)

    bak = _command(sub, "backup", "copy both streams and every service database to DIR")
    bak.add_argument("--to", required=True, metavar="DIR", help="an empty or new directory")
    add_stack_options(bak)
    bak.set_defaults(fn=_backup)

    res = _command(sub, "restore", "replay a backup into an EMPTY NATS and PostgreSQL")
    res.add_argument(
        "--from", dest="source", required=True, metavar="DIR",
        help="a directory written by `parindex backup`",
    )  # fmt: skip
    add_stack_options(res)
    res.add_argument(
        "--replicas", type=int, default=int(os.environ.get("PARINDEX_STREAM_REPLICAS", "1")),
        help="replicas of the recreated streams (the cluster's size; default 1)",
    )  # fmt: skip
    res.set_defaults(fn=_restore)

    reb = _command(sub, "rebuild", "drop a service's projections and replay the log")
    reb.add_argument("service", choices=SERVICE_CLIS, help="the (stopped) service to rebuild")
    add_stack_options(reb)
    reb.set_defaults(fn=_rebuild)

    hea = _command(sub, "health", "is the log writable: a stream leader and a current replica")
    hea_sub = hea.add_subparsers(dest="what", required=True, metavar="WHAT")
    hea_stream = _command(hea_sub, "stream", "the PARINDEX stream, from /jsz of each node")
    hea_stream.add_argument(
        "--monitor",
        help="comma-separated monitoring URLs of the NATS nodes (http://nats-1:8222,...); "
        "default $PARINDEX_NATS_MONITOR_URLS, else the state dir's endpoints.json",
    )
    add_state_dir(hea_stream)
    hea.set_defaults(fn=_health)

    dl = _command(sub, "deadletters", "events a projection could not apply, and why")
    dl_sub = dl.add_subparsers(dest="action", required=True, metavar="ACTION")
    dl_list = _command(dl_sub, "list", "the newest dead letters")
    dl_list.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    dl_list.add_argument("--consumer", help="only this consumer (identity, survey, ...)")
    add_stack_options(dl_list, database=False)
    dl_show = _command(dl_sub, "show", "one dead letter with its message")
    dl_show.add_argument("seq", type=int, help="its sequence in the dead-letter stream")
    add_stack_options(dl_show, database=False)
    dl.set_defaults(fn=_deadletters)

    for name in SERVICE_CLIS:  # each service adds its own commands (services/<name>/cli.py)
        try:
            module = importlib.import_module(f"services.{name}.cli")
        except ModuleNotFoundError as exc:
            if exc.name != f"services.{name}.cli":
                raise
            continue
        module.register(sub)
    for leaf in leaf_parsers(parser):
        leaf.add_argument(
            "--debug", action="store_true", help="show the full traceback when something fails"
        )
    return parser


def _command(sub: argparse._SubParsersAction, name: str, text: str) -> argparse.ArgumentParser:
    """A subcommand whose one sentence is both its line in the list and its --help description."""
    return sub.add_parser(name, help=text, description=text[:1].upper() + text[1:] + ".")


def leaf_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parsers that run something (no further subcommand), depth first."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [parser]
    return [leaf for s in subs for child in s.choices.values() for leaf in leaf_parsers(child)]


def _connection_errors() -> tuple[type[BaseException], ...]:
    """What a stopped or unreachable stack raises: said in one sentence, not as a traceback."""
    import socket

    import nats.errors
    import sqlalchemy.exc

    found: list[type[BaseException]] = [
        ConnectionError,
        socket.gaierror,
        TimeoutError,
        nats.errors.NoServersError,
        nats.errors.ConnectionClosedError,
        nats.errors.TimeoutError,
        nats.errors.AuthorizationError,
        sqlalchemy.exc.OperationalError,
        sqlalchemy.exc.InterfaceError,
    ]
    try:
        import asyncpg

        found.append(asyncpg.PostgresConnectionError)
        found.append(asyncpg.InvalidAuthorizationSpecificationError)
        found.append(asyncpg.InvalidPasswordError)
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        pass
    return tuple(found)


def main(argv: list[str] | None = None) -> int:
    from parindex.runtime.locate import NoStack

    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except NoStack as exc:
        if getattr(args, "debug", False):
            raise
        print(str(exc), file=sys.stderr)
        return 2
    except _connection_errors() as exc:
        if getattr(args, "debug", False):
            raise
        state = getattr(args, "state_dir", ".parindex")
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        print(
            f"parindex: could not talk to the stack: {reason}\n"
            f"Is it running? Start it with `parindex up --state-dir {state}`, or pass "
            "--nats-url/--database-url of a running server (--debug shows the traceback).",
            file=sys.stderr,
        )
        return 2
    except OSError as exc:  # a file named on the command line: missing, unreadable, ...
        if getattr(args, "debug", False):
            raise
        print(f"parindex: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
