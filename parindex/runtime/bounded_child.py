"""Untrusted files parsed in a bounded child process, one at a time per service.

Parsing a workbook is CPU work in Python: on the event loop a 4 kB file blocked every login for
12 s, and in a thread it would still hold the GIL and could not be stopped. So the respondent
import and the campaign workbook parse in a child interpreter (`python -m <module>`, a pickled
request on stdin, the pickled answer on stdout), started through parindex.runtime.children so it
dies with the service. The child limits its own CPU time and address space before reading; the
parent kills it when the wall-clock time is up. Anything that goes wrong comes back as None, and
the caller turns that into one problem for the user, never a traceback (docs/architecture.md,
decision 27).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import resource
import subprocess
import sys
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from parindex.runtime.children import spawn

PARSE_TIMEOUT_S = 60.0
MEMORY_LIMIT_BYTES = 1024 * 1024 * 1024  # on top of what the child maps after its imports
ROOT = Path(__file__).resolve().parents[2]  # the directory holding `parindex` and `services`

_locks: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def one_at_a_time(owner: object, busy: type[Exception]) -> AsyncIterator[None]:
    """Hold the parse slot of `owner` (the app) or raise `busy` at once (the caller: 503)."""
    lock = _locks.setdefault(owner, asyncio.Lock())
    if lock.locked():
        raise busy
    async with lock:
        yield


def limit_self(cpu_s: float = PARSE_TIMEOUT_S, memory: int = MEMORY_LIMIT_BYTES) -> None:
    """In the child, once its imports are done: the kernel bounds its CPU time and memory."""
    cpu = int(cpu_s) + 5
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    mapped = 0
    with contextlib.suppress(OSError, ValueError), open("/proc/self/statm") as f:
        mapped = int(f.read().split()[0]) * resource.getpagesize()
    limit = mapped + memory
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def serve(parse: Any) -> None:
    """The child's main: limits, then parse(pickled request from stdin) pickled to stdout."""
    limit_self()
    request = pickle.load(sys.stdin.buffer)
    sys.stdout.buffer.write(pickle.dumps(parse(request), protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()


def _run(module: str, request: object, timeout: float) -> object | None:
    """Blocking: run the child, wait for its answer within `timeout`, kill it if late."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = spawn(
        [sys.executable, "-m", module],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        out, _ = proc.communicate(pickle.dumps(request), timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None
    if proc.returncode != 0:  # killed by a limit, or out of memory before it could answer
        return None
    try:
        return pickle.loads(out)  # our own child's answer, never a client's bytes
    except (pickle.UnpicklingError, EOFError, ValueError):
        return None


async def run_off_loop(module: str, request: object, timeout: float) -> object | None:
    """The child's answer, or None if it failed, hit a limit or ran out of time."""
    return await asyncio.to_thread(_run, module, request, timeout)
