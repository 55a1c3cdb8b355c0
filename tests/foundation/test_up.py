"""`parindex up` brings the stack up from nothing, refuses a second run, stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _wait_for_file(path: Path, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"parindex up exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"{path} not written within {timeout}s"
        time.sleep(0.1)


def _wait_line(proc: subprocess.Popen, needle: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()  # type: ignore[union-attr]  # started with stdout=PIPE
        if not line and proc.poll() is not None:
            break
        seen += line
        if needle in line:
            return seen
    raise AssertionError(f"{needle!r} not printed within {timeout}s; got:\n{seen}")


def test_up_starts_everything_and_every_service_is_ready(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARINDEX_")}
    cmd = [sys.executable, "-m", "parindex.cli", "up", "--state-dir", str(state)]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        _wait_line(proc, "parindex is running", timeout=90)
        endpoints = json.loads((state / "endpoints.json").read_text())
        assert set(endpoints["services"]) == {"identity", "survey", "scoring", "notify"}
        assert endpoints["nats_url"].startswith("nats://")
        assert endpoints["database_url"].startswith("postgresql://")
        assert httpx.get(endpoints["mail"] + "/api/messages", timeout=5).json() == []
        for name, url in endpoints["services"].items():
            r = httpx.get(f"{url}/readyz", timeout=5)
            assert r.status_code == 200, (name, r.text)
            assert r.json()["checks"] == {"nats": True, "database": True}

        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode != 0
        assert "already running" in second.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    assert proc.returncode == 0
    for url in endpoints["services"].values():
        try:
            httpx.get(f"{url}/healthz", timeout=1)
            raise AssertionError(f"{url} still answers after stop")
        except httpx.HTTPError:
            pass

    # starts again on the same data
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        _wait_line(proc, "parindex is running", timeout=90)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
