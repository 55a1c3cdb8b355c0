"""Child processes that never outlive the process that started them.

Servers run in their own session (a Ctrl-C in the terminal reaches `parindex up`, which stops
them in order), so nothing would otherwise stop them if their parent is killed with SIGKILL: a
killed test run or a killed `parindex up` left nats-server and PostgreSQL running as orphans.
On Linux the kernel's parent-death signal (prctl PR_SET_PDEATHSIG) closes that gap; it is set
after the child has changed user (PostgreSQL runs unprivileged), since a change of credentials
clears it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

PR_SET_PDEATHSIG = 1


def _die_with(parent_pid: int, sig: int) -> Callable[[], None]:
    def preexec() -> None:  # runs in the child between fork and exec: no allocation-heavy work
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def spawn(
    args: Sequence[str], *, death_signal: int = signal.SIGKILL, **popen: Any
) -> subprocess.Popen:
    """Popen in a new session that the kernel signals with `death_signal` if we die."""
    popen.setdefault("start_new_session", True)
    if sys.platform.startswith("linux"):
        popen["preexec_fn"] = _die_with(os.getpid(), death_signal)
    return subprocess.Popen(list(args), **popen)
