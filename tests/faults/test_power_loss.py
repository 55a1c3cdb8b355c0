"""A power cut under load: every acknowledged ballot survives, because an ack means fsynced.

Each node's JetStream store lives on a lossy filesystem (tests/faults/lossyfs.py) that keeps
written-but-not-fsynced data in memory only. Ballots are published through the product's
publish path while the power fails: every node is SIGKILLed at once, then every filesystem
daemon, so all unsynced data is gone, as in a real power cut and unlike a plain kill -9. The
nodes restart on what was synced, and every message acknowledged before the cut must be in the
log at the sequence its ack named, with the same subject, id and bytes; nothing is there that
was never sent.

The negative control runs the same with nats-server's default-like `sync_interval: 2m` and
must lose acknowledged ballots: proof that the lossy layer drops what a real power cut drops,
so the positive test could fail (docs/architecture.md, decisions 1, 21 and 36).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import httpx
import nats
import pytest
from nats.errors import Error as NatsError
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from contracts import subjects
from contracts.events import Answer, BallotSubmitted, Envelope, encode, make
from parindex.bus.connection import ensure_streams
from parindex.bus.publish import publish_event
from parindex.runtime import embedded
from parindex.runtime.cluster import NatsCluster
from parindex.runtime.embedded import NatsServer
from tests.faults.lossyfs import LossyMount, MountRefused, unavailable
from tests.waiting import eventually

_MISSING = unavailable()
pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(_MISSING is not None, reason=_MISSING or ""),
]

CAMPAIGN = "power-loss"
WORKERS = 8  # publishes in flight at once, as concurrent ballot requests are
ACKED_BEFORE_CUT = 150


@dataclass
class Sent:
    subject: str
    event_id: str
    body: bytes


@dataclass
class Rig:
    """nats-server nodes whose store directories are lossy mounts."""

    nodes: list[NatsServer]
    disk: Path
    mounts: list[LossyMount] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.mounts = [LossyMount(self.disk / n.name, n.store_dir) for n in self.nodes]

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def start(self) -> None:
        for m in self.mounts:
            m.mount()
        for n in self.nodes:
            n.start()

    def power_loss(self) -> None:
        """Every node and every disk cache dies at the same instant."""
        procs = [n.proc for n in self.nodes if n.proc is not None and n.proc.poll() is None]
        for p in procs:
            os.kill(p.pid, signal.SIGKILL)
        for p in procs:
            p.wait(10)
        for m in self.mounts:
            m.power_loss()

    def sync_all(self) -> None:
        for m in self.mounts:
            m.sync_all()

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()
        for m in self.mounts:
            m.unmount()


def _rig(tmp_path: Path, size: int) -> Rig:
    if size == 1:
        return Rig([NatsServer(tmp_path / "nats-1", name="nats-1")], tmp_path / "disk")
    return Rig(NatsCluster(tmp_path / "cluster", size=size).nodes, tmp_path / "disk")


def _ballot(n: int) -> tuple[str, Envelope]:
    pseudonym = secrets.token_hex(16)
    payload = BallotSubmitted(
        ballot_id=f"b{n}",
        form_code="01",
        unit_code=None,
        submitted_on=date(2023, 9, 25),
        answers=[Answer(unit_code="U1", question_id="Q1", option_code=str(1 + n % 4))],
    )
    env = make(payload, campaign_id=CAMPAIGN, producer="power-loss-test")
    return subjects.ballot(CAMPAIGN, pseudonym), env


async def _load_then_cut(
    rig: Rig, replicas: int
) -> tuple[dict[int, Sent], dict[str, Sent], set[int]]:
    """Publish until ACKED_BEFORE_CUT are acknowledged, cut the power with more in flight.

    Halfway every disk is synced once, as the kernel's periodic writeback or nats-server's own
    sync interval would. Returns the acknowledged messages by the sequence their ack named,
    every message sent, and the sequences acknowledged before that sync.
    """
    nc = await nats.connect(rig.urls, max_reconnect_attempts=0, connect_timeout=5)
    js = nc.jetstream(timeout=5)

    async def provisioned() -> bool:  # a new cluster answers once it has a meta leader
        try:
            await ensure_streams(js, replicas)
        except (NatsError, TimeoutError):
            return False
        return True

    await eventually(provisioned, timeout=30, interval=0.2)
    acked: dict[int, Sent] = {}
    sent: dict[str, Sent] = {}
    enough, halfway = asyncio.Event(), asyncio.Event()
    cut = False
    counter = iter(range(10**9))

    async def worker() -> None:
        """Publish until a publish fails after the power went: the cut finds some in flight."""
        while True:
            subject, envelope = _ballot(next(counter))
            event_id = envelope.event_id
            sent[event_id] = Sent(subject, event_id, encode(envelope))  # the bytes published
            try:
                ack = await publish_event(js, subject, envelope, budget=2.0, timeout=1.0)
            except Exception:  # the power is gone: this one was never acknowledged
                if cut:
                    return
                raise
            # An ack read after the kill was still sent by a live server: it counts.
            acked[ack.seq] = sent[event_id]
            if len(acked) >= ACKED_BEFORE_CUT // 2:
                halfway.set()
            if len(acked) >= ACKED_BEFORE_CUT:
                enough.set()

    async def until(event: asyncio.Event) -> None:
        waiting = asyncio.create_task(event.wait())
        done, _ = await asyncio.wait(
            [waiting, *workers], timeout=45, return_when=asyncio.FIRST_COMPLETED
        )
        for task in done - {waiting}:
            task.result()  # a publish that failed before the cut is a failure of its own
        assert waiting in done, f"only {len(acked)} acknowledged in 45 s"

    workers = [asyncio.create_task(worker()) for _ in range(WORKERS)]
    try:
        await until(halfway)
        before_sync = set(acked)
        await asyncio.to_thread(rig.sync_all)
        await until(enough)
        cut = True
        await asyncio.to_thread(rig.power_loss)
        await asyncio.gather(*workers)
        return acked, sent, before_sync
    finally:
        for w in workers:
            w.cancel()
        try:  # the connection died with the power: closing it may fail, which is fine
            await asyncio.wait_for(nc.close(), 5)
        except (TimeoutError, NatsError, OSError):
            pass


async def _recovered(urls: list[str], settle_s: float) -> dict[int, tuple[str, str, bytes]] | None:
    """The log after restart, once its length held still for `settle_s`: seq -> message.

    An absent stream is an empty log; None if JetStream never settled within 40 s.
    """
    nc = await nats.connect(urls, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    js = nc.jetstream(timeout=2)
    try:
        seen: tuple[int, float] | None = None
        deadline = time.monotonic() + 40
        last: int | None = None
        while time.monotonic() < deadline:
            try:
                info = await js.stream_info(subjects.EVENTS_STREAM)
                led = info.cluster is None or bool(info.cluster.leader)
                now = info.state.last_seq if led else None
            except NotFoundError:
                now = 0
            except (NatsError, TimeoutError):
                now = None
            if now is not None and seen is not None and seen[0] == now:
                if time.monotonic() - seen[1] >= settle_s:
                    last = now
                    break
            elif now is not None:
                seen = (now, time.monotonic())
            await asyncio.sleep(0.2)
        if last is None:
            return None
        log: dict[int, tuple[str, str, bytes]] = {}
        for seq in range(1, last + 1):
            got: list[RawStreamMsg | None] = []

            async def read(seq: int = seq, got: list[RawStreamMsg | None] = got) -> bool:
                try:
                    got.append(await js.get_msg(subjects.EVENTS_STREAM, seq))
                except NotFoundError:
                    got.append(None)
                except (NatsError, TimeoutError):  # a leader change: ask again
                    return False
                return True

            await eventually(read, timeout=15, interval=0.2)
            if (msg := got[-1]) is not None:
                msg_id = (msg.headers or {}).get("Nats-Msg-Id", "")
                log[seq] = (msg.subject or "", msg_id, msg.data or b"")
        return log
    finally:
        await nc.close()


def _sync_always(rig: Rig) -> list[bool]:
    return [
        httpx.get(f"http://127.0.0.1:{n.monitor_port}/varz", timeout=5)
        .json()["jetstream"]["config"]
        .get("sync_always", False)
        for n in rig.nodes
    ]


async def _power_cut(tmp_path: Path, size: int):
    rig = _rig(tmp_path, size)
    t0 = time.monotonic()
    times: list[str] = []

    def mark(what: str) -> None:
        times.append(f"{what} {time.monotonic() - t0:.1f} s")

    try:
        try:
            await asyncio.to_thread(rig.start)
        except MountRefused as exc:
            pytest.skip(f"this machine does not let the test mount FUSE: {exc}")
        fsyncs = await asyncio.to_thread(_sync_always, rig)
        mark("started")
        acked, sent, before_sync = await _load_then_cut(rig, replicas=size)
        mark("cut")
        await asyncio.to_thread(rig.start)
        mark("restarted")
        log = await _recovered(rig.urls, settle_s=2.0)
        mark("read back")
        return fsyncs, acked, sent, before_sync, log
    finally:
        await asyncio.to_thread(rig.stop)
        print("\n" + ", ".join(times))


@pytest.mark.timeout(90)
@pytest.mark.parametrize("size", [3, 1], ids=["cluster-R3", "single-node"])
async def test_power_loss_keeps_every_acknowledged_ballot(tmp_path: Path, size: int) -> None:
    """With `sync_interval: always` (the product's), the cut loses no acknowledged event."""
    fsyncs, acked, sent, _, log = await _power_cut(tmp_path, size)
    assert fsyncs == [True] * size  # the product's setting (decision 1)
    assert len(acked) >= ACKED_BEFORE_CUT
    assert log is not None, "the stream did not come back (no steady leader) within 40 s"
    missing = [s for s, m in acked.items() if log.get(s) != (m.subject, m.event_id, m.body)]
    assert not missing, (
        f"{len(missing)} of {len(acked)} acknowledged ballots lost or changed in the power cut "
        f"(first sequences {sorted(missing)[:10]}); log has {len(log)}"
    )
    by_id = {m.event_id: m for m in sent.values()}
    foreign = [s for s, (subj, eid, body) in log.items() if by_id.get(eid) != Sent(subj, eid, body)]
    assert not foreign, f"messages in the log that were never sent: {foreign[:10]}"
    assert len({eid for _, eid, _ in log.values()}) == len(log), "a ballot is in the log twice"
    print(f"\n{size} node(s): {len(acked)} acked, {len(sent)} sent, {len(log)} after the cut")


@pytest.mark.timeout(90)
@pytest.mark.parametrize("size", [3, 1], ids=["cluster-R3", "single-node"])
async def test_without_fsync_the_same_cut_loses_acknowledged_ballots(
    tmp_path: Path, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Negative control: nats-server with a 2-minute sync interval loses acked ballots here."""
    conf = embedded.NATS_CONF.replace("sync_interval: always", "sync_interval: 2m")
    assert conf != embedded.NATS_CONF
    monkeypatch.setattr(embedded, "NATS_CONF", conf)
    fsyncs, acked, _, before_sync, log = await _power_cut(tmp_path, size)
    assert fsyncs == [False] * size
    came_back = log is not None
    log = log or {}  # a stream that never came back has lost them too
    kept = {s for s, m in acked.items() if log.get(s) == (m.subject, m.event_id, m.body)}
    state = f"{len(log)} messages in the log" if came_back else "the log never settled"
    print(
        f"\n{size} node(s), sync 2m: {len(acked)} acked, {len(kept)} kept after the cut, "
        f"{len(kept & before_sync)} of the {len(before_sync)} acked before the disks' sync; "
        + state
    )
    assert len(kept) < len(acked), "the lossy filesystem lost nothing: the test proves nothing"
