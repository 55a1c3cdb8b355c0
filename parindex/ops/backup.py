"""Backup and restore of the whole system: both streams and every service's database.

The streams are written message by message (subject, headers, data, stream sequence) to one
JSON-lines file per stream. The log refuses delete and purge, so its sequences run 1..N with no
gap, and replaying the file in order into an EMPTY stream gives every message its old sequence
back — which the projection offsets in the restored databases rely on (docs/architecture.md,
decision 21). Restore checks each acknowledged sequence against the file and stops on the
first mismatch. Databases go through pg_dump/pg_restore in custom format.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import nats
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts import subjects
from parindex.bus.connection import ensure_streams

STREAMS = (subjects.EVENTS_STREAM, subjects.DLQ_STREAM)
SERVICES = ("identity", "survey", "scoring", "notify")
# Publish preconditions were checked when the message was first written; on replay into an
# empty stream in the original order they hold by construction, and they are not data.
_DROP_HEADER_PREFIX = "Nats-Expected-"


class RestoreError(RuntimeError):
    """The target is not empty, or a replayed message did not get its original sequence."""


@dataclass(frozen=True)
class Summary:
    messages: dict[str, int]
    databases: list[str]


def _pg_tool(name: str) -> str:
    try:
        from pgserver._commands import POSTGRES_BIN_PATH

        candidate = Path(POSTGRES_BIN_PATH) / name
        if candidate.exists():
            return str(candidate)
    except ImportError:  # pragma: no cover - a system PostgreSQL client instead
        pass
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found (pip install pgserver, or a PostgreSQL client)")
    return found


def _libpq_url(server_url: str, dbname: str) -> str:
    parts = urlsplit(server_url)
    return urlunsplit(("postgresql", parts.netloc, f"/{dbname}", parts.query, ""))


def _databases(server_url: str) -> list[str]:
    out = subprocess.run(
        [
            _pg_tool("psql"),
            _libpq_url(server_url, "postgres"),
            "-Atc",
            "SELECT datname FROM pg_database",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return [f"parindex_{s}" for s in SERVICES if f"parindex_{s}" in out]


async def _dump_stream(js: JetStreamContext, stream: str, path: Path) -> int:
    # One get per sequence: simple and exact (≈ 1–2k messages/s); a big log would want an
    # ordered consumer instead.
    info = await js.stream_info(stream)
    count = 0
    with path.open("w") as out:
        for seq in range(info.state.first_seq or 1, info.state.last_seq + 1):
            try:
                msg = await js.get_msg(stream, seq)
            except NotFoundError:  # cannot happen on the log (deny_delete); kept for the DLQ
                continue
            row = {
                "seq": msg.seq,
                "subject": msg.subject,
                "headers": dict(msg.headers or {}),
                "data": base64.b64encode(msg.data or b"").decode(),
            }
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


async def _backup_streams(to: Path, nats_url: str, connect: dict) -> dict[str, int]:
    nc = await nats.connect(servers=[u.strip() for u in nats_url.split(",")], **connect)
    try:
        js = nc.jetstream()
        return {s: await _dump_stream(js, s, to / f"{s}.jsonl") for s in STREAMS}
    finally:
        await nc.close()


def backup(nats_url: str, database_url: str, to: Path, **connect: object) -> Summary:
    """Write both streams and every service database under `to` (created; must be empty)."""
    to.mkdir(parents=True, exist_ok=True)
    if any(to.iterdir()):
        raise FileExistsError(f"{to} is not empty")
    dbs = _databases(database_url)
    for db in dbs:
        subprocess.run(
            [
                _pg_tool("pg_dump"),
                "-Fc",
                "-f",
                str(to / f"{db}.dump"),
                _libpq_url(database_url, db),
            ],
            check=True,
        )
    # Databases first, then the log: every projection cursor in the dumps then points inside the
    # saved log, so restored services resume and catch up. The other order could leave a cursor
    # past the restored log's end, and the projection would skip the next events written.
    counts = asyncio.run(_backup_streams(to, nats_url, connect))
    (to / "manifest.json").write_text(json.dumps({"messages": counts, "databases": dbs}, indent=2))
    return Summary(counts, dbs)


async def _replay(js: JetStreamContext, stream: str, path: Path) -> int:
    info = await js.stream_info(stream)
    if info.state.last_seq:
        raise RestoreError(f"stream {stream} is not empty (last sequence {info.state.last_seq})")
    count = 0
    with path.open() as rows:
        for line in rows:
            row = json.loads(line)
            headers = {
                k: v for k, v in row["headers"].items() if not k.startswith(_DROP_HEADER_PREFIX)
            }
            ack = await js.publish(
                row["subject"], base64.b64decode(row["data"]), headers=headers or None
            )
            if ack.seq != row["seq"]:
                raise RestoreError(f"{stream}: message {row['seq']} landed at {ack.seq}")
            count += 1
    return count


async def _restore_streams(
    source: Path, nats_url: str, replicas: int, connect: dict
) -> dict[str, int]:
    nc = await nats.connect(servers=[u.strip() for u in nats_url.split(",")], **connect)
    try:
        js = nc.jetstream()
        await ensure_streams(js, replicas)
        return {s: await _replay(js, s, source / f"{s}.jsonl") for s in STREAMS}
    finally:
        await nc.close()


def restore(
    nats_url: str, database_url: str, source: Path, replicas: int = 1, **connect: object
) -> Summary:
    """Replay a backup into an empty NATS and an empty PostgreSQL; then start the services."""
    manifest = json.loads((source / "manifest.json").read_text())
    existing = _databases(database_url)
    if existing:
        raise RestoreError(f"databases already exist: {', '.join(existing)}")
    counts = asyncio.run(_restore_streams(source, nats_url, replicas, connect))
    for db in manifest["databases"]:
        subprocess.run(
            [
                _pg_tool("pg_restore"),
                "--create",
                "--no-owner",
                "-d",
                _libpq_url(database_url, "postgres"),
                str(source / f"{db}.dump"),
            ],
            check=True,
        )
    return Summary(counts, list(manifest["databases"]))
