"""`parindex up` brings the stack up from nothing, refuses a second run, stops cleanly."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import nats
import pytest

from contracts import subjects
from parindex.runtime.embedded import free_port
from tests.child_env import child_env


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


def _campaign() -> Path:
    from services.survey.campaign_file import shipped_campaign_path

    return Path(shipped_campaign_path())


def _check_the_bus_is_locked_down(state: Path, url: str) -> None:
    """No anonymous client; a service user cannot shorten the log (docs/architecture.md, 18)."""
    secrets_dir = state / "secrets"
    for user in ("provisioner", "identity", "survey", "scoring", "notify", "auditor"):
        path = secrets_dir / f"nats_{user}"
        assert path.stat().st_mode & 0o777 == 0o600, path

    async def attack() -> None:
        with pytest.raises(Exception, match="(?i)authorization"):
            await nats.connect(url, allow_reconnect=False, connect_timeout=3)
        password = (secrets_dir / "nats_scoring").read_text().strip()
        nc = await nats.connect(
            url, user="scoring", password=password, inbox_prefix="_INBOX_scoring",
            allow_reconnect=False,
        )  # fmt: skip
        js = nc.jetstream(timeout=2)
        cfg = (await js.stream_info(subjects.EVENTS_STREAM)).config
        assert cfg.max_age in (0, None) and cfg.deny_delete and cfg.deny_purge
        shortened = dataclasses.replace(cfg, max_age=2.0, duplicate_window=1.0)
        with pytest.raises((nats.errors.Error, asyncio.TimeoutError)):
            await js.update_stream(shortened)
        with pytest.raises((nats.errors.Error, asyncio.TimeoutError)):
            await js.delete_stream(subjects.EVENTS_STREAM)
        assert (await js.stream_info(subjects.EVENTS_STREAM)).config.max_age in (0, None)
        await nc.close()

    asyncio.run(attack())


def _service_environments(state: Path) -> dict[str, dict[str, str]]:
    """The environment of each service process of this `up` (found by its state dir)."""
    out: dict[str, dict[str, str]] = {}
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        try:
            cmdline = (proc_dir / "cmdline").read_bytes().split(b"\0")
            raw = (proc_dir / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        env = dict(e.decode(errors="replace").partition("=")[::2] for e in raw if b"=" in e)
        if env.get("PARINDEX_STATE_DIR") != str(state.resolve()):
            continue
        for name in ("identity", "survey", "scoring", "notify"):
            if f"services.{name}".encode() in cmdline:
                out[name] = env
    return out


def _check_only_survey_has_the_ballot_key(state: Path) -> None:
    """The ballot key links people to ballots: only survey gets it (docs/architecture.md, 15)."""
    envs = _service_environments(state)
    assert set(envs) == {"identity", "survey", "scoring", "notify"}
    assert envs["survey"].get("PARINDEX_BALLOT_KEY")
    for name in ("identity", "scoring", "notify"):
        assert "PARINDEX_BALLOT_KEY" not in envs[name], name


def test_up_starts_everything_and_every_service_is_ready(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = child_env()
    cmd = [sys.executable, "-m", "parindex.cli", "up", "--state-dir", str(state)]
    # The first run on a free port (never a fixed one another run may hold); later runs reuse it.
    first = [*cmd, "--port", str(free_port())]
    proc = subprocess.Popen(
        first, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        printed = _wait_line(proc, "parindex is running", timeout=90)
        endpoints = json.loads((state / "endpoints.json").read_text())
        door = endpoints["gateway"]
        # One front door, printed, recorded and used for every person-facing link (decision 30).
        assert f"Open {door}/" in printed
        assert endpoints["open"] == f"{door}/"
        ports = json.loads((state / "ports.json").read_text())
        assert door == f"http://127.0.0.1:{ports['gateway']}"
        assert set(endpoints["services"]) == {"identity", "survey", "scoring", "notify"}
        assert set(endpoints["services"].values()) == {door}
        assert endpoints["nats_url"].startswith("nats://")
        assert endpoints["database_url"].startswith("postgresql://")
        assert httpx.get(endpoints["mail"] + "/api/messages", timeout=5).json() == []
        for name, url in endpoints["internal"].items():
            r = httpx.get(f"{url}/readyz", timeout=5)
            assert r.status_code == 200, (name, r.text)
            assert r.json()["checks"] == {"nats": True, "database": True, "projections": True}
        assert httpx.get(f"{door}/readyz", timeout=5).status_code == 404
        assert "csrf" in httpx.get(f"{door}/login", timeout=5).text
        envs = _service_environments(state)
        for name, service_env in envs.items():
            assert service_env["PARINDEX_PUBLIC_URL"] == door, name
        assert envs["notify"]["PARINDEX_NOTIFY_SURVEY_URL"] == f"{door}/"

        _check_the_bus_is_locked_down(state, endpoints["nats_url"])
        _check_only_survey_has_the_ballot_key(state)
        # The CLI finds its own NATS user in the state dir: the campaign is loaded as survey.
        cli_env = dict(env, PARINDEX_STATE_DIR=str(state))
        loaded = subprocess.run(
            [sys.executable, "-m", "parindex.cli", "campaign", "load", str(_campaign())],
            env=cli_env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert loaded.returncode == 0, loaded.stderr
        assert "defined" in loaded.stdout

        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode != 0
        assert "already running" in second.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    assert proc.returncode == 0
    for url in [door, *endpoints["internal"].values()]:
        try:
            httpx.get(f"{url}/healthz", timeout=1)
            raise AssertionError(f"{url} still answers after stop")
        except httpx.HTTPError:
            pass

    # Another program on the front door's port: `up` refuses to move the door silently.
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", int(door.rsplit(":", 1)[1])))
    squatter.listen()
    try:
        refused = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    finally:
        squatter.close()
    assert refused.returncode != 0
    assert "in use by another program" in refused.stderr and "--port" in refused.stderr

    # starts again on the same data
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        printed = _wait_line(proc, "parindex is running", timeout=90)
        # The same front door and the same ports: links already e-mailed still work.
        assert f"Open {door}/" in printed
        again = json.loads((state / "endpoints.json").read_text())
        assert (again["gateway"], again["internal"]) == (door, endpoints["internal"])
        assert "csrf" in httpx.get(f"{door}/login", timeout=5).text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
