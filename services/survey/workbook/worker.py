"""Reading an uploaded workbook in a bounded child process, one at a time per service.

The same approach as the respondent import (parindex.runtime.bounded_child; docs/architecture.md,
decision 27): the child is `python -m services.survey.workbook.worker`, the bytes in, the
campaign JSON or the problems out. Whatever goes wrong comes back as one problem in Vietnamese,
never a traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from contracts.campaign import Campaign
from parindex.runtime import bounded_child
from parindex.runtime.bounded_child import PARSE_TIMEOUT_S
from services.survey.workbook.read import read_workbook
from services.survey.workbook.rules import Problem

MODULE = "services.survey.workbook.worker"

Result = tuple[str | None, list[Problem]]  # the campaign as JSON, or the problems


class WorkbookBusy(Exception):
    """Another workbook is being read in this service; the caller answers 503."""


@contextlib.asynccontextmanager
async def one_at_a_time(owner: object) -> AsyncIterator[None]:
    async with bounded_child.one_at_a_time(owner, WorkbookBusy):
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


def _answer(found: object) -> Result:
    if not (isinstance(found, tuple) and len(found) == 2):
        return too_complex()
    return found  # our own child's (json, problems) pair


async def read_off_loop(
    content: bytes, *, timeout: float = PARSE_TIMEOUT_S
) -> tuple[Campaign | None, list[Problem]]:
    """read_workbook in a bounded child; the event loop keeps serving meanwhile."""
    found, problems = _answer(await bounded_child.run_off_loop(MODULE, content, timeout))
    return (Campaign.model_validate_json(found) if found else None), problems


if __name__ == "__main__":
    bounded_child.serve(parse)
