"""The scoring service on real NATS and PostgreSQL: results frozen once, then audited."""

from __future__ import annotations

from datetime import UTC, datetime

import nats
from sqlalchemy import text

from contracts import subjects
from contracts.events import CampaignDefined, DeadlineReached, decode, make
from parindex.bus.publish import publish_event
from parindex.db.engine import make_engine
from parindex.settings import Settings
from parindex.web.service import create_app
from services.scoring.audit import audit
from services.scoring.service import SERVICE
from tests.scoring.test_method import WORKED_BALLOTS, WORKED_DIGEST, ballot, worked_campaign
from tests.waiting import eventually


async def publish_worked(js, cid: str) -> None:
    """The worked example of docs/scoring-method.md on the log: its campaign and ballots."""
    camp = worked_campaign().model_copy(update={"id": cid})
    await publish_event(
        js,
        subjects.campaign(cid),
        make(CampaignDefined(campaign=camp), campaign_id=cid, producer="t"),
    )
    for b in WORKED_BALLOTS:
        await publish_event(
            js, subjects.ballot(cid, b.ballot_id), make(b, campaign_id=cid, producer="survey")
        )


async def _publish_campaign_with_late_ballot(js, cid: str) -> None:
    await publish_worked(js, cid)
    await publish_event(
        js,
        subjects.deadline(cid),
        make(DeadlineReached(deadline=datetime.now(UTC)), campaign_id=cid, producer="survey"),
        expected_last_subject_seq=0,
    )
    late = ballot("b8", "S02", {"Q1": "T", "Q2": "T", "Q3": "T"})  # would lift S02 to its quota
    await publish_event(
        js, subjects.ballot(cid, "b8"), make(late, campaign_id=cid, producer="survey")
    )


async def _published(js, cid: str):
    try:
        msg = await js.get_last_msg(subjects.EVENTS_STREAM, subjects.results(cid))
    except nats.js.errors.NotFoundError:
        return None
    return decode(msg.data)[1]


async def test_results_are_published_once_with_the_method_digest_and_audit_passes(
    nc, nats_url, pg_url, campaign_id, tmp_path
) -> None:
    js = nc.jetstream()
    await _publish_campaign_with_late_ballot(js, campaign_id)
    settings = Settings(nats_url=nats_url, database_url=pg_url, state_dir=tmp_path)
    app = create_app(SERVICE, settings)
    async with app.router.lifespan_context(app):
        published = await eventually(lambda: _published(js, campaign_id), timeout=30)
        await _check_pages(app, campaign_id)
    # The independent computation of the worked example (docs/scoring-method.md) gives the same
    # digest: the late ballot b8 is not counted.
    assert published.digest == WORKED_DIGEST
    s02 = next(r for r in published.rows if r.unit_code == "S02" and r.form_code is None)
    assert s02.received == 3 and s02.adjusted == "2.41"

    report = await audit(nc, settings, campaign_id)
    assert report.ok, report.render()
    assert report.digest == WORKED_DIGEST

    engine = make_engine(settings.service_database_url("scoring"))
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE scoring_results SET adjusted = '9.99' "
                "WHERE campaign_id = :c AND unit_code = 'S02' AND form_code = ''"
            ),
            {"c": campaign_id},
        )
    await engine.dispose()
    tampered = await audit(nc, settings, campaign_id)
    assert not tampered.ok
    assert any("unit S02 total: adjusted is 9.99" in d for d in tampered.differences)
    assert "S02" in tampered.render() and "FAILED" in tampered.render()


async def test_two_instances_publish_results_exactly_once(
    nc, nats_url, pg_url, campaign_id, tmp_path
):
    js = nc.jetstream()
    await _publish_campaign_with_late_ballot(js, campaign_id)
    settings = Settings(nats_url=nats_url, database_url=pg_url, state_dir=tmp_path)
    a, b = create_app(SERVICE, settings), create_app(SERVICE, settings)
    async with a.router.lifespan_context(a), b.router.lifespan_context(b):
        await eventually(lambda: _published(js, campaign_id), timeout=30)
    info = await js.stream_info(
        subjects.EVENTS_STREAM, subjects_filter=subjects.results(campaign_id)
    )
    assert info.state.subjects == {subjects.results(campaign_id): 1}


async def _check_pages(app, cid: str) -> None:
    """Frozen but not published: the public sees ballots against quota, and no score."""
    import io

    import httpx
    from openpyxl import load_workbook

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:

        async def frozen() -> dict | None:
            body = (await http.get("/api/results", params={"campaign": cid})).json()
            return body if body["status"] == "frozen" else None

        api = await eventually(frozen, timeout=30)
        assert api["final"] and api["digest"] is None and api["rows"] == []
        s02 = next(c for c in api["counts"] if c["unit_code"] == "S02" and c["form_code"] is None)
        assert (s02["received"], s02["quota"]) == (3, 4)
        page = await http.get("/dashboard", params={"campaign": cid})
        assert page.status_code == 200
        assert "Kết quả điều tra xã hội học" in page.text
        assert "3 / 4" in page.text and "chờ công bố" in page.text
        assert "−0,80" not in page.text and "2,41" not in page.text
        en = await http.get("/dashboard", params={"campaign": cid, "lang": "en"})
        assert "Survey results" in en.text and "await publication" in en.text
        unit = await http.get("/dashboard/units/S02", params={"campaign": cid, "lang": "vi"})
        assert unit.status_code == 200 and "2,41" not in unit.text and "(thiếu 1)" in unit.text
        csv_text = (await http.get("/export/results.csv", params={"campaign": cid})).text
        assert 'S02,Sở S02,"Sở, ban, ngành tỉnh",Tổng cộng,3,4\r\n' in csv_text
        assert "2.41" not in csv_text and csv_text.startswith("\ufeffMã đơn vị,Tên đơn vị,")
        xlsx = await http.get("/export/results.xlsx", params={"campaign": cid})
        wb = load_workbook(io.BytesIO(xlsx.content))
        assert wb.sheetnames == ["Số phiếu"]
        questions = await http.get("/export/questions.csv", params={"campaign": cid})
        assert questions.status_code == 404  # per-question figures: never before publication
        missing = await http.get("/dashboard", params={"campaign": "nope"})
        assert missing.status_code == 404


async def test_two_instances_count_each_ballot_once(nc, nats_url, pg_url, campaign_id, tmp_path):
    """Both instances run the projection on one database: the offset row serialises them."""
    js = nc.jetstream()
    await _publish_campaign_with_late_ballot(js, campaign_id)
    settings = Settings(nats_url=nats_url, database_url=pg_url, state_dir=tmp_path)
    a, b = create_app(SERVICE, settings), create_app(SERVICE, settings)
    async with a.router.lifespan_context(a), b.router.lifespan_context(b):
        published = await eventually(lambda: _published(js, campaign_id), timeout=30)
    assert published.digest == WORKED_DIGEST  # double counting would change every number
