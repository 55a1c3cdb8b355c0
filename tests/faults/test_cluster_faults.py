"""The fault matrix of issue #19 on a real three-node JetStream cluster with the four services.

The stack is what `parindex up --cluster 3` runs: three locked-down nats-server nodes with the
single node's accounts (parindex.runtime.cluster.locked_cluster), R3 streams, PostgreSQL and the
services as processes. For each fault a fresh group of respondents submits ballots over HTTP,
retrying like the ballot page with the same client_submission_id, while the fault is injected:

  kill -9 the stream leader · kill -9 two nodes · kill -9 all three, then restart them ·
  SIGSTOP the leader until another is elected, then SIGCONT · a power loss (all three killed at
  the same instant; every node fsyncs before acknowledging, checked on /varz)

After each: every ballot answered 201 is in the log exactly once and no ballot is there that
nobody got a 201 for; no answer was a 5xx other than 503; scoring's live projection equals a
replay of the log (the audit). At the end survey's projection, rebuilt from the log with
`parindex rebuild survey`, equals what it was. (docs/architecture.md, decisions 21, 23, 24, 26.)

What this does not do: drop the page cache a real power cut loses. kill -9 keeps what the
kernel has buffered; what makes a power loss safe is that nothing is acknowledged before fsync
(`sync_interval: always`), which the test reads back from every node, and which
tests/faults/test_power_loss.py proves with the page cache dropped (decision 36).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from contracts import subjects
from parindex.bus.connection import connect
from parindex.bus.publish import TRANSIENT
from parindex.cli import main
from parindex.ops.health import stream_details, stream_health
from parindex.runtime.cluster import NatsCluster, locked_cluster
from parindex.runtime.embedded import free_port
from parindex.runtime.up import Stack
from parindex.settings import Settings, database_url_for
from parindex.web.auth import COOKIE, Principal, issue_token, load_or_create_private_key
from services.identity.service import key_path
from services.scoring.audit import audit
from services.survey.secrecy import pseudonym
from tests.faults.test_faults import (
    Outcome,
    Person,
    _all_ready,
    _cli,
    _registered,
    _respondent_list,
    _submit,
)
from tests.ops.test_rebuild import _tables
from tests.survey.test_service import small_campaign

pytestmark = pytest.mark.faults

PER_FAULT = 10
SPREAD_S = 3.0
FAULT_AT_S = 1.0
FAULTS = [
    "kill -9 the leader",
    "kill -9 two nodes",
    "kill -9 all three",
    "SIGSTOP the leader",
    "power loss",
]


@pytest.fixture
def cluster_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    state = tmp_path / "state"
    state.mkdir()
    cluster, users = locked_cluster(state.resolve())
    monkeypatch.setenv("PARINDEX_STREAM_REPLICAS", "3")  # the provisioner makes R3 streams
    stack = Stack(
        state_dir=state,
        port=free_port(),
        nats_url=cluster.url,
        nats_users=users,
        extra_env={
            "PARINDEX_CLOCK_START": "2023-09-25T03:00:00+00:00",
            "PARINDEX_CLOCK_SPEED": "1",
            "PARINDEX_CLOCK_EPOCH": f"{time.time():.3f}",
            "PARINDEX_STREAM_REPLICAS": "3",
        },
    )
    try:
        cluster.start()
        stack.start(timeout=120)
        yield cluster, stack
    finally:
        stack.stop()
        cluster.stop()


async def _leader(cluster: NatsCluster, but: str | None = None) -> str | None:
    """The stream leader as the monitoring endpoints of the nodes (all but `but`) report it:
    a client connection to a paused node would hang instead of answering."""

    def ask() -> str | None:
        for node in cluster.nodes:
            if node.name == but or node.proc is None or node.proc.poll() is not None:
                continue
            try:
                streams = stream_details(f"http://127.0.0.1:{node.monitor_port}", 1.0)
            except (OSError, ValueError):
                continue
            for st in streams:
                leader = (st.get("cluster") or {}).get("leader")
                if st.get("name") == subjects.EVENTS_STREAM and leader and leader != but:
                    return str(leader)
        return None

    return await asyncio.to_thread(ask)


async def _healthy(cluster: NatsCluster) -> bool:
    return (await asyncio.to_thread(stream_health, cluster.monitor_urls, timeout=1.0)).ok


async def _until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        await asyncio.sleep(0.1)


async def _inject(cluster: NatsCluster, fault: str) -> None:
    leader = await _until(lambda: _leader(cluster), 30, "a stream leader")
    others = [n.name for n in cluster.nodes if n.name != leader]
    if fault == "kill -9 the leader":
        await asyncio.to_thread(cluster.kill, leader)
        await _until(lambda: _leader(cluster, but=leader), 30, "a new leader")
        await asyncio.to_thread(cluster.restart, leader)
    elif fault == "kill -9 two nodes":
        for name in (leader, others[0]):
            await asyncio.to_thread(cluster.kill, name)
        for name in (leader, others[0]):
            await asyncio.to_thread(cluster.restart, name)
    elif fault == "kill -9 all three":
        for node in cluster.nodes:
            await asyncio.to_thread(cluster.kill, node.name)
        for node in cluster.nodes:
            await asyncio.to_thread(cluster.restart, node.name)
    elif fault == "SIGSTOP the leader":
        cluster.pause(leader)
        try:
            await _until(lambda: _leader(cluster, but=leader), 30, "a leader but the paused")
        finally:
            cluster.resume(leader)
    elif fault == "power loss":
        await asyncio.gather(*(asyncio.to_thread(cluster.kill, n.name) for n in cluster.nodes))
        for node in cluster.nodes:
            await asyncio.to_thread(cluster.restart, node.name)
    else:  # pragma: no cover
        raise ValueError(fault)


async def _ballot_counts(js, campaign_id: str) -> Counter | None:
    """Ballots per pseudonym subject, from the stream's per-subject counts in one request (a
    consumer's fetch could stop early on a slow cluster); None on a transient error."""
    prefix = subjects.ballot(campaign_id, "")
    try:
        info = await js.stream_info(subjects.EVENTS_STREAM, subjects_filter=prefix + "*")
    except TRANSIENT:
        return None
    counts = Counter({s[len(prefix) :]: n for s, n in (info.state.subjects or {}).items()})
    return counts or None


