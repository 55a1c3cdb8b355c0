"""After a whole small campaign, look for every secret where it must never be.

The campaign runs through the real paths (tests/security/conftest.py): admin login, campaign
over HTTP, Excel import, wave opened, notify asking identity for credentials by RPC and mailing
them, respondents logging in with the mailed password and voting, the deadline, results. Then
every message of the campaign's subjects, every row of every table of the four service
databases and every log record (DEBUG and up) is searched for the plaintext passwords, the
session tokens, the ballot (pseudonym) key and identity's signing key.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from sqlalchemy import text

from contracts import subjects
from contracts.events import BallotSubmitted, decode
from parindex.db.engine import make_engine
from parindex.settings import database_url_for
from tests.identity.test_service import stream_messages
from tests.security.conftest import AFTER, Stack
from tests.waiting import eventually

DATABASES = ("identity", "survey", "scoring", "notify")
PERSON_COLUMNS = {"respondent_id", "username", "email", "full_name", "name", "phone"}


def is_answer_column(name: str) -> bool:
    return any(word in name for word in ("answer", "option", "choice"))


@pytest.fixture(autouse=True)
def _debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Before the services start: capture everything every logger says, DEBUG and up."""
    caplog.set_level(logging.DEBUG)


def log_text(caplog: pytest.LogCaptureFixture) -> str:
    out = []
    for when in ("setup", "call"):
        for rec in caplog.get_records(when):
            out.append(f"{rec.name} {rec.getMessage()} {rec.args!r} {rec.exc_text or ''}")
    return "\n".join(out)


async def answers_for(s: Stack, token: str) -> list[dict[str, str]]:
    form = (await s.request("survey", "GET", "/api/form", token=token)).json()
    return [
        {"unit_code": u["code"], "question_id": q["id"], "option_code": q["options"][0]["code"]}
        for u in form["rated_units"]
        for crit in form["form"]["criteria"]
        for q in crit["questions"]
    ]


async def dump_database(s: Stack, service: str) -> dict[str, dict[str, Any]]:
    """table -> {"columns": [...], "rows": [...]}; rows of this campaign where it has one."""
    engine = make_engine(database_url_for(s.pg_url, f"parindex_{service}"))
    out: dict[str, dict[str, Any]] = {}
    try:
        async with engine.connect() as conn:
            cols = (
                await conn.execute(
                    text(
                        "SELECT table_name, column_name FROM information_schema.columns "
                        "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
                    )
                )
            ).all()
            tables: dict[str, list[str]] = {}
            for table, column in cols:
                tables.setdefault(table, []).append(column)
            for table, columns in tables.items():
                key = next((c for c in ("campaign_id", "campaign") if c in columns), None)
                sql = f'SELECT * FROM "{table}"'
                params = {}
                if key is not None:
                    sql += f' WHERE "{key}" = :c'
                    params["c"] = s.campaign_id
                rows = (await conn.execute(text(sql), params)).all()
                out[table] = {"columns": columns, "rows": [tuple(r) for r in rows]}
    finally:
        await engine.dispose()
    return out


async def test_no_secret_in_log_stream_databases_or_logs(
    campaign_stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    s = campaign_stack
    c = s.campaign_id
    # Every respondent votes with the session the mailed password gave them.
    for person in s.people:
        r = await s.request(
            "survey",
            "POST",
            "/api/ballots",
            token=person.token,
            json={"answers": await answers_for(s, person.token)},
        )
        assert r.status_code == 201, r.text
    # A credential straight from identity's RPC (as notify does for a reset).
    reply = await s.nc.request(
        subjects.RPC_IDENTITY_CREDENTIAL,
        json.dumps(
            {"campaign_id": c, "respondent_id": s.people[-1].respondent_id, "purpose": "reset"}
        ).encode(),
        timeout=10,
    )
    s.passwords.append(json.loads(reply.data)["password"])
    # The deadline, then the published results.
    s.set_clock(AFTER)

    async def published() -> bool:
        msgs = await stream_messages(s.nc, c)
        return "ResultsPublished" in [decode(m.data)[0].type for m in msgs]

    await eventually(published, timeout=60)

    pem = s.rt("identity").extras["private_key"]
    from cryptography.hazmat.primitives import serialization

    private = pem.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    secrets_: dict[str, str] = {f"password {i}": p for i, p in enumerate(s.passwords)}
    secrets_ |= {f"session token {i}": t for i, t in enumerate(s.session_tokens)}
    secrets_ |= {
        f"token signature {i}": t.rsplit(".", 1)[1] for i, t in enumerate(s.session_tokens)
    }
    secrets_["ballot key"] = s.ballot_key
    secrets_["identity signing key (hex)"] = private.hex()
    assert len(s.passwords) == len(s.people) + 1 and all(len(p) >= 10 for p in s.passwords)

    # 1. the log: every message of the campaign, payload and headers
    msgs = await stream_messages(s.nc, c)
    types = [decode(m.data)[0].type for m in msgs]
    for expected in (
        "CampaignDefined",
        "RespondentRegistered",
        "CredentialsIssued",
        "WaveOpened",
        "InvitationSent",
        "BallotSubmitted",
        "DeadlineReached",
        "ResultsPublished",
    ):
        assert expected in types, types
    ids = {p.respondent_id for p in s.people} | {p.username for p in s.people}
    ids |= {p.email for p in s.people} | {p.name for p in s.people}
    for m in msgs:
        blob = m.data.decode() + json.dumps(dict(m.headers or {}))
        for what, secret in secrets_.items():
            assert secret not in blob, f"{what} in {m.subject}"
        env, payload = decode(m.data)
        if isinstance(payload, BallotSubmitted):
            data = json.loads(m.data)["data"]
            assert not {"respondent_id", "username", "email", "full_name"} & data.keys()
            assert not any(i in blob for i in ids), f"a person's identifier in {m.subject}"
            assert env.occurred_at.time().isoformat() == "00:00:00"  # a day, not a time

    # 2. every table of every service database
    seen_tables = 0
    for service in DATABASES:
        for table, dump in (await dump_database(s, service)).items():
            seen_tables += 1
            cols = set(dump["columns"])
            person = cols & PERSON_COLUMNS
            answer = {col for col in cols if is_answer_column(col)}
            assert not (person and answer), f"{service}.{table} joins {person} with {answer}"
            blob = "\n".join(repr(r) for r in dump["rows"])
            for what, secret in secrets_.items():
                assert secret not in blob, f"{what} in {service}.{table}"
            if answer:
                assert not any(i in blob for i in ids), f"a person next to answers: {table}"
    assert seen_tables >= 10

    # 3. everything logged, DEBUG and up, by every service
    logs = log_text(caplog)
    assert "started" in logs  # the capture did see the services
    for what, secret in secrets_.items():
        assert secret not in logs, f"{what} in the logs"
