"""`parindex up` supervises what it starts and stops all of it (docs/architecture.md, 20)."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import exc as sa_exc

from parindex.runtime.embedded import PostgresServer, free_port
from parindex.web import database_down
from tests.child_env import child_env


def eventually(check, timeout: float) -> None:
    """Sync twin of tests/waiting.py::eventually (these tests drive a subprocess)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"condition not met within {timeout}s"
        time.sleep(0.1)


def _up(state: Path) -> subprocess.Popen:
    return subprocess.Popen(
        # A free front-door port: never the default another run may hold.
        [sys.executable, "-m", "parindex.cli", "up", "--state-dir", str(state)]
        + ["--port", str(free_port())],
        stdout=open(state.parent / "up.out", "ab"),  # noqa: SIM115
        stderr=open(state.parent / "up.err", "ab"),  # noqa: SIM115 - a pipe nobody reads fills up
        env=child_env(),
    )


def _descendants(pid: int) -> set[int]:
    try:
        return {c.pid for c in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def _alive(pids: set[int]) -> set[int]:
    return {p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"}


def _sigterm_and_check(proc: subprocess.Popen, seen: set[int]) -> None:
    seen |= _descendants(proc.pid)
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)  # stops within a bound
    eventually(lambda: not _alive(seen), timeout=10)


@pytest.mark.timeout(110)
@pytest.mark.parametrize("moment", ["at once", "mid start-up"])
def test_sigterm_during_start_up_leaves_no_child(tmp_path: Path, moment: str) -> None:
    proc = _up(tmp_path / "state")
    seen: set[int] = set()
    if moment == "mid start-up":  # nats-server and PostgreSQL up, services not yet ready
        deadline = time.monotonic() + 60
        while not (tmp_path / "state" / "postgres" / "postgres.log").exists():
            assert time.monotonic() < deadline and proc.poll() is None
            seen |= _descendants(proc.pid)
            time.sleep(0.05)
        assert seen, "nats-server should be running by now"
    else:
        time.sleep(0.3)  # the interpreter is importing: the signal must still stop it
    _sigterm_and_check(proc, seen)


@pytest.mark.timeout(115)
def test_killed_children_come_back_and_sigterm_stops_all(tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc = _up(state)
    endpoints = state / "endpoints.json"
    eventually(lambda: endpoints.exists(), timeout=60)
    import json

    # Each service's own port: the front door does not route /readyz (decision 30).
    services = json.loads(endpoints.read_text())["internal"].values()

    def ready() -> bool:  # all four, as `parindex up` waits for before it supervises
        try:
            return all(httpx.get(f"{u}/readyz", timeout=2).status_code == 200 for u in services)
        except httpx.HTTPError:
            return False

    eventually(ready, timeout=60)
    eventually(lambda: "running" in (tmp_path / "up.out").read_text(), timeout=30)
    children = {p.pid: p for p in psutil.Process(proc.pid).children()}
    names = {pid: " ".join(p.cmdline()) for pid, p in children.items()}
    victims = [
        next(pid for pid, c in names.items() if "services.survey" in c),
        next(pid for pid, c in names.items() if "bin/postgres" in c),
        next(pid for pid, c in names.items() if "nats-server" in c),
        next(pid for pid, c in names.items() if "mailcatcher" in c),
        next(pid for pid, c in names.items() if "parindex.gateway" in c),
    ]
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    try:
        eventually(ready, timeout=80)
    except AssertionError:
        logs = state / "logs"
        raise AssertionError(
            (tmp_path / "up.err").read_text()[-3000:] + (logs / "survey.log").read_text()[-3000:]
        ) from None
    now = {p.pid for p in psutil.Process(proc.pid).children()}
    assert not set(victims) & now and len(now) >= len(children)
    log = (state / "logs" / "supervisor.log").read_text()
    assert "postgres restarted" in log and "survey restarted" in log, log
    assert "gateway restarted" in log, log
    _sigterm_and_check(proc, set())


def test_survey_answers_503_not_500_while_the_database_is_down() -> None:
    app = FastAPI()
    database_down.install(app)

    @app.get("/down")
    async def down() -> None:
        raise sa_exc.DBAPIError("SELECT 1", None, ConnectionRefusedError(111, "refused"))

    @app.get("/bug")
    async def bug() -> None:
        raise sa_exc.ProgrammingError("SELECT nope", None, ValueError("syntax"))

    client = TestClient(app, raise_server_exceptions=False)
    r = client.get("/down", headers={"accept": "application/json"})
    assert r.status_code == 503 and r.headers["retry-after"] and "database" in r.json()["detail"]
    page = client.get("/down", headers={"accept": "text/html"})
    assert page.status_code == 503 and "Cơ sở dữ liệu" in page.text and "database" not in page.text
    assert client.get("/bug").status_code == 500


def _another_process_connects(port: int) -> bool:
    res = subprocess.run(
        [sys.executable, "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}))"],
        capture_output=True,
    )
    return res.returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another user")
@pytest.mark.timeout(90)
def test_postgres_starts_under_a_private_directory_without_widening_it(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    parents = [private, *private.parents]
    before = {p: stat.S_IMODE(p.stat().st_mode) for p in parents}
    server = PostgresServer(private / "state" / "postgres" / "data").start()
    try:
        assert _another_process_connects(server.port)
    finally:
        server.stop()
    assert {p: stat.S_IMODE(p.stat().st_mode) for p in parents} == before
    assert (private / "state" / "postgres" / "data" / "PG_VERSION").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another user")
@pytest.mark.timeout(90)
def test_postgres_runs_from_a_virtualenv_behind_a_private_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The binaries find their libraries through their real path: behind a 700 directory the
    unprivileged user cannot run them in place (initdb exited 127), so root stages a copy."""
    import pgserver._commands

    from parindex.runtime import embedded

    real = Path(pgserver._commands.POSTGRES_BIN_PATH).parent  # site-packages/pgserver/pginstall
    private = tmp_path / "home"
    private.mkdir(mode=0o700)
    site = private / "venv" / "site-packages"
    for src in (real, real.parent.parent / "pgserver.libs"):
        shutil.copytree(src, site / src.relative_to(real.parent.parent), symlinks=True)
    monkeypatch.setattr(pgserver._commands, "POSTGRES_BIN_PATH", site / "pgserver/pginstall/bin")
    private_lib = next((site / "pgserver.libs").glob("libpq*"))  # as a umask of 077 leaves it
    private_lib.chmod(0o700)
    cache = Path(tempfile.mkdtemp(prefix="parindex-staged-"))  # /tmp: reachable by anyone
    cache.chmod(0o755)
    if os.statvfs(cache).f_flag & os.ST_NOEXEC or os.statvfs(tmp_path).f_flag & os.ST_NOEXEC:
        shutil.rmtree(cache)
        pytest.skip("the temporary directory is mounted noexec: no binary can run from it")
    monkeypatch.setattr(embedded, "STAGED_BINARIES", cache / "parindex")
    before = stat.S_IMODE(private.stat().st_mode)
    server = PostgresServer(private / "state" / "postgres" / "data")
    try:
        server.start()
        exe = Path(os.readlink(f"/proc/{server.proc.pid}/exe"))
        assert exe.is_relative_to(cache / "parindex"), exe
        staged = exe.parents[3]  # <cache>/parindex/pginstall-<key>
        assert staged.stat().st_uid == 0 and not staged.stat().st_mode & 0o022
        assert _another_process_connects(server.port)
    finally:
        server.stop()
        shutil.rmtree(cache, ignore_errors=True)
    assert stat.S_IMODE(private.stat().st_mode) == before == 0o700
    assert stat.S_IMODE(private_lib.stat().st_mode) == 0o700  # copied, not linked and widened


@pytest.mark.timeout(110)
def test_sigterm_during_the_demo_leaves_no_child(tmp_path: Path) -> None:
    state = tmp_path / "state"
    out = tmp_path / "demo.out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "parindex.cli", "demo", "--state-dir", str(state)]
        + ["--minutes", "0.5", "--exit"],
        stdout=open(out, "ab"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        env=child_env(),
    )
    seen: set[int] = set()

    def demo_running() -> bool:
        seen.update(_descendants(proc.pid))
        assert proc.poll() is None, out.read_text()[-2000:]
        return "campaign:" in out.read_text()

    eventually(demo_running, timeout=90)
    assert len(seen) >= 7  # nats-server, PostgreSQL, mail catcher, four services
    _sigterm_and_check(proc, seen)
