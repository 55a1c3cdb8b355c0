"""Servers started by the harness or `parindex up` die with their parent, even on SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.child_env import child_env

SCRIPT = """
import json, sys, time
from pathlib import Path
from parindex.runtime.embedded import NatsServer, PostgresServer
root = Path(sys.argv[1])
nats = NatsServer(root / "nats").start()
pg = PostgresServer(root / "pg" / "data").start()
print(json.dumps({"nats": nats.proc.pid, "postgres": pg.proc.pid}), flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose; its parent (init) reaps it.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.timeout(180)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux's")
def test_killing_the_parent_with_sigkill_leaves_no_server_behind(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert parent.stdout is not None
        pids = json.loads(parent.stdout.readline())
        assert all(_alive(p) for p in pids.values()), pids
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in pids.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = {name: pid for name, pid in pids.items() if _alive(pid)}
        assert not left, f"orphaned servers: {left}"
    finally:
        if parent.poll() is None:
            parent.kill()


@pytest.mark.timeout(120)
def test_a_server_started_from_a_worker_thread_outlives_that_thread(tmp_path: Path) -> None:
    """The parent-death signal follows the forking thread; ours is one that never ends."""
    import threading

    from parindex.runtime.embedded import NatsServer

    holder: list[NatsServer] = []
    worker = threading.Thread(target=lambda: holder.append(NatsServer(tmp_path).start()))
    worker.start()
    worker.join(60)
    server = holder[0]
    try:
        assert server.proc is not None
        # A child tied to the ended thread is killed at once: it must still be running 1 s later.
        with pytest.raises(subprocess.TimeoutExpired):
            server.proc.wait(1)
    finally:
        server.stop()


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


@pytest.mark.timeout(180)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux's")
def test_a_service_of_several_processes_leaves_none_behind_and_frees_its_port(
    tmp_path: Path, nats_url: str, pg_url: str
) -> None:
    """Survey with PARINDEX_SURVEY_WORKERS=2 (the deadline-day setting): uvicorn's workers held
    the service's socket after a SIGKILL of their parent, so a restart could not bind it."""
    import httpx

    from parindex.runtime.embedded import free_port

    port = free_port()
    env = child_env() | {
        "PARINDEX_NATS_URL": nats_url,
        "PARINDEX_DATABASE_URL": pg_url,
        "PARINDEX_BALLOT_KEY": "orphan-test-key",
        "PARINDEX_STATE_DIR": str(tmp_path),
        "PARINDEX_SURVEY_WORKERS": "2",
    }
    parent = subprocess.Popen(
        [sys.executable, "-m", "services.survey", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parents[2],
    )
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert parent.poll() is None, "survey exited"
            workers = [c for c in _children(parent.pid) if "spawn_main" in _cmdline(c)]
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                ready = False
            if ready and len(workers) == 2:
                break
            time.sleep(0.2)
        assert len(workers) == 2, f"workers: {workers}"
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 30
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [w for w in workers if _alive(w)], "orphaned survey workers"
        import socket

        with socket.socket() as s:  # as uvicorn binds: the port is free again
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        for w in workers:  # what the check above found left behind
            if _alive(w):
                os.kill(w, signal.SIGKILL)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