def _server_errors(outcomes: list[Outcome]) -> list[str]:
    """Every 5xx but 503 (the bus unavailable, decision 23) is a bug."""
    return [k for o in outcomes for k in o.errors if k.startswith("http 5") and k != "http 503"]


@pytest.mark.timeout(240)
async def test_cluster_faults_lose_and_double_nothing(
    cluster_stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster, stack = cluster_stack
    async with httpx.AsyncClient() as http:  # an ack means on disk on every node that acked
        for node in cluster.nodes:
            varz = (await http.get(f"http://127.0.0.1:{node.monitor_port}/varz")).json()
            assert varz["jetstream"]["config"]["sync_always"] is True, node.name
    campaign = small_campaign("cluster-faults")
    env = dict(os.environ) | stack.envs["identity"]
    ballot_key = stack.envs["survey"]["PARINDEX_BALLOT_KEY"]
    camp_file = tmp_path / "campaign.json"
    camp_file.write_text(json.dumps(campaign.model_dump(mode="json"), ensure_ascii=False))
    await asyncio.to_thread(_cli, env, "campaign", "load", str(camp_file))
    lst = tmp_path / "respondents.csv"
    _respondent_list(lst, PER_FAULT * len(FAULTS))
    await asyncio.to_thread(_cli, env, "respondents", "import", str(lst), "--campaign", campaign.id)

    settings = Settings(
        nats_url=cluster.url,
        database_url=stack.database_url or "",
        nats_user="auditor",
        nats_password=stack.nats_users["auditor"],
    )
    nc = await connect(settings, "cluster-fault-test")
    js = nc.jetstream(timeout=2)
    key = load_or_create_private_key(key_path(stack.state_dir))
    survey = f"http://{stack.host}:{stack.ports['survey']}"
    acked: set[str] = set()
    report_lines: list[str] = []
    try:

        async def registered() -> list[Person]:
            people = await _registered(js, campaign.id)
            return people if len(people) == PER_FAULT * len(FAULTS) else []

        people = await _until(registered, 30, "every respondent registered")
        cookies = {
            p.respondent_id: issue_token(
                key,
                Principal(
                    subject=p.respondent_id,
                    role="respondent",
                    campaign_id=campaign.id,
                    unit_code=p.unit_code,
                    form_code=p.form_code,
                ),
            )
            for p in people
        }
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=PER_FAULT + 10)) as http:
            last = people[-1]

            async def wave_open() -> bool:
                r = await http.get(
                    f"{survey}/api/form",
                    headers={"Cookie": f"{COOKIE}={cookies[last.respondent_id]}"},
                )
                return r.status_code == 200 and bool(r.json()["open"])

            await _until(wave_open, 30, "survey sees the open wave")

            for i, fault in enumerate(FAULTS):
                group = people[i * PER_FAULT : (i + 1) * PER_FAULT]
                t0 = time.monotonic()
                load = [
                    asyncio.create_task(
                        _submit(
                            http,
                            survey,
                            cookies[p.respondent_id],
                            p,
                            f"tab-{p.respondent_id}",
                            SPREAD_S * k / len(group),
                        )
                    )
                    for k, p in enumerate(group)
                ]
                await asyncio.sleep(max(0.0, FAULT_AT_S - (time.monotonic() - t0)))
                await _inject(cluster, fault)
                outcomes = await asyncio.gather(*load)
                await _until(lambda: _healthy(cluster), 60, f"{fault}: stream healthy again")
                await _until(lambda: _all_ready(http, stack), 60, f"{fault}: services ready")

                failed = [o for o in outcomes if o.receipt is None]
                assert not failed, f"{fault}: {len(failed)} clients never got 201: {failed[:3]}"
                assert not _server_errors(outcomes), f"{fault}: {_server_errors(outcomes)}"
                acked |= {pseudonym(ballot_key, campaign.id, p.respondent_id) for p in group}
                log = await _until(lambda: _ballot_counts(js, campaign.id), 30, "the log read")
                doubled = {k: n for k, n in log.items() if n > 1}
                assert not doubled, f"{fault}: ballots twice in the log: {doubled}"
                assert not acked - set(log), f"{fault}: acknowledged ballots lost"
                assert not set(log) - acked, f"{fault}: ballots in the log nobody got 201 for"

                async def replay_equal() -> bool:
                    try:
                        report = await audit(nc, settings, campaign.id, compare_live=True)
                    except TRANSIENT:  # the test's own connection may still be failing over
                        return False
                    return report.ok

                await _until(replay_equal, 45, f"{fault}: scoring equal to a replay")
                retries = sum(o.attempts - 1 for o in outcomes)
                n503 = sum(o.errors.get("http 503", 0) for o in outcomes)
                report_lines.append(
                    f"{fault}: {len(group)} acked, {len(log)} in log, {retries} retries, "
                    f"{n503} x 503, {time.monotonic() - t0:.1f} s"
                )
    finally:
        await nc.close()
        print("\n" + "\n".join(report_lines))

    # Survey's projection after all this equals a rebuild from the log (decision 26).
    stack.procs["survey"].terminate()
    await asyncio.to_thread(stack.procs["survey"].wait, 20)
    url = database_url_for(stack.database_url or "", "parindex_survey")
    before = await _tables(url)
    monkeypatch.setenv("PARINDEX_NATS_URL", cluster.url)
    monkeypatch.setenv("PARINDEX_DATABASE_URL", stack.database_url or "")
    monkeypatch.setenv("PARINDEX_STATE_DIR", str(stack.state_dir))
    assert await asyncio.to_thread(main, ["rebuild", "survey"]) == 0
    assert await _tables(url) == before
