"""Ports that stay put across restarts of one state directory (docs/architecture.md, decision 30).

E-mailed links carry the front door's address, so the first `parindex up` on a state directory
records the ports it chose in `<state>/ports.json` and every later run reuses them. The front
door never moves silently: if its port is taken, `up` stops with a message that says by what
and how to choose another. Internal ports (services, mail catcher) appear in no link, so a
taken one is replaced and recorded again.
"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from parindex.runtime.embedded import free_port

PORTS_FILE = "ports.json"
GATEWAY = "gateway"
DEFAULT_GATEWAY_PORT = 8000


class PortTaken(RuntimeError):
    """The front door's recorded (or requested) port is in use by another program."""


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen there now (SO_REUSEADDR, as uvicorn binds)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def read_ports(state_dir: Path) -> dict[str, int]:
    try:
        data = json.loads((state_dir / PORTS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): int(v) for k, v in data.items() if isinstance(v, int)}


def choose_ports(
    state_dir: Path,
    internal: Iterable[str],
    requested: int | None = None,
    host: str = "127.0.0.1",
    is_free: Callable[[int], bool] | None = None,
    warn: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """The gateway's port and one per internal name; recorded in <state>/ports.json."""
    free = is_free or (lambda p: port_free(p, host))
    say = warn or (lambda m: print(f"parindex: {m}", file=sys.stderr, flush=True))
    stored = read_ports(state_dir)
    path = state_dir / PORTS_FILE
    previous = stored.get(GATEWAY)
    if requested is not None:
        gateway = requested
        if not free(gateway):
            raise PortTaken(
                f"port {gateway} (--port) is in use by another program; choose another --port"
            )
        if previous is not None and previous != requested:
            say(
                f"the front door moves from port {previous} to {requested} (--port): links "
                f"already e-mailed from {state_dir} still point to port {previous}"
            )
    elif previous is not None:
        gateway = previous
        if not free(gateway):
            raise PortTaken(
                f"port {gateway}, the front door recorded in {path}, is in use by another "
                "program, and links already e-mailed point to it. Stop that program, or pass "
                f"--port N to move the front door (those links then stop working)."
            )
    else:  # first run: nothing mailed yet, any port will do
        gateway = DEFAULT_GATEWAY_PORT if free(DEFAULT_GATEWAY_PORT) else free_port()
    ports = {GATEWAY: gateway}
    taken = {gateway}
    for name in internal:
        port = stored.get(name)
        if port is None or port in taken or not free(port):
            if port is not None and port not in taken:
                say(f"port {port} ({name}) is taken; {name} moves (it is in no link)")
            port = free_port()
            while port in taken:
                port = free_port()
        ports[name] = port
        taken.add(port)
    if ports != {k: stored.get(k) for k in ports}:
        state_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(ports, indent=2) + "\n")
    return ports
