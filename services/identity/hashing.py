"""argon2id off the event loop: a process pool sized to the cores, owned by the service.

A login or a credential costs one argon2id hash at OWASP's minimum (m=19 MiB, t=2, p=1), tens
of milliseconds of CPU. Run on the event loop's process, a wave of logins competes with the
requests and the NATS traffic for one interpreter; in a pool of processes, one per core, the
hashing uses every core and the loop keeps answering (docs/architecture.md, decision 29).

The pool is created in the service's start hook (`acquire`) and shut down, bounded, when it
stops (`release`); several in-process instances (the lifecycle tests) share one pool. Workers
are spawned (not forked: the service has threads and an event loop), ignore Ctrl-C (the parent
stops them) and carry the kernel's parent-death signal, so a killed service leaves no worker
behind (docs/architecture.md, decision 14). Without a pool (the CLI, a test calling
`add_user` directly) hashing runs in a thread, as before.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

log = logging.getLogger(__name__)

# OWASP's argon2id minimum (m=19 MiB, t=2, p=1). The accelerated demo may lower it through
# PARINDEX_ARGON2_MEMORY_KIB / PARINDEX_ARGON2_TIME (each hash records its own parameters).
HASHER = PasswordHasher(
    time_cost=int(os.environ.get("PARINDEX_ARGON2_TIME", "2")),
    memory_cost=int(os.environ.get("PARINDEX_ARGON2_MEMORY_KIB", "19456")),
    parallelism=1,
    hash_len=32,
    salt_len=16,
    type=Type.ID,
)
PR_SET_PDEATHSIG = 1
STOP_BOUND_S = 5.0
T = TypeVar("T")


def cores() -> int:
    """Pool size: PARINDEX_ARGON2_WORKERS, else the cores this process may run on."""
    configured = os.environ.get("PARINDEX_ARGON2_WORKERS", "")
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def hash_now(password: str) -> str:
    return HASHER.hash(password)


def verify_now(hashed: str, password: str) -> bool:
    try:
        return HASHER.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _worker_init(parent: int) -> None:
    """In each worker: die with the service, leave Ctrl-C to it (decision 14)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the service died before prctl took effect
        os._exit(1)


def _warm() -> int:
    HASHER.hash("warm up")  # the first hash pays for argon2's first allocation
    return os.getpid()


class HashPool:
    """One ProcessPoolExecutor; replaced if a worker dies (an OOM kill must not stop logins)."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self.executor: ProcessPoolExecutor | None = self._new()
        self.busy = 0  # hashes requests are waiting for (logins, credentials), not the stock
        self.idle = asyncio.Event()  # set while busy == 0: background work may go on
        self.idle.set()

    def _new(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(os.getpid(),),
        )

    async def start(self) -> None:
        """Spawn every worker now, from the event loop's thread (the parent-death signal
        follows the forking thread, and the loop's lives as long as the service)."""
        self.executor = self.executor or self._new()
        loop = asyncio.get_running_loop()
        pids = await asyncio.gather(
            *(loop.run_in_executor(self.executor, _warm) for _ in range(self.workers))
        )
        log.info("argon2 pool: %d worker processes", len(set(pids)))

    def pids(self) -> list[int]:
        executor = self.executor
        return list(executor._processes) if executor is not None else []

    async def run(self, fn: Callable[..., T], *args: object, background: bool = False) -> T:
        """fn(*args) in a worker; `background` work (the credential stock) does not count as
        busy, so it waits for requests instead of the other way round."""
        if background:
            return await self._run(fn, *args)
        self.busy += 1
        self.idle.clear()
        try:
            return await self._run(fn, *args)
        finally:
            self.busy -= 1
            if self.busy == 0:
                self.idle.set()

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            executor = self.executor
            if executor is None:  # stopping: finish in a thread rather than fail a login
                return await asyncio.to_thread(fn, *args)
            try:
                return await loop.run_in_executor(executor, fn, *args)
            except BrokenProcessPool:
                if attempt == 2:
                    raise
                log.error("argon2 pool lost a worker; starting a new pool")
                if self.executor is executor:
                    self.executor = self._new()
                    await _stop_executor(executor)
        raise AssertionError("unreachable")

    async def stop(self) -> None:
        executor, self.executor = self.executor, None
        if executor is not None:
            await _stop_executor(executor)


async def _stop_executor(executor: ProcessPoolExecutor) -> None:
    """Shut down within STOP_BOUND_S; kill workers that are still there after it.

    The executor's own thread reaps the workers; waiting on it (not on the processes) avoids
    a second waitpid racing it.
    """
    processes = list(executor._processes.values())
    stopping = asyncio.ensure_future(
        asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)
    )
    done, _ = await asyncio.wait({stopping}, timeout=STOP_BOUND_S)
    if done:
        return
    for p in processes:
        if p.exitcode is None:
            log.error("argon2 worker %s did not stop within %.0fs; killing it", p.pid, STOP_BOUND_S)
            p.kill()
    await asyncio.wait({stopping}, timeout=2)


_pool: HashPool | None = None
_users = 0
_dummy: str | None = None


async def acquire() -> HashPool:
    """The service's start hook: the shared pool, started by its first user.

    The bookkeeping happens before any await, so two instances starting together share one.
    """
    global _pool, _users
    _users += 1
    if _pool is not None:
        return _pool
    pool = _pool = HashPool(cores())
    await pool.start()
    await _dummy_hash()
    return pool


async def release() -> None:
    """The service's stop hook: the last user shuts the pool down."""
    global _pool, _users
    _users = max(0, _users - 1)
    if _users == 0 and _pool is not None:
        pool, _pool = _pool, None
        await pool.stop()


def current() -> HashPool | None:
    return _pool


async def _run(fn: Callable[..., T], *args: object) -> T:
    pool = _pool
    if pool is None:
        return await asyncio.to_thread(fn, *args)
    return await pool.run(fn, *args)


async def _dummy_hash() -> str:
    """What an unknown user's password is checked against (same work as a real one)."""
    global _dummy
    if _dummy is None:
        _dummy = await _run(hash_now, "no such account, same work")
    return _dummy


async def hash_password(password: str) -> str:
    return await _run(hash_now, password)


async def verify_password(hashed: str | None, password: str) -> bool:
    """Constant work whether or not the user exists: an unknown user verifies a dummy hash."""
    if hashed is None:
        await _run(verify_now, await _dummy_hash(), password)
        return False
    return await _run(verify_now, hashed, password)
