"""`parindex health stream`: does the log have a leader and a current replica right now?

JetStream being enabled says nothing about the log: during the issue-19 run a replica stayed
behind for minutes and an election left the stream without a leader while `js-enabled-only`
said healthy. This asks each node's monitoring endpoint (`/jsz?accounts=true&streams=true`)
about the PARINDEX stream and is healthy only when some node reports a leader and, for a
replicated stream, at least one follower that is current (a quorum of an R3 stream)
(docs/architecture.md, decision 26). Standard library only, so it runs in any image with Python.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass

from contracts import subjects

FRESH_NS = 4_000_000_000  # a follower heard from within 4 s (heartbeats: every 1 s)


@dataclass(frozen=True)
class StreamHealth:
    ok: bool
    detail: str


def stream_details(monitor_url: str, timeout: float) -> list[dict]:
    """Every stream one node reports on /jsz, with its cluster view and config."""
    url = f"{monitor_url.rstrip('/')}/jsz?accounts=true&streams=true&config=true"
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - an operator's URL
        data = json.load(resp)
    out: list[dict] = []
    for account in data.get("account_details") or []:
        out.extend(account.get("stream_detail") or [])
    return out


def judge(stream: dict) -> StreamHealth:
    """One node's view of the stream: a leader, and a current follower if it is replicated."""
    cluster = stream.get("cluster")
    replicas = int((stream.get("config") or {}).get("num_replicas") or 1)
    if not cluster or replicas <= 1:
        return StreamHealth(True, "single replica")
    leader = cluster.get("leader") or ""
    if not leader:
        return StreamHealth(False, "no leader")
    # A dead follower stays "current" in the leader's view until the leader steps down; how
    # long ago it was last heard from (`active`, ns) tells: raft heartbeats come every second.
    current = [
        r["name"]
        for r in cluster.get("replicas") or []
        if r.get("current") and r["name"] != leader and int(r.get("active") or 0) < FRESH_NS
    ]
    if not current:
        return StreamHealth(False, f"leader {leader}, no current follower")
    return StreamHealth(True, f"leader {leader}, current {', '.join(sorted(current))}")


def stream_health(
    monitor_urls: list[str], stream: str = subjects.EVENTS_STREAM, timeout: float = 3.0
) -> StreamHealth:
    """Healthy if any reachable node sees a leader and a current follower."""
    seen: list[str] = []
    for url in monitor_urls:
        try:
            details = [s for s in stream_details(url, timeout) if s.get("name") == stream]
        except (OSError, ValueError) as exc:
            seen.append(f"{url}: unreachable ({type(exc).__name__})")
            continue
        if not details:
            seen.append(f"{url}: no stream {stream}")
            continue
        verdict = judge(details[0])
        if verdict.ok:
            return StreamHealth(True, f"{stream}: {verdict.detail} (seen by {url})")
        seen.append(f"{url}: {verdict.detail}")
    return StreamHealth(False, f"{stream}: " + "; ".join(seen or ["no monitoring URL"]))
