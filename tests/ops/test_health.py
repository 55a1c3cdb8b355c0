"""`parindex health stream` judges one node's /jsz view of the log (decision 26)."""

from __future__ import annotations

import pytest

from parindex.ops.health import judge, stream_health
from parindex.runtime.embedded import free_port

pytestmark = pytest.mark.unit


def _stream(leader: str, replicas: list[tuple[str, bool, float]], r: int = 3) -> dict:
    return {
        "name": "PARINDEX",
        "config": {"num_replicas": r},
        "cluster": {
            "leader": leader,
            "replicas": [{"name": n, "current": c, "active": int(s * 1e9)} for n, c, s in replicas],
        },
    }


def test_a_leader_and_a_fresh_current_follower_is_healthy() -> None:
    verdict = judge(_stream("nats-1", [("nats-2", True, 0.5), ("nats-3", False, 0.4)]))
    assert verdict.ok and "current nats-2" in verdict.detail


def test_no_leader_is_unhealthy() -> None:
    assert not judge(_stream("", [("nats-2", True, 0.5), ("nats-3", True, 0.4)])).ok


def test_followers_not_heard_from_are_not_current() -> None:
    # The leader keeps calling dead followers "current" until it steps down.
    verdict = judge(_stream("nats-1", [("nats-2", True, 9.0), ("nats-3", True, 9.0)]))
    assert not verdict.ok and "no current follower" in verdict.detail


def test_the_leader_listed_among_replicas_does_not_count() -> None:
    # A follower's view lists the other peers, the leader among them.
    assert not judge(_stream("nats-3", [("nats-2", False, 0.3), ("nats-3", True, 0.2)])).ok


def test_a_single_replica_stream_is_healthy_with_its_server() -> None:
    assert judge({"name": "PARINDEX", "config": {"num_replicas": 1}}).ok


def test_unreachable_nodes_are_unhealthy_and_named() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    verdict = stream_health([url], timeout=0.5)
    assert not verdict.ok and url in verdict.detail
