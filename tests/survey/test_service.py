"""The survey service on real NATS and PostgreSQL: campaign, waves, ballots, progress, secrecy.

The FastAPI app runs in-process (httpx ASGI transport, lifespan entered by hand); identity is
stood in for by a NATS responder handing out a test Ed25519 public key.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import ServiceUnavailableError
from sqlalchemy import text

from contracts import subjects
from contracts.campaign import Campaign
from contracts.events import RespondentRegistered, WaveOpened, decode, make
from parindex.bus.publish import publish_event
from parindex.settings import Settings
from parindex.web.auth import (
    COOKIE,
    Principal,
    issue_token,
    load_or_create_private_key,
    public_pem,
)
from parindex.web.service import create_app
from services.survey.secrecy import pseudonym
from services.survey.service import SERVICE
from tests.waiting import eventually

KEY = "test-key"
BEFORE = datetime.fromisoformat("2023-09-01T00:00:00+00:00")
OPEN = datetime.fromisoformat("2023-09-22T10:00:00+07:00")
AFTER = datetime.fromisoformat("2023-10-07T09:00:00+07:00")


def small_campaign(campaign_id: str) -> Campaign:
    yes_no = [
        {"code": "yes", "label": "Có", "weight": "1"},
        {"code": "no", "label": "Không", "weight": "0"},
        {"code": "dk", "label": "Không biết", "weight": None},
    ]
    criteria = [
        {
            "code": "C1",
            "name": "Công khai",
            "max_points": "2",
            "questions": [
                {"id": "Q1", "text": "Câu 1", "max_points": "1", "options": yes_no},
                {"id": "Q2", "text": "Câu 2", "max_points": "1", "options": yes_no},
            ],
        }
    ]
    return Campaign.model_validate(
        {
            "id": campaign_id,
            "name": "Thử nghiệm",
            "province": "Sóc Trăng",
            "year": 2023,
            "units": [
                {"code": "H-A", "name": "Huyện A", "kind": "district"},
                {"code": "H-B", "name": "Huyện B", "kind": "district"},
            ],
            "forms": [
                {
                    "code": "01",
                    "name": "Phiếu 01",
                    "group": "provincial_delegate",
                    "rates": "many_units",
                    "rated_units": ["H-A", "H-B"],
                    "criteria": criteria,
                },
                {
                    "code": "02",
                    "name": "Phiếu 02",
                    "group": "district_delegate",
                    "rates": "own_unit",
                    "respondent_unit_kinds": ["district"],
                    "criteria": criteria,
                },
            ],
            "quotas": [
                {"form_code": "01", "ballots": 5},
                {"form_code": "02", "unit_code": "H-A", "ballots": 3},
                {"form_code": "02", "unit_code": "H-B", "ballots": 2},
            ],
            "waves": [
                {
                    "id": "w1",
                    "opens_at": "2023-09-21T07:00:00+07:00",
                    "members": [{"form_code": "01"}, {"form_code": "02"}],
                }
            ],
            "deadline": "2023-10-06T23:59:59+07:00",
            "form_priority": ["01", "02"],
        }
    )


def full_answers(unit: str, option: str = "yes") -> list[dict[str, str]]:
    return [{"unit_code": unit, "question_id": q, "option_code": option} for q in ("Q1", "Q2")]


class Survey:
    """One running survey instance plus a way to log in as anybody."""

    def __init__(self, app, client: httpx.AsyncClient, key) -> None:
        self.app = app
        self.client = client
        self.key = key
        # One session token per principal for this stack's life (tests/survey/test_web.py).
        self.sessions: dict[Principal, str] = {}

    @property
    def rt(self):
        return self.app.state.rt

    def as_(self, p: Principal) -> dict[str, str]:
        """An API caller's headers: the session, and the header JSON writes need (decision 25)."""
        return {"Cookie": f"{COOKIE}={issue_token(self.key, p)}", "X-Requested-With": "parindex"}

    def set_clock(self, at: datetime) -> None:
        self.rt.extras["clock"].set(at)


@pytest.fixture
def signing_key(tmp_path: Path):
    return load_or_create_private_key(tmp_path / "keys" / "identity.pem")


@pytest.fixture
async def identity_stub(nc, signing_key):
    """Answers the public-key RPC as identity would."""

    async def reply(msg) -> None:
        await msg.respond(json.dumps({"public_key_pem": public_pem(signing_key)}).encode())

    sub = await nc.subscribe(subjects.RPC_IDENTITY_PUBLIC_KEY, cb=reply)
    await nc.flush()
    yield
    await sub.unsubscribe()


