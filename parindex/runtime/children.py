"""Child processes that never outlive the process that started them.

Servers run in their own session (a Ctrl-C in the terminal reaches `parindex up`, which stops
them in order), so nothing would otherwise stop them if their parent is killed with SIGKILL: a
killed test run or a killed `parindex up` left nats-server and PostgreSQL running as orphans.
On Linux the kernel's parent-death signal (prctl PR_SET_PDEATHSIG) closes that gap; it is set
after the child has changed user (PostgreSQL runs unprivileged), since a change of credentials
clears it.

The kernel sends that signal when the *thread* that forked the child ends, not the process. A
server restarted from a worker thread (asyncio.to_thread in the fault tests) died with that
thread. So every child is forked by one daemon thread that lives as long as the process.
"""

from __future__ import annotations

import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

PR_SET_PDEATHSIG = 1


def _die_with(parent_pid: int, sig: int) -> Callable[[], None]:
    def preexec() -> None:  # runs in the child between fork and exec: no allocation-heavy work
        _ask_kernel(parent_pid, sig)

    return preexec


def _ask_kernel(parent_pid: int, sig: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


_requests: queue.SimpleQueue[tuple[Callable[[], subprocess.Popen], Future]] = queue.SimpleQueue()
_forker: threading.Thread | None = None
_forker_lock = threading.Lock()


def _fork_forever() -> None:
    while True:
        make, done = _requests.get()
        try:
            done.set_result(make())
        except BaseException as exc:  # handed back to the caller's thread
            done.set_exception(exc)
        # Until the next request these names would keep the last child's Popen arguments
        # alive, and with them the parent's copy of its log file: an open file that kept a
        # lazily unmounted filesystem busy (docs/architecture.md, decision 36).
        del make, done


def _in_forker(make: Callable[[], subprocess.Popen]) -> subprocess.Popen:
    global _forker
    with _forker_lock:
        if _forker is None or not _forker.is_alive():
            _forker = threading.Thread(target=_fork_forever, name="parindex-forker", daemon=True)
            _forker.start()
    done: Future[subprocess.Popen] = Future()
    _requests.put((make, done))
    return done.result()


def spawn(
    args: Sequence[str], *, death_signal: int = signal.SIGKILL, **popen: Any
) -> subprocess.Popen:
    """Popen in a new session that the kernel signals with `death_signal` if we die."""
    popen.setdefault("start_new_session", True)
    if not sys.platform.startswith("linux"):
        return subprocess.Popen(list(args), **popen)
    popen["preexec_fn"] = _die_with(os.getpid(), death_signal)
    return _in_forker(lambda: subprocess.Popen(list(args), **popen))


def die_with_parent(parent_pid: int, sig: int = signal.SIGTERM) -> None:
    """Have the kernel send this process `sig` when its parent dies (Linux); exit at once if it
    already has. For processes another library starts: uvicorn's workers of one service, which
    otherwise kept serving on the service's socket after their parent was killed with SIGKILL,
    so the service restarted by `parindex up` could not bind its port (decision 46)."""
    if sys.platform.startswith("linux"):
        _ask_kernel(parent_pid, sig)
