"""Counted means counted, secret means secret (issue #13, survey side).

The log decides the deadline: a ballot gets 201 and a receipt only if JetStream sequenced it
before the campaign's DeadlineReached, which is exactly the ballot scoring counts. Progress
counts per answered unit as scoring does. The receipt proves a day, not a ballot. Who voted is
derived from the log, so no survey table keeps an order of arrival or a time of day.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.js.errors import NotFoundError
from sqlalchemy import text

from contracts import subjects
from contracts.campaign import Campaign
from contracts.events import BallotSubmitted, DeadlineReached, decode, make
from parindex.bus.publish import ConcurrencyConflict, publish_event
from parindex.settings import Settings
from parindex.web.auth import Principal
from parindex.web.service import create_app
from services.scoring.service import SERVICE as SCORING
from services.survey import ballots
from services.survey.secrecy import pseudonym
from tests.migrations import engine_at
from tests.survey.test_service import (
    ADMIN,
    KEY,
    OPEN,
    Survey,
    full_answers,
    read_all,
    register,
    respondent,
    setup_open_campaign,
    small_campaign,
)
from tests.survey.test_web import page_headers, token
from tests.waiting import eventually

RACERS = 8
ROUNDS = 20


@pytest.fixture
async def scoring(nats_url: str, pg_url: str, tmp_path: Path) -> AsyncIterator[Any]:
    """The real scoring service, in-process, to compare its counts with survey's."""
    settings = Settings(nats_url=nats_url, database_url=pg_url, state_dir=tmp_path)
    app = create_app(SCORING, settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://scoring") as client:
            yield client


async def publish_deadline(js: Any, campaign_id: str) -> int:
    published = await publish_event(
        js,
        subjects.deadline(campaign_id),
        make(DeadlineReached(deadline=datetime.now(UTC)), campaign_id=campaign_id, producer="t"),
        expected_last_subject_seq=0,
    )
    return published.seq


async def close_once(js: Any, campaign_id: str) -> None:
    """Publish DeadlineReached unless it is already on the log (expected subject sequence 0)."""
    try:
        await publish_deadline(js, campaign_id)
    except ConcurrencyConflict:
        pass


async def last_seq(js: Any) -> int:
    return int((await js.stream_info(subjects.EVENTS_STREAM)).state.last_seq)


async def survey_caught_up(survey: Survey, seq: int) -> bool:
    async with survey.rt.sessions() as s:
        done = await s.scalar(text("SELECT seq FROM projection_offsets WHERE name = 'survey'"))
    return int(done or 0) >= seq


async def progress_rows(survey: Survey, campaign_id: str) -> dict[tuple[str, str], int]:
    r = await survey.client.get(f"/api/progress?campaign={campaign_id}", headers=survey.as_(ADMIN))
    assert r.status_code == 200, r.text
    return {(u["unit_code"], u["form_code"]): u["received"] for u in r.json()["units"]}


async def scoring_rows(scoring: Any, campaign_id: str) -> dict[tuple[str, str], int] | None:
    r = await scoring.get("/api/results", params={"campaign": campaign_id})
    if r.status_code != 200:
        return None
    # Scores stay hidden until an admin publishes (docs/architecture.md, decision 16); the
    # received counts per unit and form are public throughout and are what this compares.
    return {
        (row["unit_code"], row["form_code"]): row["received"]
        for row in r.json()["counts"]
        if row["form_code"] is not None
    }


# --- 1. the log decides the deadline ---------------------------------------------------------
async def test_deadline_race_every_201_is_counted_and_every_uncounted_got_409(
    survey: Survey, scoring: Any, nc: Any, campaign_id: str
) -> None:
    """Respondents submit while DeadlineReached is published, 20 times over."""
    js = nc.jetstream()
    totals = {"counted": 0, "late_on_log": 0, "refused_before_log": 0}
    campaigns = []
    for round_ in range(ROUNDS):
        cid = f"{campaign_id}-{round_}"
        people = [(f"p{i}", "H-A" if i % 2 else "H-B", "02") for i in range(RACERS)]
        await setup_open_campaign(survey, nc, cid, people)
        fired = asyncio.Event()
        seen = [0]

        async def on_ballot(
            _msg: Any, cid: str = cid, fired: asyncio.Event = fired, seen: list = seen
        ) -> None:
            seen[0] += 1
            if seen[0] == RACERS // 3:  # a third are on the log: close the campaign now
                await close_once(js, cid)
                fired.set()

        sub = await nc.subscribe(subjects.ballot(cid, "*"), cb=on_ballot)
        answers = await asyncio.gather(
            *(
                survey.client.post(
                    "/api/ballots",
                    json={"answers": full_answers(unit)},
                    headers=survey.as_(respondent(cid, rid, unit)),
                )
                for rid, unit, _ in people
            )
        )
        await sub.unsubscribe()
        if not fired.is_set():
            await close_once(js, cid)
        closed_at = (await js.get_last_msg(subjects.EVENTS_STREAM, subjects.deadline(cid))).seq
        for (rid, unit, _), r in zip(people, answers, strict=True):
            subject = subjects.ballot(cid, pseudonym(KEY, cid, rid))
            try:
                on_log = (await js.get_last_msg(subjects.EVENTS_STREAM, subject)).seq
            except NotFoundError:
                on_log = None
            counted = on_log is not None and on_log < closed_at  # scoring's rule
            if counted:
                assert r.status_code == 201, (rid, r.text)
                totals["counted"] += 1
            else:
                assert r.status_code == 409 and r.json() == {"error": "deadline_passed"}, r.text
                totals["late_on_log" if on_log else "refused_before_log"] += 1
                # The respondent's view agrees: not submitted, no receipt.
                form = await survey.client.get(
                    "/api/form", headers=survey.as_(respondent(cid, rid, unit))
                )
                assert form.json()["submitted"] is False and form.json()["deadline_passed"]
        campaigns.append((cid, sum(1 for r in answers if r.status_code == 201)))
    assert totals["counted"] > 0 and totals["late_on_log"] > 0, totals

    # Survey's progress and scoring's results count exactly the 201s.
    end = await last_seq(js)
    await eventually(lambda: survey_caught_up(survey, end), timeout=30)
    for cid, accepted in campaigns:
        rows = await progress_rows(survey, cid)
        assert rows[("H-A", "02")] + rows[("H-B", "02")] == accepted

        async def scored(cid: str = cid, accepted: int = accepted) -> bool:
            got = await scoring_rows(scoring, cid)
            return got is not None and sum(got.values()) == accepted

        await eventually(scored, timeout=30)


async def test_late_ballot_gets_409_and_no_receipt_when_survey_lags(
    survey: Survey, nc: Any, campaign_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The projection has not seen DeadlineReached yet: the log still decides, JSON and HTML."""
    people = [("an", "H-A", "02"), ("binh", "H-A", "02"), ("chi", "H-A", "02")]
    await setup_open_campaign(survey, nc, campaign_id, people)
    js = nc.jetstream()
    chi = survey.as_(respondent(campaign_id, "chi"))
    r = await survey.client.post("/api/ballots", json={"answers": full_answers("H-A")}, headers=chi)
    assert r.status_code == 201  # before the deadline: counted
    real_status = ballots.status

    async def lagging(d: ballots.Deps, who: ballots.Who) -> ballots.Status:
        return dataclasses.replace(await real_status(d, who), deadline_passed=False)

    monkeypatch.setattr(ballots, "status", lagging)
    closed_at = await publish_deadline(js, campaign_id)

    an = survey.as_(respondent(campaign_id, "an"))
    r = await survey.client.post("/api/ballots", json={"answers": full_answers("H-A")}, headers=an)
    assert r.status_code == 409 and r.json() == {"error": "deadline_passed"}
    subject = subjects.ballot(campaign_id, pseudonym(KEY, campaign_id, "an"))
    assert (await js.get_last_msg(subjects.EVENTS_STREAM, subject)).seq > closed_at
    form = (await survey.client.get("/api/form", headers=an)).json()
    assert form["submitted"] is False and form["late"] is True
    again = await survey.client.post(
        "/api/ballots", json={"answers": full_answers("H-A")}, headers=an
    )
    assert again.status_code == 409 and again.json() == {"error": "deadline_passed"}

    # HTML: 409, the Vietnamese "arrived after the deadline" page, no receipt.
    binh = page_headers(survey, respondent(campaign_id, "binh"))
    form_data = {
        "csrf": token(survey, respondent(campaign_id, "binh")),
        "action": "submit",
        "client_submission_id": "x1",
    }
    form_data |= {"a:H-A:Q1": "yes", "a:H-A:Q2": "no"}
    page = await survey.client.post("/survey", data=form_data, headers=binh)
    assert page.status_code == 409
    assert "đến sau khi đợt khảo sát đã hết hạn" in page.text
    assert 'id="receipt"' not in page.text and "Bạn đã gửi phiếu" not in page.text
    later = await survey.client.get("/survey", headers=binh)
    assert "không được tính" in later.text and 'id="receipt"' not in later.text

    # Survey's projection does not count them either, as scoring would not.
    end = await last_seq(js)
    await eventually(lambda: survey_caught_up(survey, end))
    assert (await progress_rows(survey, campaign_id))[("H-A", "02")] == 1
    # Nor are they "answered" for the focal point: participation means a counted ballot.
    focal = Principal(subject="fp", role="focal_point", campaign_id=campaign_id, unit_code="H-A")
    r = await survey.client.get(f"/api/progress?campaign={campaign_id}", headers=survey.as_(focal))
    assert [p["full_name"] for p in r.json()["not_answered"]] == [
        "Nguyễn Văn AN",
        "Nguyễn Văn BINH",
    ]


# --- 5. progress counts per rated unit, as scoring --------------------------------------------
def blank_units_campaign(campaign_id: str) -> Campaign:
    """small_campaign with form 01's questions optional, so a rated unit may be left blank."""
    doc = small_campaign(campaign_id).model_dump(mode="json")
    for form in doc["forms"]:
        if form["code"] == "01":
            for criterion in form["criteria"]:
                for q in criterion["questions"]:
                    q["required"] = False
    return Campaign.model_validate(doc)


async def test_progress_equals_results_on_many_units_form_with_blank_units(
    survey: Survey, scoring: Any, nc: Any, campaign_id: str
) -> None:
    c = blank_units_campaign(campaign_id)
    r = await survey.client.post(
        "/api/campaigns", json=c.model_dump(mode="json"), headers=survey.as_(ADMIN)
    )
    assert r.status_code == 201, r.text
    js = nc.jetstream()
    ballots = {  # respondent -> answers on form 01
        "d1": full_answers("H-A") + full_answers("H-B"),
        "d2": full_answers("H-A"),  # H-B left blank
        "d3": full_answers("H-B")[:1],  # H-A blank, one answer for H-B
        "d4": full_answers("H-A")[1:],
    }
    for rid in ballots:
        await register(js, campaign_id, rid, None, "01")
    await register(js, campaign_id, "e1", "H-A", "02")
    survey.set_clock(OPEN)
    for rid, answers in ballots.items():
        headers = survey.as_(respondent(campaign_id, rid, None, "01"))

        async def accepted(headers: dict[str, str] = headers, answers: list = answers) -> bool:
            resp = await survey.client.post(
                "/api/ballots", json={"answers": answers}, headers=headers
            )
            assert resp.status_code in (201, 403), resp.text  # 403 until the wave opens
            return resp.status_code == 201

        await eventually(accepted)
    e1 = survey.as_(respondent(campaign_id, "e1"))
    r = await survey.client.post("/api/ballots", json={"answers": full_answers("H-A")}, headers=e1)
    assert r.status_code == 201
    await publish_deadline(js, campaign_id)
    late = BallotSubmitted(  # sequenced after the deadline: counted by nobody
        ballot_id="late-1",
        form_code="01",
        unit_code=None,
        submitted_on=OPEN.date(),
        answers=full_answers("H-A"),
    )
    await publish_event(
        js, subjects.ballot(campaign_id, "late1"), make(late, campaign_id=campaign_id, producer="t")
    )

    expected = {("H-A", "01"): 3, ("H-B", "01"): 2, ("H-A", "02"): 1, ("H-B", "02"): 0}
    end = await last_seq(js)
    await eventually(lambda: survey_caught_up(survey, end))
    assert await progress_rows(survey, campaign_id) == expected

    async def scored() -> dict | None:
        got = await scoring_rows(scoring, campaign_id)
        return got if got == expected else None

    assert await eventually(scored, timeout=30) == expected


# --- 4. the receipt proves a day, not a ballot ---------------------------------------------------
async def test_receipt_verifies_and_reveals_no_ballot(
    survey: Survey, nc: Any, campaign_id: str
) -> None:
    await setup_open_campaign(survey, nc, campaign_id, [("an", "H-A", "02")])
    an = survey.as_(respondent(campaign_id, "an"))
    body = {"answers": full_answers("H-A"), "client_submission_id": "tab-1"}
    r = await survey.client.post("/api/ballots", json=body, headers=an)
    assert r.status_code == 201
    receipt = r.json()["receipt"]

    async def verify(code: str, campaign: str = campaign_id) -> dict[str, Any]:
        resp = await survey.client.get(
            "/api/receipts/verify", params={"campaign": campaign, "receipt": code}
        )
        assert resp.status_code == 200
        return resp.json()

    assert (await verify(receipt))["valid"] is True
    assert (await verify(receipt))["submitted_on"] == "2023-09-22"
    tampered = receipt[:-1] + ("0" if receipt[-1] != "0" else "1")
    assert (await verify(tampered))["valid"] is False
    assert (await verify(receipt.replace("20230922", "20230923")))["valid"] is False
    assert (await verify(receipt, "t-other"))["valid"] is False
    assert (await verify("not a receipt"))["valid"] is False

    # Nothing of the event is in the receipt: not the ballot id, sequence, pseudonym, event id.
    msg = (await read_all(nc.jetstream(), subjects.ballot(campaign_id, "*")))[0]
    env, payload = decode(msg.data)
    pseudo = pseudonym(KEY, campaign_id, "an")
    seq = str(msg.metadata.sequence.stream)
    for part in (payload.ballot_id, env.event_id, pseudo, pseudo[:12]):
        for piece in part.split("-"):
            if len(piece) >= 8:
                assert piece not in receipt, (piece, receipt)
    assert seq not in receipt.split("-")[1:]


# --- 3. participation without a trail ------------------------------------------------------------
async def test_no_per_respondent_order_or_time_of_day_in_survey_tables(
    survey: Survey, nc: Any, campaign_id: str
) -> None:
    people = [(f"v{i}", "H-A" if i % 2 else "H-B", "02") for i in range(6)]
    await setup_open_campaign(survey, nc, campaign_id, people)
    js = nc.jetstream()
    end = await last_seq(js)
    await eventually(lambda: survey_caught_up(survey, end))
    row_versions = (
        "SELECT respondent_id, xmin::text, ctid::text FROM survey_respondents WHERE campaign = :c"
    )
    async with survey.rt.engine.connect() as conn:
        before = (await conn.execute(text(row_versions), {"c": campaign_id})).all()
    for rid, unit, _ in reversed(people):
        r = await survey.client.post(
            "/api/ballots",
            json={"answers": full_answers(unit)},
            headers=survey.as_(respondent(campaign_id, rid, unit)),
        )
        assert r.status_code == 201
    end = await last_seq(js)
    await eventually(lambda: survey_caught_up(survey, end))

    # Who voted is still known (derived from the log) ...
    focal = survey.as_(
        Principal(subject="fp", role="focal_point", campaign_id=campaign_id, unit_code="H-A")
    )
    r = await survey.client.get(f"/api/progress?campaign={campaign_id}", headers=focal)
    assert r.status_code == 200 and r.json()["not_answered"] == []

    async with survey.rt.engine.connect() as conn:
        after = (await conn.execute(text(row_versions), {"c": campaign_id})).all()
        # ... but voting touched no respondent row (no update order, no flag, no time) ...
        assert sorted(after) == sorted(before)
        # ... and no survey table has a column finer than a day, or a per-person ballot trace.
        typed = (
            await conn.execute(
                text(
                    "SELECT table_name, column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = 'public'"
                )
            )
        ).all()
    assert typed
    timed = [(t, c, d) for t, c, d in typed if d.startswith(("timestamp", "time", "interval"))]
    assert timed == []
    cols = {(t, c) for t, c, _ in typed}
    assert ("survey_respondents", "voted") not in cols


# --- the upgrade: survey_0003 drops the flag and rebuilds the counts from the log ---------------
async def test_upgrade_drops_voted_and_rebuilds_counts_per_unit(
    survey: Survey, nc: Any, campaign_id: str, db_url: str
) -> None:
    from parindex.bus.projection import ProjectionRunner
    from parindex.db.engine import migrate, sessionmaker
    from services.survey.projection import SurveyProjection
    from services.survey.service import SERVICE

    # A campaign whose many-units ballots the old projection kept under one blank unit.
    people = [("m1", None, "01"), ("m2", None, "01")]
    await setup_open_campaign(survey, nc, campaign_id, people)
    for rid, _, _ in people:
        r = await survey.client.post(
            "/api/ballots",
            json={"answers": full_answers("H-A") + full_answers("H-B")},
            headers=survey.as_(respondent(campaign_id, rid, None, "01")),
        )
        assert r.status_code == 201

    async with engine_at(db_url, SERVICE.versions_dir, "survey_0002") as engine:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO survey_respondents (campaign, respondent_id, form_code, "
                    "full_name, voted) VALUES (:c, 'm1', '01', 'M1', true)"
                ),
                {"c": campaign_id},
            )
            await conn.execute(
                text("INSERT INTO survey_ballot_counts VALUES (:c, '', '01', 2)"),
                {"c": campaign_id},
            )
            await conn.execute(text("INSERT INTO projection_offsets VALUES ('survey', 999999)"))
        await migrate(engine, SERVICE.versions_dir)
        async with engine.connect() as conn:
            cols = set(
                (
                    await conn.execute(
                        text(
                            "SELECT column_name FROM information_schema.columns "
                            "WHERE table_name = 'survey_respondents'"
                        )
                    )
                ).scalars()
            )
            assert "voted" not in cols
            assert await conn.scalar(text("SELECT count(*) FROM survey_ballot_counts")) == 0
            assert await conn.scalar(text("SELECT seq FROM projection_offsets")) == 0
        await ProjectionRunner(nc, sessionmaker(engine), SurveyProjection()).catch_up()
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT unit_code, form_code, received FROM survey_ballot_counts "
                        "WHERE campaign = :c ORDER BY unit_code"
                    ),
                    {"c": campaign_id},
                )
            ).all()
        assert [tuple(r) for r in rows] == [("H-A", "01", 2), ("H-B", "01", 2)]