@contextlib.asynccontextmanager
async def running(nats_url: str, pg_url: str, key) -> AsyncIterator[Survey]:
    settings = Settings(
        nats_url=nats_url,
        database_url=pg_url,
        ballot_key=KEY,
        clock_start=BEFORE.isoformat(),
        clock_speed=1.0,
    )
    app = create_app(SERVICE, settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://survey") as client:
            yield Survey(app, client, key)


@pytest.fixture
async def survey(nats_url, pg_url, signing_key, identity_stub) -> AsyncIterator[Survey]:
    async with running(nats_url, pg_url, signing_key) as s:
        yield s


ADMIN = Principal(subject="admin", role="admin")


def respondent(campaign_id: str, rid: str, unit: str | None = "H-A", form: str = "02"):
    return Principal(
        subject=rid, role="respondent", campaign_id=campaign_id, unit_code=unit, form_code=form
    )


async def register(js, campaign_id: str, rid: str, unit: str | None, form: str) -> None:
    event = RespondentRegistered(
        respondent_id=rid,
        username=f"user-{rid}",
        full_name=f"Nguyễn Văn {rid.upper()}",
        email=f"{rid}@example.vn",
        unit_code=unit,
        form_code=form,
    )
    await publish_event(
        js,
        subjects.respondent(campaign_id, rid),
        make(event, campaign_id=campaign_id, producer="identity"),
    )


async def setup_open_campaign(survey: Survey, nc, campaign_id: str, people) -> Campaign:
    """Define the small campaign, register people, let the scheduler open wave w1."""
    c = small_campaign(campaign_id)
    r = await survey.client.post(
        "/api/campaigns", json=c.model_dump(mode="json"), headers=survey.as_(ADMIN)
    )
    assert r.status_code == 201, r.text
    for rid, unit, form in people:
        await register(nc.jetstream(), campaign_id, rid, unit, form)
    survey.set_clock(OPEN)
    rid, unit, form = people[0]
    headers = survey.as_(respondent(campaign_id, rid, unit, form))

    async def is_open() -> bool:
        resp = await survey.client.get("/api/form", headers=headers)
        return resp.status_code == 200 and resp.json()["open"]

    await eventually(is_open)
    return c


async def subject_count(js, subject: str) -> int:
    info = await js.stream_info(subjects.EVENTS_STREAM, subjects_filter=subject)
    return sum((info.state.subjects or {}).values())


async def read_all(js, subject: str) -> list:
    """Every message on `subject`, in order. On a cluster a new consumer answers 503 until its
    leader is elected; the read then starts over, so no batch is half-read."""
    deadline = time.monotonic() + 15
    while True:
        try:
            return await _read_all_once(js, subject)
        except ServiceUnavailableError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _read_all_once(js, subject: str) -> list:
    sub = await js.pull_subscribe(
        subject,
        None,
        stream=subjects.EVENTS_STREAM,
        config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL),
    )
    out = []
    try:
        while True:
            try:
                out += await sub.fetch(500, timeout=1.0)
            except (NatsTimeout, TimeoutError):  # nats-py raises either
                return out
    finally:
        await sub.unsubscribe()


