"""The `parindex` command."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path


def _demo(args: argparse.Namespace) -> int:
    from parindex.runtime.demo import run_demo
    from parindex.runtime.ports import PortTaken
    from parindex.runtime.supervise import install_stop_signals
    from parindex.runtime.up import AlreadyRunning

    install_stop_signals()  # SIGTERM mid-demo stops the stack too (decision 20)
    try:
        return run_demo(
            Path(args.state_dir), args.minutes, keep_running=not args.exit,
            port=getattr(args, "port", None),
        )  # fmt: skip
    except (AlreadyRunning, PortTaken) as exc:
        print(f"parindex: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


def _up(args: argparse.Namespace, nats_users: dict[str, str] | None = None) -> int:
    from parindex.runtime.supervise import install_stop_signals
    from parindex.runtime.up import AlreadyRunning, Stack, run_forever

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
    )
    try:
        endpoints = stack.start(timeout=args.timeout)
    except AlreadyRunning as exc:
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


def _nats_auth() -> dict[str, str]:
    from parindex.settings import Settings

    s = Settings()
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

    summary = backup(args.nats_url, args.database_url, Path(args.to), **_nats_auth())
    print(json.dumps({"messages": summary.messages, "databases": summary.databases}))
    return 0


def _restore(args: argparse.Namespace) -> int:
    from parindex.ops.backup import RestoreError, restore

    try:
        summary = restore(
            args.nats_url, args.database_url, Path(args.source), args.replicas, **_nats_auth()
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

    try:
        seq = asyncio.run(rebuild(args.service, progress_bar(args.service)))
    except ServiceRunning as exc:
        print(f"parindex: {exc}", file=sys.stderr)
        return 3
    sys.stderr.write("\n")
    print(f"rebuilt {args.service} up to sequence {seq}")
    return 0


def _health(args: argparse.Namespace) -> int:
    """0 iff the log has a leader and a current follower (docs/architecture.md, decision 26)."""
    from parindex.ops.health import stream_health

    verdict = stream_health([u.strip() for u in args.monitor.split(",") if u.strip()])
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
    from parindex.settings import get_settings

    async def run() -> int:
        nc = await connect(get_settings(), "deadletters")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="parindex", description="PAR Index survey, event-sourced")
    sub = parser.add_subparsers(dest="cmd", required=True)

    up = sub.add_parser("up", help="run NATS, PostgreSQL and the four services on this machine")
    up.add_argument("--state-dir", default=os.environ.get("PARINDEX_STATE_DIR", ".parindex"))
    up.add_argument("--demo", action="store_true", help="load the Sóc Trăng 2023 demo campaign")
    up.add_argument("--nats-url", help="use this NATS server instead of the embedded one")
    up.add_argument("--database-url", help="use this PostgreSQL server instead of the embedded one")
    up.add_argument(
        "--port", type=int,
        help="the front door's port (default: the one this state dir used before, else 8000)",
    )  # fmt: skip
    up.add_argument("--timeout", type=float, default=90.0)
    up.add_argument("--minutes", type=float, default=6.0, help="demo length (with --demo)")
    up.add_argument("--exit", action="store_true", help="with --demo: stop when it is done")
    up.add_argument(
        "--cluster",
        type=int,
        default=0,
        help="run N local JetStream nodes (R-N streams)",
    )
    up.set_defaults(fn=_up)

    demo = sub.add_parser("demo", help="the Sóc Trăng 2023 campaign on an accelerated clock")
    demo.add_argument("--state-dir", default=os.environ.get("PARINDEX_STATE_DIR", ".parindex-demo"))
    demo.add_argument("--minutes", type=float, default=6.0, help="wall minutes for 20/09–07/10")
    demo.add_argument("--exit", action="store_true", help="stop when the demo is done")
    demo.set_defaults(fn=_demo)

    con = sub.add_parser("contracts", help="regenerate contracts/schemas and asyncapi.json")
    con.add_argument("--out", help="directory (default: the contracts folder)")
    con.set_defaults(fn=_contracts)

    nats_default = os.environ.get("PARINDEX_NATS_URL", "nats://127.0.0.1:4222")
    pg_default = os.environ.get("PARINDEX_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/")
    bak = sub.add_parser("backup", help="copy both streams and every service database to DIR")
    bak.add_argument("--to", required=True)
    bak.add_argument("--nats-url", default=nats_default)
    bak.add_argument("--database-url", default=pg_default)
    bak.set_defaults(fn=_backup)

    res = sub.add_parser("restore", help="replay a backup into an EMPTY NATS and PostgreSQL")
    res.add_argument("--from", dest="source", required=True)
    res.add_argument("--nats-url", default=nats_default)
    res.add_argument("--database-url", default=pg_default)
    res.add_argument(
        "--replicas", type=int, default=int(os.environ.get("PARINDEX_STREAM_REPLICAS", "1"))
    )
    res.set_defaults(fn=_restore)

    reb = sub.add_parser("rebuild", help="drop a service's projections and replay the log")
    reb.add_argument("service", choices=SERVICE_CLIS)
    reb.set_defaults(fn=_rebuild)

    hea = sub.add_parser(
        "health", help="is the log writable: a stream leader and a current replica"
    )
    hea_sub = hea.add_subparsers(dest="what", required=True)
    hea_stream = hea_sub.add_parser("stream", help="the PARINDEX stream, from /jsz of each node")
    hea_stream.add_argument(
        "--monitor",
        default=os.environ.get("PARINDEX_NATS_MONITOR_URLS", "http://127.0.0.1:8222"),
        help="comma-separated monitoring URLs of the NATS nodes (http://nats-1:8222,...)",
    )
    hea.set_defaults(fn=_health)

    dl = sub.add_parser("deadletters", help="events a projection could not apply, and why")
    dl_sub = dl.add_subparsers(dest="action", required=True)
    dl_list = dl_sub.add_parser("list", help="the newest dead letters")
    dl_list.add_argument("--limit", type=int, default=50)
    dl_list.add_argument("--consumer", help="only this consumer (identity, survey, ...)")
    dl_show = dl_sub.add_parser("show", help="one dead letter with its message")
    dl_show.add_argument("seq", type=int, help="its sequence in the dead-letter stream")
    dl.set_defaults(fn=_deadletters)

    for name in SERVICE_CLIS:  # each service adds its own commands (services/<name>/cli.py)
        try:
            module = importlib.import_module(f"services.{name}.cli")
        except ModuleNotFoundError as exc:
            if exc.name != f"services.{name}.cli":
                raise
            continue
        module.register(sub)

    args = parser.parse_args(argv)
    return int(args.fn(args))


if __name__ == "__main__":
    sys.exit(main())
