"""Three nodes, R3 streams: kill -9 the stream leader while publishing; no acked write lost."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from pathlib import Path

import nats
import pytest
from nats.errors import Error as NatsError

from contracts import subjects
from parindex.bus.connection import ensure_streams
from parindex.runtime.cluster import NatsCluster
from tests.waiting import eventually


async def _leader(js) -> str | None:
    try:
        info = await js.stream_info(subjects.EVENTS_STREAM)
    except NatsError:
        return None
    return info.cluster.leader if info.cluster else None


async def test_killing_the_leader_loses_no_acknowledged_message(tmp_path: Path) -> None:
    cluster = NatsCluster(tmp_path).start()
    try:
        nc = await nats.connect(
            servers=cluster.url.split(","), max_reconnect_attempts=-1, reconnect_time_wait=0.2
        )
        js = nc.jetstream(timeout=2)

        async def provisioned() -> bool:
            try:
                await ensure_streams(js, replicas=3)
                return True
            except (TimeoutError, NatsError):
                return False

        await eventually(provisioned, timeout=60)
        leader = await eventually(lambda: _leader(js), timeout=30)
        acked: dict[str, int] = {}
        subject = subjects.ballot("cluster-drill", "b")
        for i in range(300):
            msg_id = f"m-{i}-{uuid.uuid4().hex[:6]}"
            if i == 100:  # SIGKILL from another thread, while this publish is in flight
                killing = asyncio.get_running_loop().run_in_executor(None, cluster.kill, leader)
            for _ in range(60):  # retry like parindex.bus.publish: same Nats-Msg-Id
                try:
                    ack = await js.publish(
                        subject, msg_id.encode(), headers={"Nats-Msg-Id": msg_id}
                    )
                    acked[msg_id] = ack.seq
                    break
                except (TimeoutError, NatsError):
                    await asyncio.sleep(0.2)
        await killing
        assert cluster.node(leader).proc.poll() is not None
        assert len(acked) == 300
        new_leader = await eventually(lambda: _leader(js), timeout=30)
        assert new_leader != leader

        info = await js.stream_info(subjects.EVENTS_STREAM)
        seen: dict[str, int] = {}
        for seq in range(1, info.state.last_seq + 1):
            m = await js.get_msg(subjects.EVENTS_STREAM, seq)
            body = m.data.decode()
            assert body not in seen, f"{body} stored twice"
            seen[body] = seq
        assert set(acked) <= set(seen)
        assert all(seen[k] == v for k, v in acked.items())
        await nc.close()
    finally:
        cluster.stop()


async def test_the_cluster_of_up_has_the_single_nodes_users(tmp_path: Path) -> None:
    """`parindex up --cluster 3`: no anonymous access, the same users (decisions 18 and 26)."""
    from parindex.bus.connection import connect
    from parindex.ops.health import stream_health
    from parindex.provision import provision
    from parindex.runtime.cluster import locked_cluster
    from parindex.settings import Settings

    cluster, users = locked_cluster(tmp_path)
    cluster.start()
    try:
        with pytest.raises(NatsError):
            await nats.connect(cluster.url.split(","), allow_reconnect=False, connect_timeout=2)
        conf = (tmp_path / "cluster" / "nats-1" / "nats.conf").read_text()
        assert "include ./accounts.conf" in conf and "user: route" in conf
        assert not any(p in conf for p in users.values())  # passwords only in the environment

        def as_user(name: str) -> Settings:
            return Settings(nats_url=cluster.url, nats_user=name, nats_password=users[name])

        await provision(replace(as_user("provisioner"), stream_replicas=3), timeout=60)
        nc = await connect(as_user("auditor"), "test")
        js = nc.jetstream(timeout=2)
        info = await js.stream_info(subjects.EVENTS_STREAM)
        assert info.config.num_replicas == 3
        with pytest.raises(NatsError):  # the auditor reads the log, never writes it
            await js.publish(subjects.ballot("c", "p"), b"{}")
        await nc.close()
        verdict = await eventually(
            lambda: (v := stream_health(cluster.monitor_urls)).ok and v, timeout=30
        )
        assert "leader" in verdict.detail
    finally:
        cluster.stop()
