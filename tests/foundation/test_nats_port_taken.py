"""A nats-server whose port is taken dies; something else answering on that port must not pass
for it (two stacks starting at once once left a test run talking to the other run's bus and
hanging for ever)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from parindex.runtime.embedded import NatsServer, free_port


@pytest.mark.timeout(60)
def test_a_taken_port_is_an_error_not_somebody_elses_server(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()  # answers a TCP connect, as another nats-server would
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="address already in use"):
            NatsServer(tmp_path / "nats", port=port).start(timeout=30)
        assert time.monotonic() - started < 20


@pytest.mark.timeout(60)
def test_a_free_port_starts_and_is_ours(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats", port=free_port()).start(timeout=30)
    try:
        assert server.proc is not None and server.proc.poll() is None
        with socket.create_connection(("127.0.0.1", server.port), timeout=2) as c:
            assert c.recv(4) == b"INFO"
    finally:
        server.stop()


@pytest.mark.unit
@pytest.mark.timeout(30)
def test_a_port_handed_out_is_not_handed_out_again_before_anything_binds_it() -> None:
    """A stack picks its services' ports, then its nats-server's and PostgreSQL's, and binds
    them only later; a second pick of a still-unbound port once stopped scoring starting."""
    import random

    first = []
    for _ in range(300):
        random.seed(7)  # a test seeding the shared generator must not make picks repeat
        first.append(free_port())
    assert len(set(first)) == len(first)
