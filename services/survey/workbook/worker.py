"""Reading an uploaded workbook in a bounded child process, one at a time per service.

The same approach as the respondent import (docs/architecture.md, decision 27): openpyxl is
CPU work that would stall the event loop and, in a thread, could not be stopped. The child
(`python -m services.survey.workbook.worker`, started through parindex.runtime.children so it
dies with the service) limits its own CPU time and address space; the parent kills it after
60 s. Whatever goes wrong comes back as one problem in Vietnamese, never a traceback.
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

from contracts.campaign import Campaign
from parindex.runtime.children import spawn
from services.survey.workbook.read import read_workbook
from services.survey.workbook.rules import Problem

PARSE_TIMEOUT_S = 60.0
MEMORY_LIMIT_BYTES = 1024 * 1024 * 1024  # on top of what the child maps after its imports
ROOT = Path(__file__).resolve().parents[3]  # the directory holding `services`

Result = tuple[str | None, list[Problem]]  # the campaign as JSON, or the problems


class WorkbookBusy(Exception):
    """Another workbook is being read in this service; the caller answers 503."""


_locks: weakref.WeakKeyDictionary[object, asyncio.Lock] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def one_at_a_time(owner: object) -> AsyncIterator[None]:
    lock = _locks.setdefault(owner, asyncio.Lock())
    if lock.locked():
        raise WorkbookBusy
    async with lock:
        yield


def too_complex() -> Result:
    return None, [
        Problem(
            "",
            0,
            "",
            f"Không đọc xong tệp trong {int(PARSE_TIMEOUT_S)} giây hoặc tệp cần quá nhiều bộ "
            "nhớ; hãy lưu lại sổ tay chỉ với các trang của nó.",
            f"The file could not be read within {int(PARSE_TIMEOUT_S)} s or needs too much "
            "memory; save the workbook again with only its sheets.",
        )
    ]


def _limit_self() -> None:
    cpu = int(PARSE_TIMEOUT_S) + 5
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    mapped = 0
    with contextlib.suppress(OSError, ValueError), open("/proc/self/statm") as f:
        mapped = int(f.read().split()[0]) * resource.getpagesize()
    limit = mapped + MEMORY_LIMIT_BYTES
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def parse(content: bytes) -> Result:
    """In the child (or a test): the campaign JSON, or the problems."""
    try:
        campaign, problems = read_workbook(content)
    except MemoryError:
        return too_complex()
    except Exception:  # a reader bug must not cost the admin a traceback
        return None, [
            Problem(
                "",
                0,
                "",
                "Không đọc được tệp; hãy lưu lại thành .xlsx và thử lại.",
                "The file could not be read; save it again as .xlsx and retry.",
            )
        ]
    return (campaign.model_dump_json() if campaign else None), problems


def main() -> None:
    _limit_self()
    content = sys.stdin.buffer.read()
    sys.stdout.buffer.write(pickle.dumps(parse(content), protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()


def _run(content: bytes, timeout: float) -> Result:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = spawn(
        [sys.executable, "-m", "services.survey.workbook.worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        out, _ = proc.communicate(content, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return too_complex()
    if proc.returncode != 0:
        return too_complex()
    try:
        result = pickle.loads(out)  # our own child's answer, never a client's bytes
    except (pickle.UnpicklingError, EOFError, ValueError):
        return too_complex()
    if not (isinstance(result, tuple) and len(result) == 2):
        return too_complex()
    return result


async def read_off_loop(
    content: bytes, *, timeout: float = PARSE_TIMEOUT_S
) -> tuple[Campaign | None, list[Problem]]:
    """read_workbook in a bounded child; the event loop keeps serving meanwhile."""
    found, problems = await asyncio.to_thread(_run, content, timeout)
    return (Campaign.model_validate_json(found) if found else None), problems


if __name__ == "__main__":
    main()
