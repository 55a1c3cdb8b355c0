"""Three JetStream nodes on loopback, configured like deploy/nats (cluster block, fsync always).

Tests and `parindex` operators use it to see what the compose cluster does on one machine: R3
streams, a leader that can be killed, acknowledged writes that must survive it
(docs/architecture.md, decision 21). Only the settings that matter for replication are copied
from deploy/nats/nats-*.conf; accounts stay open (the permission tests cover them).
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from parindex.runtime.children import spawn
from parindex.runtime.embedded import _stop, free_port, nats_server_binary, wait_port

NODE_CONF = """\
# written by parindex.runtime.cluster; settings as deploy/nats/nats-*.conf
server_name: {name}
listen: 127.0.0.1:{port}
jetstream {{
  store_dir: "{store}"
  sync_interval: always
}}
cluster {{
  name: parindex
  listen: 127.0.0.1:{cluster_port}
  routes: [
{routes}
  ]
}}
"""


@dataclass
class Node:
    name: str
    store_dir: Path
    port: int = field(default_factory=free_port)
    cluster_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


@dataclass
class NatsCluster:
    """`size` nats-server processes routed to each other; start, kill -9 and restart nodes."""

    root: Path
    size: int = 3
    nodes: list[Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.nodes:
            self.nodes = [
                Node(f"nats-{i}", self.root / f"nats-{i}") for i in range(1, self.size + 1)
            ]

    @property
    def url(self) -> str:
        """Every node, comma-separated, as PARINDEX_NATS_URL takes it."""
        return ",".join(n.url for n in self.nodes)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def start_node(self, node: Node, timeout: float = 30.0) -> None:
        node.store_dir.mkdir(parents=True, exist_ok=True)
        routes = "\n".join(f"    nats-route://127.0.0.1:{n.cluster_port}" for n in self.nodes)
        conf = node.store_dir / "nats.conf"
        conf.write_text(
            NODE_CONF.format(
                name=node.name,
                port=node.port,
                store=node.store_dir,
                cluster_port=node.cluster_port,
                routes=routes,
            )
        )
        log = open(node.store_dir / "nats.log", "ab")  # noqa: SIM115 - handed to the child
        node.proc = spawn(
            [nats_server_binary(), "-c", str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
        )
        wait_port(node.port, timeout, node.proc)

    def start(self, timeout: float = 30.0) -> NatsCluster:
        for node in self.nodes:
            self.start_node(node, timeout)
        return self

    def kill(self, name: str) -> None:
        """kill -9: the process dies without flushing anything (a crash, not a shutdown)."""
        _stop(self.node(name).proc, signal.SIGKILL, 10)

    def stop(self) -> None:
        for node in self.nodes:
            _stop(node.proc, signal.SIGTERM, 15)
