"""Uploads are parsed in a bounded child process, one at a time (docs/architecture.md,
decision 27): logins keep answering meanwhile, and hostile workbooks are refused whole."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from parindex.runtime import bounded_child
from services.identity import import_worker
from services.identity.importer_read import MAX_CELLS, MAX_SHEET_ROWS
from tests.identity import test_service as base
from tests.identity.conftest import VN_HEADERS, make_campaign
from tests.identity.hostile_xlsx import far_row, rows_of, xlsx, zip_bomb
from tests.identity.test_service import ADMIN_PASSWORD, csrf_of, import_file, login
from tests.waiting import eventually

identity = base.identity


def slow_workbook(rows: int = 12_000, columns: int = 64) -> bytes:
    """A few MB (within the byte limit) that take seconds to parse, over the cell limit."""
    header = VN_HEADERS + [f"Ghi chú {i}" for i in range(columns - len(VN_HEADERS))]
    data = (
        [i, "Nguyễn Văn An", f"p{i}@example.vn", "SNV", "03", None]
        + [f"v{j}" for j in range(columns - 6)]
        for i in range(rows)
    )
    return xlsx(rows_of(header, data))


async def registered(identity: dict) -> list[str]:
    from tests.identity.test_service import stream_messages

    return [
        json.loads(m.data)["type"]
        for m in await stream_messages(identity["nc"], identity["campaign_id"])
        if json.loads(m.data)["type"] == "RespondentRegistered"
    ]


async def test_logins_answer_while_a_huge_workbook_is_parsed(identity) -> None:
    app, c = identity["app"], identity["campaign_id"]
    admin = identity["client"]
    assert (await login(admin, identity["admin"], ADMIN_PASSWORD)).status_code == 303
    upload = asyncio.create_task(import_file(admin, c, slow_workbook()))
    await eventually(
        lambda: app in bounded_child._locks and bounded_child._locks[app].locked(), timeout=10
    )

    # A second import while the first is parsed: refused at once, in Vietnamese, retry later.
    second = await import_file(admin, c, xlsx(rows_of(VN_HEADERS, [])))
    assert second.status_code == 503, second.text
    assert second.headers["retry-after"] and "Đang nhập" in second.json()["detail"]
    page = await admin.post(
        "/admin/import",
        data={"campaign": c, "csrf": csrf_of(admin)},
        files={"file": ("ds.xlsx", b"x")},
    )
    assert page.status_code == 503 and "Đang nhập một tệp danh sách khác" in page.text

    latencies: list[float] = []
    transport = httpx.ASGITransport(app=app, client=("10.77.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        while not upload.done():
            started = time.monotonic()
            resp = await asyncio.wait_for(
                login(other, identity["admin"], ADMIN_PASSWORD), timeout=30
            )
            latencies.append(time.monotonic() - started)
            assert resp.status_code == 303, resp.text
    assert len(latencies) >= 3, latencies  # the parse took seconds and logins went on
    # A parse on the event loop blocked logins for its whole length (12 s for 4 kB); with the
    # parse in a child, a login costs one argon2id verification, slower only when the machine
    # is saturated (two cores shared with the parse and other tests): bounded generously.
    assert max(latencies) < 5.0, latencies

    refused = await upload
    assert refused.status_code == 422, refused.text[:300]
    [problem] = refused.json()["problems"]
    assert problem["code"] == "too_many_cells" and problem["row"] > 1
    assert str(MAX_CELLS) in problem["message_vi"] and "Dòng" in problem["message_vi"]
    assert await registered(identity) == []  # nothing half-imported


async def test_hostile_workbooks_are_refused_whole(identity) -> None:
    admin, c = identity["client"], identity["campaign_id"]
    assert (await login(admin, identity["admin"], ADMIN_PASSWORD)).status_code == 303
    wide_row = [1, "Nguyễn Văn An", "an@example.vn", "SNV", "03", None] + [None] * 58 + ["x"]
    cases = {
        "zip bomb": (zip_bomb(150), "file_too_large", 1, ""),
        "last row of the sheet": (far_row(), "too_many_rows", MAX_SHEET_ROWS + 1, ""),
        "column 65": (xlsx(rows_of(VN_HEADERS, [wide_row])), "too_many_columns", 2, "BM"),
    }
    for name, (content, code, row, column) in cases.items():
        assert len(content) < 1024 * 1024, name  # small files, all of them
        resp = await import_file(admin, c, content)
        assert resp.status_code == 422, (name, resp.text[:300])
        [problem] = resp.json()["problems"]
        assert (problem["code"], problem["row"], problem["column"]) == (code, row, column), name
        assert problem["message_vi"] and "Traceback" not in resp.text
    assert await registered(identity) == []


@pytest.mark.unit
def test_a_parse_over_its_time_is_killed_and_explained() -> None:
    started = time.monotonic()
    plan = import_worker._run(slow_workbook(), "ds.xlsx", make_campaign(), timeout=0.5)
    assert time.monotonic() - started < 10
    [problem] = plan.problems
    assert problem.code == "file_too_complex" and "giây" in problem.message_vi
