"""Parsing an uploaded respondent list in a bounded child process, one at a time.

The child is `python -m services.identity.import_worker`: (content, filename, campaign JSON) in,
the ImportPlan out, through parindex.runtime.bounded_child (CPU, memory and wall-clock limits;
docs/architecture.md, decision 27). Whatever goes wrong in the child comes back as one
ImportProblem, never as a traceback. The size, row, column, cell, sheet and zip limits are in
importer_read.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from contracts.campaign import Campaign
from parindex.runtime import bounded_child
from parindex.runtime.bounded_child import PARSE_TIMEOUT_S
from services.identity.importer import ImportPlan, ImportProblem, parse_import

MODULE = "services.identity.import_worker"


class ImportBusy(Exception):
    """Another import is running in this service; the caller answers 503 with Retry-After."""


@contextlib.asynccontextmanager
async def one_at_a_time(owner: object) -> AsyncIterator[None]:
    """Hold the import slot of `owner` (the app) or raise ImportBusy at once."""
    async with bounded_child.one_at_a_time(owner, ImportBusy):
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


def _parse(request: tuple[bytes, str, str]) -> ImportPlan:
    """In the child: the plan for (content, filename, campaign JSON)."""
    content, filename, campaign_json = request
    try:
        return parse_import(content, filename, Campaign.model_validate_json(campaign_json))
    except MemoryError:
        return too_complex()
    except Exception:  # a parser bug must not cost the admin a traceback
        return _problem(
            "unreadable_file",
            "Không đọc được tệp; hãy lưu lại thành .xlsx hoặc .csv (UTF-8) và thử lại.",
            "The file could not be read; save it again as .xlsx or UTF-8 .csv and retry.",
        )


def _answer(found: object) -> ImportPlan:
    return found if isinstance(found, ImportPlan) else too_complex()


def _run(content: bytes, filename: str, campaign: Campaign, timeout: float) -> ImportPlan:
    """Blocking: the child's plan within `timeout` (tests call it directly)."""
    request = (content, filename, campaign.model_dump_json())
    return _answer(bounded_child._run(MODULE, request, timeout))


async def parse_off_loop(
    content: bytes, filename: str, campaign: Campaign, *, timeout: float = PARSE_TIMEOUT_S
) -> ImportPlan:
    """parse_import in a bounded child process; the event loop keeps serving meanwhile."""
    request = (content, filename, campaign.model_dump_json())
    return _answer(await bounded_child.run_off_loop(MODULE, request, timeout))


if __name__ == "__main__":
    bounded_child.serve(_parse)
