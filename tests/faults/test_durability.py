"""Durability settings of the embedded nats-server, read back from the running server."""

from __future__ import annotations

from pathlib import Path

import httpx

from parindex.runtime.embedded import NatsServer


def test_embedded_nats_fsyncs_every_write(tmp_path: Path) -> None:
    """sync_interval: always (docs/architecture.md, decision 1): an ack means it is on disk."""
    server = NatsServer(tmp_path / "nats").start()
    try:
        varz = httpx.get(f"http://127.0.0.1:{server.monitor_port}/varz", timeout=5).json()
    finally:
        server.stop()
    assert varz["jetstream"]["config"]["sync_always"] is True