# --- tests ---------------------------------------------------------------------------------
async def test_full_flow_one_unit(survey: Survey, nc, campaign_id: str) -> None:
    people = [("an", "H-A", "02"), ("binh", "H-A", "02"), ("chi", None, "01")]
    await setup_open_campaign(survey, nc, campaign_id, people)
    an = survey.as_(respondent(campaign_id, "an"))

    r = await survey.client.put("/api/draft", json={"answers": full_answers("H-A")[:1]}, headers=an)
    assert r.status_code == 200
    r = await survey.client.get("/api/draft", headers=an)
    assert r.json()["answers"][0]["question_id"] == "Q1"

    r = await survey.client.post("/api/ballots", json={"answers": full_answers("H-A")}, headers=an)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["receipt"] and body["submitted_on"] == "2023-09-22"
    assert (await survey.client.get("/api/draft", headers=an)).json()["answers"] == []

    # The event: day-only time, respondent's unit, no identity.
    pseudo = pseudonym(KEY, campaign_id, "an")
    js = nc.jetstream()
    msg = await js.get_last_msg(subjects.EVENTS_STREAM, subjects.ballot(campaign_id, pseudo))
    env, payload = decode(msg.data)
    assert env.occurred_at.isoformat() == "2023-09-22T00:00:00+00:00"
    assert payload.unit_code == "H-A" and payload.ballot_id not in body["receipt"]
    check = await survey.client.get(
        "/api/receipts/verify", params={"campaign": campaign_id, "receipt": body["receipt"]}
    )
    assert check.json() == {"campaign": campaign_id, "valid": True, "submitted_on": "2023-09-22"}

    # Many-unit form: every rated unit must be answered; unit_code is None on the event.
    chi = survey.as_(respondent(campaign_id, "chi", None, "01"))
    r = await survey.client.post(
        "/api/ballots", json={"answers": full_answers("H-A") + full_answers("H-B")}, headers=chi
    )
    assert r.status_code == 201, r.text

    async def progress_admin() -> dict | None:
        resp = await survey.client.get(
            f"/api/progress?campaign={campaign_id}", headers=survey.as_(ADMIN)
        )
        rows = {(u["unit_code"], u["form_code"]): u for u in resp.json()["units"]}
        return (
            rows
            if rows[("H-A", "02")]["received"] == 1 and rows[("H-B", "01")]["received"]
            else None
        )

    rows = await eventually(progress_admin)
    assert (rows[("H-A", "02")]["quota"], rows[("H-A", "02")]["rate"]) == (3, 0.3333)
    assert rows[("H-B", "02")]["received"] == 0
    assert (rows[("H-A", "01")]["received"], rows[("H-A", "01")]["quota"]) == (1, 5)

    focal = Principal(subject="fp", role="focal_point", campaign_id=campaign_id, unit_code="H-A")
    resp = await survey.client.get(
        f"/api/progress?campaign={campaign_id}", headers=survey.as_(focal)
    )
    assert resp.status_code == 200
    fp = resp.json()
    assert {u["unit_code"] for u in fp["units"]} == {"H-A"}
    assert fp["not_answered"] == [{"full_name": "Nguyễn Văn BINH", "form_code": "02"}]
    assert "answers" not in resp.text and "option_code" not in resp.text

    # Respondents cannot see progress; focal points cannot define campaigns.
    assert (await survey.client.get("/api/progress", headers=an)).status_code == 403
    r = await survey.client.post("/api/campaigns", json={}, headers=survey.as_(focal))
    assert r.status_code == 403


async def test_wave_not_open_is_refused(survey: Survey, nc, campaign_id: str) -> None:
    c = small_campaign(campaign_id)
    r = await survey.client.post(
        "/api/campaigns", json=c.model_dump(mode="json"), headers=survey.as_(ADMIN)
    )
    assert r.status_code == 201
    await register(nc.jetstream(), campaign_id, "an", "H-A", "02")
    an = survey.as_(respondent(campaign_id, "an"))

    async def registered() -> bool:
        return (await survey.client.get("/api/form", headers=an)).status_code == 200

    await eventually(registered)
    r = await survey.client.post("/api/ballots", json={"answers": full_answers("H-A")}, headers=an)
    assert r.status_code == 403 and r.json()["error"] == "wave_not_open"


async def test_twenty_concurrent_submissions_one_ballot(
    survey: Survey, nc, campaign_id: str
) -> None:
    await setup_open_campaign(survey, nc, campaign_id, [("an", "H-A", "02")])
    an = survey.as_(respondent(campaign_id, "an"))
    results = await asyncio.gather(
        *(
            survey.client.post(
                "/api/ballots",
                json={"answers": full_answers("H-A"), "client_submission_id": f"tab-{i}"},
                headers=an,
            )
            for i in range(20)
        )
    )
    codes = sorted(r.status_code for r in results)
    assert codes == [201] + [409] * 19
    refused = [r.json() for r in results if r.status_code == 409]
    day = next(r.json()["submitted_on"] for r in results if r.status_code == 201)
    assert all(b == {"error": "already_submitted", "submitted_on": day} for b in refused)
    subject = subjects.ballot(campaign_id, pseudonym(KEY, campaign_id, "an"))
    assert await subject_count(nc.jetstream(), subject) == 1


