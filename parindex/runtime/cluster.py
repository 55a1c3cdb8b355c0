"""Three JetStream nodes on loopback, configured like deploy/nats (cluster block, fsync always).

Tests and `parindex` operators use it to see what the compose cluster does on one machine: R3
streams, a leader that can be killed, acknowledged writes that must survive it
(docs/architecture.md, decision 21). Each node is a parindex.runtime.embedded.NatsServer, the one
writer of nats.conf, with the same accounts and users as the single embedded server when given
them (`parindex up --cluster N` does; docs/architecture.md, decisions 18 and 26), and routes that
authenticate like deploy/nats's.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

from parindex.runtime.embedded import NatsServer, _stop, free_port

Node = NatsServer  # a node of the cluster (name nats-<i>, with cluster_port set)


@dataclass
class NatsCluster:
    """`size` nats-server processes routed to each other; start, kill -9, pause and restart them.

    `accounts` and `passwords` as NatsServer takes them (empty: open nodes, for tests of the
    log alone); `route_password` set: routes authenticate as user `route`.
    """

    root: Path
    size: int = 3
    accounts: str = ""
    passwords: dict[str, str] = field(default_factory=dict)
    route_password: str | None = None
    nodes: list[NatsServer] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.nodes:
            return
        cluster_ports = [free_port() for _ in range(self.size)]
        auth = f"route:{self.route_password}@" if self.route_password else ""
        routes = {
            f"NATS_ROUTE_{i}": f"nats-route://{auth}127.0.0.1:{p}"
            for i, p in enumerate(cluster_ports, start=1)
        }
        env = dict(self.passwords, **routes)
        if self.route_password:
            env["NATS_CLUSTER_PASSWORD"] = self.route_password
        self.nodes = [
            NatsServer(
                self.root / f"nats-{i}",
                name=f"nats-{i}",
                accounts=self.accounts,
                passwords=env,
                cluster_port=port,
                route_variables=list(routes),
            )
            for i, port in enumerate(cluster_ports, start=1)
        ]

    @property
    def url(self) -> str:
        """Every node, comma-separated, as PARINDEX_NATS_URL takes it."""
        return ",".join(n.url for n in self.nodes)

    @property
    def monitor_urls(self) -> list[str]:
        """Each node's monitoring endpoint (/healthz, /jsz), as `parindex health stream` reads."""
        return [f"http://127.0.0.1:{n.monitor_port}" for n in self.nodes]

    def node(self, name: str) -> NatsServer:
        return next(n for n in self.nodes if n.name == name)

    def start_node(self, node: NatsServer, timeout: float = 30.0) -> None:
        node.start(timeout)

    def start(self, timeout: float = 30.0) -> NatsCluster:
        for node in self.nodes:
            self.start_node(node, timeout)
        return self

    def kill(self, name: str) -> None:
        """kill -9: the process dies without flushing anything (a crash, not a shutdown)."""
        self.node(name).kill()

    def restart(self, name: str, timeout: float = 30.0) -> None:
        """Start a stopped or killed node again on its ports and store directory."""
        node = self.node(name)
        if node.proc is not None and node.proc.poll() is None:
            node.kill()
        node.start(timeout)

    def pause(self, name: str) -> None:
        """SIGSTOP: the node hangs (a stalled VM, a long GC pause) without closing anything."""
        proc = self.node(name).proc
        assert proc is not None
        os.kill(proc.pid, signal.SIGSTOP)

    def resume(self, name: str) -> None:
        proc = self.node(name).proc
        assert proc is not None
        os.kill(proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                os.kill(node.proc.pid, signal.SIGCONT)  # a paused node cannot handle SIGTERM
            _stop(node.proc, signal.SIGTERM, 15)


def locked_cluster(state_dir: Path, size: int = 3) -> tuple[NatsCluster, dict[str, str]]:
    """The nodes `parindex up --cluster N` runs: `up`'s accounts and users, authenticated routes.

    Returns the (not yet started) cluster and each NATS user's password, generated once into
    <state-dir>/secrets like the single node's (docs/architecture.md, decisions 18 and 26).
    """
    from parindex.bus import permissions
    from parindex.bus.credentials import ensure_secret, new_nats_password
    from parindex.runtime.up import nats_passwords

    users = nats_passwords(state_dir)
    cluster = NatsCluster(
        state_dir / "cluster",
        size=size,
        accounts=permissions.render_accounts(),
        passwords={f"NATS_{u.upper()}_PASSWORD": p for u, p in users.items()},
        route_password=ensure_secret(state_dir, "nats_cluster", new_nats_password),
    )
    return cluster, users
