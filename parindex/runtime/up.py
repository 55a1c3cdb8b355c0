"""`parindex up`: the whole product on one machine with nothing but Python.

Starts nats-server and PostgreSQL from pip (unless external URLs are given), provisions the
streams as the one user allowed to, then the four services as child processes behind one
front door (the gateway, parindex/gateway/, on ports kept in <state-dir>/ports.json), writes
<state-dir>/endpoints.json, and stops everything on Ctrl-C / SIGTERM. A lock file refuses a
second `up` on the same state dir.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import httpx

from parindex.bus import permissions
from parindex.bus.credentials import ensure_secret, nats_secret_name, new_nats_password
from parindex.provision import provision
from parindex.runtime import endpoints as discovery
from parindex.runtime.children import spawn
from parindex.runtime.embedded import NatsServer, PostgresServer, free_port, wait_port
from parindex.runtime.ports import GATEWAY, choose_ports, port_free
from parindex.runtime.serve import SERVICES
from parindex.settings import Settings


class AlreadyRunning(RuntimeError):
    pass


class FreshRefused(RuntimeError):
    pass


# What a state dir holds of the product's data, as opposed to its ports, secrets and logs.
DATA = ("nats", "postgres", "mail", "demo", "endpoints.json", "mailcatcher.log")


def existing_data(state_dir: Path) -> bool:
    """Whether an earlier `up` left data here (a log or databases) for this one to resume."""
    return any((state_dir / name).exists() for name in ("nats", "postgres"))


def _lock(state_dir: Path) -> IO[str]:
    state_dir.mkdir(parents=True, exist_ok=True)
    fh = open(state_dir / "up.lock", "a+")  # noqa: SIM115 - held for the process lifetime
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise AlreadyRunning(
            f"parindex is already running on {state_dir} (lock {state_dir / 'up.lock'}); "
            "stop it first or pass another --state-dir"
        ) from None
    return fh


def _secret(state_dir: Path, name: str, new: Callable[[], str] | None = None) -> str:
    """Secrets live in files under state_dir/secrets (mode 600), never in the log or database."""
    return ensure_secret(state_dir, name, new) if new else ensure_secret(state_dir, name)


def nats_passwords(state_dir: Path) -> dict[str, str]:
    """One generated password per NATS user of the locked-down bus (decision 18)."""
    users = ["sys", *(u.name for u in permissions.USERS)]
    return {user: _secret(state_dir, nats_secret_name(user), new_nats_password) for user in users}


def _run(coro: Coroutine[Any, Any, None]) -> None:
    """asyncio.run, also from a caller that already runs an event loop (tests, the demo)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result()