async def test_retry_with_same_submission_id_is_the_same_ballot(
    survey: Survey, nc, campaign_id: str
) -> None:
    await setup_open_campaign(survey, nc, campaign_id, [("an", "H-A", "02")])
    an = survey.as_(respondent(campaign_id, "an"))
    body = {"answers": full_answers("H-A"), "client_submission_id": "phone-1"}
    first = await survey.client.post("/api/ballots", json=body, headers=an)
    again = await survey.client.post("/api/ballots", json=body, headers=an)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    subject = subjects.ballot(campaign_id, pseudonym(KEY, campaign_id, "an"))
    assert await subject_count(nc.jetstream(), subject) == 1
    other = {"answers": full_answers("H-A"), "client_submission_id": "laptop-1"}
    r = await survey.client.post("/api/ballots", json=other, headers=an)
    assert r.status_code == 409 and r.json()["error"] == "already_submitted"


async def test_ballot_after_deadline_is_refused(survey: Survey, nc, campaign_id: str) -> None:
    await setup_open_campaign(survey, nc, campaign_id, [("an", "H-A", "02")])
    an = survey.as_(respondent(campaign_id, "an"))
    survey.set_clock(AFTER)

    async def closed() -> bool:
        return (await survey.client.get("/api/form", headers=an)).json()["deadline_passed"]

    await eventually(closed)
    r = await survey.client.post("/api/ballots", json={"answers": full_answers("H-A")}, headers=an)
    assert r.status_code == 409 and r.json() == {"error": "deadline_passed"}
    assert await subject_count(nc.jetstream(), f"par.evt.{campaign_id}.ballot.*") == 0


async def test_validation_errors_name_the_question(survey: Survey, nc, campaign_id: str) -> None:
    people = [("an", "H-A", "02"), ("chi", None, "01")]
    await setup_open_campaign(survey, nc, campaign_id, people)
    an = survey.as_(respondent(campaign_id, "an"))
    answers = [
        {"unit_code": "H-A", "question_id": "Q1", "option_code": "maybe"},
        {"unit_code": "H-A", "question_id": "Q9", "option_code": "yes"},
        {"unit_code": "H-B", "question_id": "Q1", "option_code": "yes"},
    ]
    r = await survey.client.post("/api/ballots", json={"answers": answers}, headers=an)
    assert r.status_code == 422
    problems = r.json()["problems"]
    messages = " | ".join(p["message"] for p in problems)
    assert "question Q1: option 'maybe' is not one of yes, no, dk" in messages
    assert "question Q9 is not on form 02" in messages
    assert "unit H-B is not rated on form 02" in messages
    assert "question Q2 is required for unit H-A and not answered" in messages
    assert {p["question_id"] for p in problems} == {"Q1", "Q2", "Q9"}

    chi = survey.as_(respondent(campaign_id, "chi", None, "01"))
    r = await survey.client.post("/api/ballots", json={"answers": full_answers("H-A")}, headers=chi)
    assert r.status_code == 422
    missing = {(p["unit_code"], p["question_id"]) for p in r.json()["problems"]}
    assert missing == {("H-B", "Q1"), ("H-B", "Q2")}
    js = nc.jetstream()
    assert await subject_count(js, f"par.evt.{campaign_id}.ballot.*") == 0


async def test_two_instances_open_the_wave_and_reach_the_deadline_once(
    nats_url, pg_url, signing_key, identity_stub, nc, campaign_id: str
) -> None:
    async with (
        running(nats_url, pg_url, signing_key) as a,
        running(nats_url, pg_url, signing_key) as b,
    ):
        await setup_open_campaign(a, nc, campaign_id, [("an", "H-A", "02")])
        b.set_clock(OPEN)
        an = a.as_(respondent(campaign_id, "an"))
        r = await b.client.post("/api/ballots", json={"answers": full_answers("H-A")}, headers=an)
        assert r.status_code == 201, r.text
        a.set_clock(AFTER)
        b.set_clock(AFTER)
        js = nc.jetstream()

        async def deadline_written() -> bool:
            return await subject_count(js, subjects.deadline(campaign_id)) == 1

        await eventually(deadline_written)
        # Fresh schedulers that have not seen anything race each other, too.
        from services.survey.scheduler import Scheduler

        racers = [Scheduler(js, s.rt.sessions, s.rt.extras["clock"]) for s in (a, b, a, b)]
        written = await asyncio.gather(*(r.tick() for r in racers))
        assert sum(written) == 0
        assert await subject_count(js, subjects.wave(campaign_id, "w1")) == 1
        assert await subject_count(js, subjects.deadline(campaign_id)) == 1

        # Both instances ran the projection on one database: the ballot counts once.
        last = (await js.stream_info(subjects.EVENTS_STREAM)).state.last_seq

        async def caught_up() -> bool:
            return all(s.rt.extras["projection"].applied_seq >= last for s in (a, b))

        await eventually(caught_up)
        resp = await a.client.get(f"/api/progress?campaign={campaign_id}", headers=a.as_(ADMIN))
        row = next(
            u for u in resp.json()["units"] if u["unit_code"] == "H-A" and u["form_code"] == "02"
        )
        assert row["received"] == 1
        assert resp.json()["deadline_passed"] is True


