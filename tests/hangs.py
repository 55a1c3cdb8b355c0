"""On a test timeout, show where every asyncio task is waiting (the full await chain).

pytest-timeout interrupts the main thread inside the event loop's select(); the loop itself
is found on that traceback, and each task's coroutine chain is walked through cr_await, so a
hang names the line each task is stuck on instead of only "select()".
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Iterator


def _loop_in(tb: types.TracebackType | None) -> asyncio.AbstractEventLoop | None:
    while tb is not None:
        candidate = tb.tb_frame.f_locals.get("self")
        if isinstance(candidate, asyncio.AbstractEventLoop):
            return candidate
        tb = tb.tb_next
    return None


def _await_chain(obj: object) -> Iterator[str]:
    seen = 0
    while obj is not None and seen < 64:
        seen += 1
        frame = getattr(obj, "cr_frame", None) or getattr(obj, "gi_frame", None)
        if frame is None:
            frame = getattr(obj, "ag_frame", None)
        if frame is not None:
            code = frame.f_code
            yield f"    {code.co_filename}:{frame.f_lineno} in {code.co_name}"
        nxt = (
            getattr(obj, "cr_await", None)
            or getattr(obj, "gi_yieldfrom", None)
            or getattr(obj, "ag_await", None)
        )
        if frame is None:
            yield f"    awaiting {obj!r}"[:300]
        obj = nxt


def describe_tasks(tb: types.TracebackType | None) -> str:
    loop = _loop_in(tb)
    if loop is None:
        return "no event loop on the timeout's traceback"
    lines = []
    for task in sorted(asyncio.all_tasks(loop), key=lambda t: t.get_name()):
        state = f" (cancelling: {task.cancelling()})" if task.cancelling() else ""
        lines.append(f"task {task.get_name()}{state}:")
        lines.extend(_await_chain(task.get_coro()))
        waiter = getattr(task, "_fut_waiter", None)
        if waiter is not None:
            lines.append(f"    on {waiter!r}"[:300])
    return "\n".join(lines) or "no asyncio tasks"