@dataclass
class Stack:
    state_dir: Path
    nats_url: str | None = None
    database_url: str | None = None
    host: str = "127.0.0.1"
    # The front door's port (`--port`); None: the one recorded for this state dir, else 8000.
    port: int | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    # `--fresh`: delete this state dir's data (log, databases, mail) before starting.
    fresh: bool = False
    nats: NatsServer | None = None
    postgres: PostgresServer | None = None
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    mail: subprocess.Popen | None = None
    mail_url: str | None = None
    ports: dict[str, int] = field(default_factory=dict)
    gateway: subprocess.Popen | None = None
    gateway_port: int | None = None
    public_url: str = ""
    # NATS user -> password, when `up` runs its own (locked-down) nats-server.
    nats_users: dict[str, str] = field(default_factory=dict)
    # Each service's environment: the CLI, the demo and the tests reach the same servers with it.
    envs: dict[str, dict[str, str]] = field(default_factory=dict)
    _lockfh: IO[str] | None = None
    _mail_args: list[str] = field(default_factory=list)
    _gateway_args: list[str] = field(default_factory=list)
    _gateway_env: dict[str, str] = field(default_factory=dict)

    def start(self, timeout: float = 60.0) -> dict:
        """Start everything; if anything fails or a stop signal arrives, stop what was started."""
        self.state_dir = self.state_dir.resolve()
        self._lockfh = _lock(self.state_dir)
        try:
            if self.fresh:
                self._wipe()
            return self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _wipe(self) -> None:
        """Start over: the log, the databases, the mail and the demo's files go; the ports,
        the secrets and the logs stay, so links and passwords keep (decision 40)."""
        if self.nats_url or self.database_url:
            raise FreshRefused(
                "--fresh deletes only the servers parindex up runs itself; "
                "empty an external NATS or PostgreSQL yourself"
            )
        for name in DATA:
            path = self.state_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)

    def _start(self, timeout: float) -> dict:
        # Stable ports first: a taken front door stops us before anything starts (decision 30).
        chosen = choose_ports(
            self.state_dir, [*SERVICES, "mail_smtp", "mail_http"], self.port, self.host
        )
        self.gateway_port = chosen[GATEWAY]
        gateway_url = f"http://{self.host}:{self.gateway_port}"
        # Every link for a person (e-mails, redirects, pages) names the front door.
        self.public_url = (os.environ.get("PARINDEX_PUBLIC_URL") or gateway_url).rstrip("/")
        source = proxy_source_address()
        if not self.nats_url:
            # The same accounts and least-privilege users as deploy/nats: no anonymous access
            # (docs/architecture.md, decision 18).
            self.nats_users = nats_passwords(self.state_dir)
            self.nats = self._start_nats()
            self.nats_url = self.nats.url
        self._provision()
        if not self.database_url:
            self.postgres = PostgresServer(self.state_dir / "postgres" / "data").start()
            self.database_url = self.postgres.url
        env = dict(os.environ)
        if not env.get("PARINDEX_SMTP_HOST"):
            self._start_mailcatcher(env, chosen["mail_smtp"], chosen["mail_http"])
        trusted = ",".join(filter(None, [env.get("PARINDEX_TRUSTED_PROXIES", ""), source]))
        env.update(
            PARINDEX_NATS_URL=self.nats_url,
            PARINDEX_DATABASE_URL=self.database_url,
            PARINDEX_STATE_DIR=str(self.state_dir),
            PARINDEX_PUBLIC_URL=self.public_url,
            # The gateway's X-Forwarded-For names the client (docs/architecture.md, decision 19).
            PARINDEX_TRUSTED_PROXIES=trusted,
        )
        env.pop("PARINDEX_BALLOT_KEY", None)  # only survey holds it (docs/architecture.md, 15)
        ballot_key = os.environ.get("PARINDEX_BALLOT_KEY") or _secret(self.state_dir, "ballot_key")
        env.update(self.extra_env)
        logs = self.state_dir / "logs"
        logs.mkdir(exist_ok=True)
        for name in SERVICES:
            port = chosen[name]
            self.ports[name] = port
            env_s = dict(env)
            if name == "survey":
                env_s["PARINDEX_BALLOT_KEY"] = ballot_key
            if self.nats_users:  # each service gets its own NATS user, and only that
                env_s.update(PARINDEX_NATS_USER=name, PARINDEX_NATS_PASSWORD=self.nats_users[name])
            if name == "notify":  # invitations link to the one login page, at the front door
                env_s["PARINDEX_NOTIFY_SURVEY_URL"] = f"{self.public_url}/"
            self.procs[name] = spawn(
                self._command(name, port),
                env=env_s,
                stdout=open(logs / f"{name}.log", "ab"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
            )
            self.envs[name] = env_s
        self._start_gateway(env, source, logs)
        endpoints = self.endpoints()
        discovery.write(self.state_dir, endpoints)
        self.wait_ready(timeout)
        return endpoints

    def _start_gateway(self, env: dict[str, str], source: str, logs: Path) -> None:
        """The front door: one address, the Caddyfile's routes (docs/architecture.md, 30)."""
        assert self.gateway_port is not None
        upstreams = [f"{n}=http://{self.host}:{p}" for n, p in self.ports.items()]
        if self.mail_url:
            upstreams.append(f"mail={self.mail_url}")
        self._gateway_args = [
            sys.executable, "-m", "parindex.gateway", "--host", self.host,
            "--port", str(self.gateway_port), "--source", source,
            *(a for u in upstreams for a in ("--upstream", u)),
        ]  # fmt: skip
        self._gateway_env = env
        self._spawn_gateway()
        wait_port(self.gateway_port, 30, self.gateway)

    def _spawn_gateway(self) -> None:
        self.gateway = spawn(
            self._gateway_args,
            env=self._gateway_env,
            stdout=open(self.state_dir / "logs" / "gateway.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )

    def _start_nats(self) -> NatsServer:
        """On 4222 when free; another port if that one is taken before our server binds it
        (another stack starting at the same moment): the services get whichever it was."""
        assert self.nats_users is not None
        for attempt in range(3):
            server = NatsServer(
                self.state_dir / "nats",
                port=_port(4222) if attempt == 0 else free_port(),
                accounts=permissions.render_accounts(),
                passwords={f"NATS_{u.upper()}_PASSWORD": p for u, p in self.nats_users.items()},
            )
            try:
                return server.start()
            except RuntimeError as exc:
                if "address already in use" not in str(exc) or attempt == 2:
                    raise
                print(
                    f"NATS port {server.port} was taken as it started; trying another",
                    file=sys.stderr,
                )
        raise AssertionError("unreachable")

    def _provision(self) -> None:
        """Create/update the streams before any service starts; services only check them."""
        settings = replace(Settings(), nats_url=self.nats_url or "")
        if self.nats_users:
            settings = replace(
                settings, nats_user="provisioner", nats_password=self.nats_users["provisioner"]
            )
        _run(provision(settings, timeout=60))

    def _command(self, name: str, port: int) -> list[str]:
        return [sys.executable, "-m", f"services.{name}", "--host", self.host, "--port", str(port)]

    def _start_mailcatcher(self, env: dict[str, str], smtp_port: int, http_port: int) -> None:
        """No SMTP server configured: catch mail locally and show it in the browser."""
        self._mail_args = [
            sys.executable, "-m", "parindex.runtime.mailcatcher",
            "--smtp-port", str(smtp_port), "--http-port", str(http_port),
            "--dir", str(self.state_dir / "mail"),
        ]  # fmt: skip
        self.mail = spawn(
            self._mail_args,
            stdout=open(self.state_dir / "mailcatcher.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        wait_port(smtp_port, 30, self.mail)
        wait_port(http_port, 30, self.mail)
        self.mail_url = f"http://{self.host}:{http_port}"
        env.update(PARINDEX_SMTP_HOST="127.0.0.1", PARINDEX_SMTP_PORT=str(smtp_port))

    def endpoints(self) -> dict:
        """`services`: where people reach each service, which is the front door for all;
        `internal`: each service's own port, for /readyz and /metrics (not routed)."""
        gateway = f"http://{self.host}:{self.gateway_port}"
        return {
            "open": f"{self.public_url}/",
            "public": self.public_url,
            "gateway": gateway,
            "services": {n: self.public_url for n in self.ports},
            "internal": {n: f"http://{self.host}:{p}" for n, p in self.ports.items()},
            "mail": f"{gateway}/mail" if self.mail_url else None,
            "mail_internal": self.mail_url,
            "nats_url": self.nats_url,
            # `parindex health stream` reads /jsz here; an external NATS has its own.
            "nats_monitor": (
                f"http://127.0.0.1:{self.nats.monitor_port}" if self.nats is not None else None
            ),
            "database_url": self.database_url,
        }

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = set(self.procs)
        while pending and time.monotonic() < deadline:
            for name in list(pending):
                proc = self.procs[name]
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {proc.returncode}; "
                        f"see {self.state_dir}/logs/{name}.log"
                    )
                try:
                    r = httpx.get(f"http://{self.host}:{self.ports[name]}/readyz", timeout=1)
                    if r.status_code == 200:
                        pending.discard(name)
                except httpx.HTTPError:
                    pass
            if pending:
                time.sleep(0.2)
        if pending:
            raise TimeoutError(f"not ready after {timeout}s: {', '.join(sorted(pending))}")

    def restart_service(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Kill one service and start it again on the same port (fault tests)."""
        proc = self.procs[name]
        proc.send_signal(sig)
        proc.wait(15)
        env = dict(os.environ)
        log = open(self.state_dir / "logs" / f"{name}.log", "ab")  # noqa: SIM115
        new = spawn(
            self._command(name, self.ports[name]),
            env=self.envs.get(name, env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs[name] = new
        wait_port(self.ports[name], 30, self.procs[name])

    def _child_proc(self, name: str) -> subprocess.Popen | None:
        """The process behind a child's name: a service, the mail catcher or a server."""
        if name == "nats":
            return self.nats.proc if self.nats is not None else None
        if name == "postgres":
            return self.postgres.proc if self.postgres is not None else None
        if name == "mail":
            return self.mail
        if name == GATEWAY:
            return self.gateway
        return self.procs.get(name)

    def dead_children(self) -> list[str]:
        """Reaps: every child that has exited, by the name restart_child knows it by."""
        # Servers first: a service restarted before them would only fail again.
        names = ["nats", "postgres", "mail", *self.procs, GATEWAY]
        return [n for n in names if (p := self._child_proc(n)) is not None and p.poll() is not None]

    def returncode_of(self, name: str) -> int | None:
        proc = self._child_proc(name)
        return proc.returncode if proc is not None else None

    def restart_child(self, name: str) -> None:
        """Start a dead child again in place: same port, same data (decision 20)."""
        if name == "nats" and self.nats is not None:
            self.nats.start()
        elif name == "postgres" and self.postgres is not None:
            self.postgres.start(timeout=30)
        elif name == "mail" and self.mail is not None:
            self.mail = spawn(
                self._mail_args,
                stdout=open(self.state_dir / "mailcatcher.log", "ab"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
            )
        elif name == GATEWAY and self.gateway is not None:
            self._spawn_gateway()
        else:
            self.procs[name] = spawn(
                self._command(name, self.ports[name]),
                env=self.envs.get(name, dict(os.environ)),
                stdout=open(self.state_dir / "logs" / f"{name}.log", "ab"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        """Front door, services, mail catcher, PostgreSQL, nats-server, each within a bound."""
        if self.gateway is not None and self.gateway.poll() is None:
            self.gateway.terminate()
            try:
                self.gateway.wait(10)
            except subprocess.TimeoutExpired:
                self.gateway.kill()
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.mail is not None and self.mail.poll() is None:
            self.mail.terminate()
            try:
                self.mail.wait(10)
            except subprocess.TimeoutExpired:
                self.mail.kill()
        if self.postgres:
            self.postgres.stop()
        if self.nats:
            self.nats.stop()
        if self._lockfh is not None:
            self._lockfh.close()
            self._lockfh = None


def _port(preferred: int) -> int:
    """The conventional port when free (so a restart finds the same URL), else any free one."""
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            return free_port()


def proxy_source_address() -> str:
    """The loopback address the gateway connects to the services from, which they trust.

    127.0.0.2 where the system has it (Linux routes all of 127/8 to lo): a program that simply
    connects to a service's port comes from 127.0.0.1 and its X-Forwarded-For is not believed.
    """
    return "127.0.0.2" if port_free(0, "127.0.0.2") else "127.0.0.1"


def run_forever(stack: Stack) -> int:
    """Supervise until SIGTERM / Ctrl-C (docs/architecture.md, decision 20)."""
    from parindex.runtime.supervise import supervise

    return supervise(stack)
