"""Parsing an uploaded respondent list in a child process, within limits, one at a time.

Parsing a workbook is CPU work in Python: on the event loop a 4 kB file blocked every login for
12 s, and in a thread it would still hold the GIL and could not be stopped. So the parse runs
in a child interpreter (`python -m services.identity.import_worker`, the bytes on stdin, the
pickled ImportPlan on stdout) started through parindex.runtime.children, so it dies with the
service. The child sets a CPU-time and an address-space limit on itself before reading, and the
parent kills it when the wall-clock time is up. Whatever goes wrong in the child comes back as
one ImportProblem, never as a traceback (docs/architecture.md, decision 27). The size, row,
column, cell, sheet and zip limits are in importer_read.py.
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
from pathlib import Path
from typing import Any

from contracts.campaign import Campaign
from parindex.runtime.children import spawn
from services.identity.importer import ImportPlan, ImportProblem, parse_import

PARSE_TIMEOUT_S = 60.0
MEMORY_LIMIT_BYTES = 1024 * 1024 * 1024  # on top of what the child maps after its imports
ROOT = Path(__file__).resolve().parents[2]  # the directory holding `services`


class ImportBusy(Exception):
    """Another import is running in this service; the caller answers 503 with Retry-After."""


_locks: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def one_at_a_time(owner: object) -> Any:
    """Hold the import slot of `owner` (the app) or raise ImportBusy at once."""
    lock = _locks.setdefault(owner, asyncio.Lock())
    if lock.locked():
        raise ImportBusy
    async with lock:
        yield


def _problem(code: str, vi: str, en: str) -> ImportPlan:
    return ImportPlan(problems=[ImportProblem(1, "", code, vi, en)])


def too_complex() -> ImportPlan:
    return _problem(
        "file_too_complex",
        f"Không đọc xong tệp trong {int(PARSE_TIMEOUT_S)} giây hoặc tệp cần quá nhiều bộ nhớ; "
        "hãy lưu lại tệp chỉ với danh sách người khảo sát (.xlsx hoặc .csv UTF-8).",
        f"The file could not be read within {int(PARSE_TIMEOUT_S)} s or needs too much memory; "
        "save it again with only the respondent list (.xlsx or UTF-8 .csv).",
    )


def _limit_self() -> None:
    """In the child, once imported: let the kernel bound its CPU time and memory."""
    cpu = int(PARSE_TIMEOUT_S) + 5
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    mapped = 0
    with contextlib.suppress(OSError, ValueError), open("/proc/self/statm") as f:
        mapped = int(f.read().split()[0]) * resource.getpagesize()
    limit = mapped + MEMORY_LIMIT_BYTES
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _parse(content: bytes, filename: str, campaign: Campaign) -> ImportPlan:
    try:
        return parse_import(content, filename, campaign)
    except MemoryError:
        return too_complex()
    except Exception:  # a parser bug must not cost the admin a traceback
        return _problem(
            "unreadable_file",
            "Không đọc được tệp; hãy lưu lại thành .xlsx hoặc .csv (UTF-8) và thử lại.",
            "The file could not be read; save it again as .xlsx or UTF-8 .csv and retry.",
        )


def main() -> None:
    """The child: (content, filename, campaign JSON) pickled on stdin, the plan on stdout."""
    _limit_self()
    content, filename, campaign_json = pickle.load(sys.stdin.buffer)
    plan = _parse(content, filename, Campaign.model_validate_json(campaign_json))
    sys.stdout.buffer.write(pickle.dumps(plan, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()


def _run(content: bytes, filename: str, campaign: Campaign, timeout: float) -> ImportPlan:
    """Blocking: run the child, wait for its plan within `timeout`, kill it if late."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = spawn(
        [sys.executable, "-m", "services.identity.import_worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    request = pickle.dumps((content, filename, campaign.model_dump_json()))
    try:
        out, _ = proc.communicate(request, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return too_complex()
    if proc.returncode != 0:  # killed by a limit, or out of memory before it could answer
        return too_complex()
    try:
        plan = pickle.loads(out)  # our own child's answer, never a client's bytes
    except (pickle.UnpicklingError, EOFError, ValueError):
        return too_complex()
    if not isinstance(plan, ImportPlan):
        return too_complex()
    return plan


async def parse_off_loop(
    content: bytes, filename: str, campaign: Campaign, *, timeout: float = PARSE_TIMEOUT_S
) -> ImportPlan:
    """parse_import in a bounded child process; the event loop keeps serving meanwhile."""
    return await asyncio.to_thread(_run, content, filename, campaign, timeout)


if __name__ == "__main__":
    main()
