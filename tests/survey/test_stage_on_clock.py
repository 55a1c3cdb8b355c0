"""A campaign's stage moves with campaign time on a test clock, as every staff page shows it:
published, collecting at the first wave, closed at the deadline, results frozen by scoring,
results published (docs/architecture.md, decision 39)."""

from __future__ import annotations

import re

import httpx

from contracts import subjects
from contracts.events import ResultsPublished, ResultsReleased, decode, make
from parindex.bus.publish import publish_event
from parindex.settings import Settings
from parindex.web.auth import COOKIE, issue_token
from parindex.web.service import create_app
from services.scoring.service import SERVICE as SCORING
from tests.survey.test_service import (  # noqa: F401  # fixtures, reused
    ADMIN,
    AFTER,
    OPEN,
    Survey,
    identity_stub,
    signing_key,
    small_campaign,
    survey,
)
from tests.waiting import eventually


async def test_stage_follows_the_clock(
    survey: Survey,  # noqa: F811
    nats_url,
    pg_url,
    nc,
    campaign_id,
    tmp_path,
) -> None:
    js = nc.jetstream()
    settings = Settings(nats_url=nats_url, database_url=pg_url, state_dir=tmp_path)
    scoring = create_app(SCORING, settings)
    async with scoring.router.lifespan_context(scoring):
        c = small_campaign(campaign_id)
        headers = survey.as_(ADMIN)
        r = await survey.client.post(
            "/api/campaigns", json=c.model_dump(mode="json"), headers=headers
        )
        assert r.status_code == 201, r.text
        cookie = {COOKIE: issue_token(survey.key, ADMIN)}

        async def shown() -> str:
            page = await survey.client.get(
                "/progress", params={"campaign": campaign_id}, cookies=cookie
            )
            found = re.search(r'data-stage="([a-z_]+)"', page.text)
            return found.group(1) if found else ""

        async def stage_is(want: str) -> bool:
            return await shown() == want

        await eventually(lambda: stage_is("published"), timeout=15)
        survey.set_clock(OPEN)  # the scheduler opens wave w1
        await eventually(lambda: stage_is("collecting"), timeout=15)
        survey.set_clock(AFTER)  # the scheduler puts DeadlineReached on the log ...
        # ... and scoring freezes the results at once: closed, then results frozen.
        await eventually(lambda: _on_log(js, subjects.deadline(campaign_id)), timeout=15)
        frozen = await eventually(lambda: _on_log(js, subjects.results(campaign_id)), timeout=30)
        await eventually(lambda: stage_is("results_frozen"), timeout=15)
        assert isinstance(frozen, ResultsPublished)
        release = ResultsReleased(
            digest=frozen.digest, released_by="admin", released_on=AFTER.date()
        )
        await publish_event(
            js,
            subjects.release(campaign_id),
            make(release, campaign_id=campaign_id, producer="test"),
        )
        await eventually(lambda: stage_is("results_published"), timeout=15)
        # Scoring's pages (another service, its own watch) say the same.
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=scoring), base_url="http://scoring"
        ) as http:
            page = await http.get("/dashboard", params={"campaign": campaign_id}, cookies=cookie)
            assert 'data-stage="results_published">Đã công bố kết quả<' in page.text


async def _on_log(js, subject: str) -> object | None:
    try:
        msg = await js.get_last_msg(subjects.EVENTS_STREAM, subject)
    except Exception:  # not there yet
        return None
    return decode(msg.data)[1]
