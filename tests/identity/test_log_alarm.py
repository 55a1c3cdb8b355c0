"""The admin portal says when the log was found behind the projections (decision 26)."""

from __future__ import annotations

from sqlalchemy import text

from contracts import subjects
from tests.identity.test_service import ADMIN_PASSWORD, identity, login  # noqa: F401 - fixture
from tests.waiting import eventually


async def test_admin_portal_shows_a_log_that_moved_back(identity) -> None:  # noqa: F811
    client, rt = identity["client"], identity["rt"]
    runner = rt.extras["projection"]
    assert (await login(client, identity["admin"], ADMIN_PASSWORD)).status_code == 303
    assert "nhật ký sự kiện" not in (await client.get("/")).text

    # What a power loss leaves: a stored offset beyond the end of the log.
    last = (await rt.js.stream_info(subjects.EVENTS_STREAM)).state.last_seq
    await eventually(lambda: runner.applied_seq >= last, timeout=30)
    async with rt.sessions.begin() as s:
        await s.execute(
            text("UPDATE projection_offsets SET seq = :s, last_event_id = 'lost' WHERE name = :n"),
            {"s": last + 40, "n": runner.projection.name},
        )
    assert await runner.verify_log() is True
    page = (await client.get("/")).text
    assert 'role="alert"' in page and f"vị trí {last + 40}" in page and f"vị trí {last}" in page
    await eventually(lambda: not runner.log_mismatch, timeout=60)  # rebuilt: still said
    page = (await client.get("/?lang=en")).text
    assert "Some acknowledged ballots may have been lost" in page
    assert "has been rebuilt" in page
