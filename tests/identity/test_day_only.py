"""No identity row or CredentialsIssued event dates a person finer than the day (decision 15)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import httpx
from sqlalchemy import text

from contracts import subjects
from contracts.events import decode
from tests.identity.test_service import (
    ADMIN_PASSWORD,
    ROWS,
    identity,
    import_file,
    login,
    stream_messages,
)
from tests.time_columns import column_types, sub_day_values
from tests.waiting import eventually

__all__ = ["identity"]  # the fixture


async def test_credentials_and_resets_keep_only_their_day(identity, write_xlsx) -> None:
    client, c, nc, rt = identity["client"], identity["campaign_id"], identity["nc"], identity["rt"]
    assert (await login(client, identity["admin"], ADMIN_PASSWORD)).status_code == 303
    # an address of its own: the 3-a-day reset limit is per address, across tests
    address = f"ngay.{c}@example.vn"
    rows = [*ROWS[:2], [*ROWS[2][:2], address, *ROWS[2][3:]], *ROWS[3:]]
    body = (await import_file(client, c, write_xlsx(rows))).json()
    rid = body["respondents"][0]["respondent_id"]
    for purpose in ("invitation", "reset"):
        req = json.dumps({"campaign_id": c, "respondent_id": rid, "purpose": purpose}).encode()
        reply = json.loads(
            (await nc.request(subjects.RPC_IDENTITY_CREDENTIAL, req, timeout=10)).data
        )
        assert reply["password"]
    async with httpx.AsyncClient(
        transport=identity["transport"], base_url="http://testserver"
    ) as person:
        assert (await login(person, reply["username"], "wrong-password")).status_code == 401
        page = await person.get("/reset")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        assert (
            await person.post("/reset", data={"email": address, "csrf": csrf})
        ).status_code == 200

    async def issued():
        envelopes = [decode(m.data)[0] for m in await stream_messages(nc, c)]
        found = [e for e in envelopes if e.type == "CredentialsIssued"]
        return found if len(found) == 2 else None

    for envelope in await eventually(issued):
        stamp = envelope.occurred_at
        assert stamp == datetime.combine(stamp.date(), datetime.min.time(), UTC)
    async with rt.sessions() as s:
        attempts = await s.scalar(text("SELECT count(*) FROM identity_login_attempts"))
        resets = await s.scalar(text("SELECT count(*) FROM identity_reset_requests"))
    assert attempts and resets  # the scan below has rows to judge
    assert await sub_day_values(rt.sessions) == {}
    assert (await column_types(rt.sessions, "identity_credentials"))["issued_on"] == "date"
    kinds = await column_types(rt.sessions, "identity_reset_requests")
    assert kinds["requested_on"] == kinds["handled_on"] == "date"