async def test_campaign_frozen_after_first_wave(survey: Survey, nc, campaign_id: str) -> None:
    c = small_campaign(campaign_id)
    admin = survey.as_(ADMIN)
    r1 = await survey.client.post("/api/campaigns", json=c.model_dump(mode="json"), headers=admin)
    r2 = await survey.client.post("/api/campaigns", json=c.model_dump(mode="json"), headers=admin)
    assert (r1.json()["version"], r2.json()["version"]) == (1, 2)
    bad = c.model_dump(mode="json") | {"waves": []}
    r = await survey.client.post("/api/campaigns", json=bad, headers=admin)
    assert r.status_code == 422 and r.json()["detail"]["problems"]
    await publish_event(
        nc.jetstream(),
        subjects.wave(campaign_id, "w1"),
        make(WaveOpened(wave_id="w1", opens_at=OPEN), campaign_id=campaign_id, producer="t"),
        expected_last_subject_seq=0,
    )
    r = await survey.client.post("/api/campaigns", json=c.model_dump(mode="json"), headers=admin)
    assert r.status_code == 409
    assert r.json()["detail"]["message"] == "campaign is frozen after its first wave"


def test_cli_campaign_load(
    nats_url: str, tmp_path: Path, campaign_id: str, monkeypatch, capsys
) -> None:
    from parindex.cli import main

    monkeypatch.setenv("PARINDEX_NATS_URL", nats_url)
    path = tmp_path / "campaign.json"
    path.write_text(small_campaign(campaign_id).model_dump_json())
    assert main(["campaign", "load", str(path)]) == 0
    assert f"campaign {campaign_id} defined, version 1" in capsys.readouterr().out

    async def open_wave() -> None:
        import nats

        client = await nats.connect(nats_url)
        await publish_event(
            client.jetstream(),
            subjects.wave(campaign_id, "w1"),
            make(WaveOpened(wave_id="w1", opens_at=OPEN), campaign_id=campaign_id, producer="t"),
        )
        await client.drain()

    asyncio.run(open_wave())
    assert main(["campaign", "load", str(path)]) == 3
    assert "campaign is frozen after its first wave" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"id": campaign_id}))
    assert main(["campaign", "load", str(bad)]) == 2


async def test_no_identity_in_ballots_and_no_table_joins_people_to_answers(
    survey: Survey, nc, campaign_id: str
) -> None:
    people = [("r-alpha01", "H-A", "02"), ("r-bravo02", "H-B", "02")]
    await setup_open_campaign(survey, nc, campaign_id, people)
    for rid, unit, _ in people:
        headers = survey.as_(respondent(campaign_id, rid, unit))
        r = await survey.client.post(
            "/api/ballots", json={"answers": full_answers(unit)}, headers=headers
        )
        assert r.status_code == 201
    msgs = await read_all(nc.jetstream(), subjects.all_events(campaign_id))
    ballots = [m for m in msgs if decode(m.data)[0].type == "BallotSubmitted"]
    assert len(ballots) == 2
    for m in ballots:
        raw = m.data.decode() + m.subject + json.dumps(dict(m.headers or {}))
        for rid, _, _ in people:
            for secret in (rid, f"user-{rid}", f"{rid}@example.vn", rid.upper()):
                assert secret not in raw, (secret, raw)
        env, _ = decode(m.data)
        assert env.occurred_at.time().isoformat() == "00:00:00"

    async with survey.rt.engine.connect() as conn:
        cols = (
            await conn.execute(
                text(
                    "SELECT table_name, column_name FROM information_schema.columns "
                    "WHERE table_schema = 'public'"
                )
            )
        ).all()
    tables: dict[str, set[str]] = {}
    for t, col in cols:
        tables.setdefault(t, set()).add(col)
    linked = {
        t
        for t, c in tables.items()
        if "respondent_id" in c
        and c & {"answers", "answer", "option_code", "pseudonym", "ballot_id"}
    }
    assert not linked
    assert "respondent_id" not in tables["survey_drafts"]
    assert not {"voted", "submitted_at", "voted_at", "voted_on"} & tables["survey_respondents"]
