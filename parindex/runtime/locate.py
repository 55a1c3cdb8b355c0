"""Where a `parindex` command finds the stack it works on (docs/architecture.md, decision 35).

Order, for each address: the command line (--nats-url, --database-url), then the environment
(PARINDEX_NATS_URL, PARINDEX_DATABASE_URL: compose and other deployments), then the state dir's
endpoints.json written by `parindex up`. There is no silent localhost default: a command that
guessed nats://127.0.0.1:4222 once talked to somebody else's server. The NATS password is the
one of the command's own user from <state-dir>/secrets when that file exists (decision 18),
else the environment's PARINDEX_NATS_USER/PASSWORD. Before anything runs, each address is
probed, so a stopped stack is reported in one sentence instead of a driver's traceback or an
endless reconnect loop.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from parindex.bus.credentials import nats_secret_name, secret_path
from parindex.runtime import endpoints
from parindex.settings import Settings

STATE_DIR_DEFAULT = ".parindex"


class NoStack(RuntimeError):
    """Nothing to talk to: the message says what is missing and what to do."""


def add_state_dir(parser: argparse.ArgumentParser, default: str = STATE_DIR_DEFAULT) -> None:
    parser.add_argument(
        "--state-dir",
        default=os.environ.get("PARINDEX_STATE_DIR", default),
        help=f"the directory of a `parindex up` (endpoints.json, secrets/); default "
        f"$PARINDEX_STATE_DIR or {default}",
    )


def add_stack_options(
    parser: argparse.ArgumentParser, *, nats: bool = True, database: bool = True
) -> None:
    """--state-dir, and --nats-url / --database-url for the servers this command talks to."""
    add_state_dir(parser)
    if nats:
        parser.add_argument(
            "--nats-url",
            help="NATS server(s), comma-separated; default $PARINDEX_NATS_URL, else the state "
            "dir's endpoints.json",
        )
    if database:
        parser.add_argument(
            "--database-url",
            help="PostgreSQL server URL without a database name; default "
            "$PARINDEX_DATABASE_URL, else the state dir's endpoints.json",
        )


def _pick(explicit: str | None, env: str, state_dir: Path, key: str) -> str | None:
    return explicit or os.environ.get(env) or endpoints.value(state_dir, key)


def _missing(state_dir: Path, what: str, option: str) -> NoStack:
    if not (state_dir / endpoints.FILE).exists():
        where = f"nothing runs in {state_dir} (no {endpoints.FILE})"
    else:
        where = f"{state_dir / endpoints.FILE} names no {what}"
    return NoStack(
        f"parindex: {where}.\nStart it with `parindex up --state-dir {state_dir}`, "
        f"or pass --state-dir of a running stack, or {option}."
    )


def settings_for(
    args: argparse.Namespace, user: str | None, *, nats: bool = True, database: bool = True
) -> Settings:
    """Settings that reach the stack of args.state_dir as NATS `user`; NoStack if none is there.

    `nats` / `database`: which servers the command needs (and so which must be found and up).
    """
    state_dir = Path(args.state_dir)
    base = dataclasses.replace(Settings(), state_dir=state_dir)
    if nats:
        url = _pick(getattr(args, "nats_url", None), "PARINDEX_NATS_URL", state_dir, "nats_url")
        if not url:
            raise _missing(state_dir, "NATS server", "--nats-url nats://HOST:4222")
        probe(url, "NATS", state_dir, "--nats-url")
        base = dataclasses.replace(base, nats_url=url)
        secret = secret_path(state_dir, nats_secret_name(user)) if user else None
        if secret is not None and secret.exists():
            base = dataclasses.replace(
                base, nats_user=str(user), nats_password=secret.read_text().strip()
            )
    if database:
        db = _pick(
            getattr(args, "database_url", None), "PARINDEX_DATABASE_URL", state_dir, "database_url"
        )
        if not db:
            raise _missing(state_dir, "database", "--database-url postgresql://USER@HOST:5432/")
        probe(db, "PostgreSQL", state_dir, "--database-url")
        base = dataclasses.replace(base, database_url=db)
    return base


def _address(url: str, default_port: int) -> tuple[str, int] | None:
    """host and port of a URL; None for a unix socket (`?host=/path`), which is not probed."""
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    if "host=" in parts.query and not parts.hostname:
        return None
    return parts.hostname or "127.0.0.1", parts.port or default_port


def probe(urls: str, what: str, state_dir: Path, option: str, timeout: float = 3.0) -> None:
    """NoStack unless at least one of the comma-separated addresses accepts a TCP connection."""
    default_port = 4222 if what == "NATS" else 5432
    tried = []
    for url in (u.strip() for u in urls.split(",") if u.strip()):
        address = _address(url, default_port)
        if address is None:
            return
        try:
            socket.create_connection(address, timeout=timeout).close()
            return
        except OSError as exc:
            tried.append(f"{address[0]}:{address[1]} ({exc.strerror or exc})")
    raise NoStack(
        f"parindex: no {what} answers at {', '.join(tried)}.\nIs the stack stopped? Start it "
        f"with `parindex up --state-dir {state_dir}`, or pass {option} of a running server."
    )
