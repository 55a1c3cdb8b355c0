"""A bus that answers only transiently: 503 + Retry-After, answers kept; retries get receipts.

docs/architecture.md, decision 23.
"""

from __future__ import annotations

from typing import Any

import pytest
from nats.js.errors import NoStreamResponseError

from parindex.bus.publish import PublishUnavailable
from services.survey import ballots
from tests.survey.test_service import Survey, full_answers, respondent, setup_open_campaign
from tests.survey.test_web import checked, page_headers, token


@pytest.fixture
def bus_down(monkeypatch: pytest.MonkeyPatch) -> None:
    async def unavailable(js: Any, subject: str, *args: Any, **kw: Any) -> Any:
        raise PublishUnavailable(subject, NoStreamResponseError())

    monkeypatch.setattr(ballots, "publish_event", unavailable)


async def test_unavailable_bus_is_503_with_retry_after_json_and_html(
    survey: Survey, nc, campaign_id: str, bus_down: None
) -> None:
    await setup_open_campaign(survey, nc, campaign_id, [("an", "H-A", "02")])
    p = respondent(campaign_id, "an")
    body = {"answers": full_answers("H-A"), "client_submission_id": "phone-1"}
    r = await survey.client.post("/api/ballots", json=body, headers=survey.as_(p))
    assert r.status_code == 503, r.text
    assert int(r.headers["retry-after"]) > 0

    form = {"csrf": token(survey, p), "action": "submit", "client_submission_id": "s-1"}
    form |= {"a:H-A:Q1": "no", "a:H-A:Q2": "yes"}
    r = await survey.client.post("/survey", data=form, headers=page_headers(survey, p))
    assert r.status_code == 503, r.text
    assert int(r.headers["retry-after"]) > 0
    assert "Hệ thống đang bận" in r.text and "thử gửi lại" in r.text
    assert checked(r.text, "o-H-A-Q1-no") and checked(r.text, "o-H-A-Q2-yes")  # answers kept
    draft = (await survey.client.get("/api/draft", headers=survey.as_(p))).json()["answers"]
    assert {(a["question_id"], a["option_code"]) for a in draft} == {("Q1", "no"), ("Q2", "yes")}


async def test_same_submission_twice_same_receipt_other_submission_409_with_day(
    survey: Survey, nc, campaign_id: str
) -> None:
    await setup_open_campaign(survey, nc, campaign_id, [("an", "H-A", "02")])
    p = respondent(campaign_id, "an")
    an = survey.as_(p)
    body = {"answers": full_answers("H-A"), "client_submission_id": "phone-1"}
    first = await survey.client.post("/api/ballots", json=body, headers=an)
    again = await survey.client.post("/api/ballots", json=body, headers=an)
    assert first.status_code == 201 and again.status_code in (200, 201)
    assert first.json()["receipt"] == again.json()["receipt"]

    other = {"answers": full_answers("H-A"), "client_submission_id": "laptop-1"}
    r = await survey.client.post("/api/ballots", json=other, headers=an)
    assert r.status_code == 409
    assert r.json() == {"error": "already_submitted", "submitted_on": first.json()["submitted_on"]}

    # The page: the same submission id shows the receipt, another one the day it was received.
    form = {"csrf": token(survey, p), "action": "submit", "a:H-A:Q1": "yes", "a:H-A:Q2": "yes"}
    same = await survey.client.post(
        "/survey", data=form | {"client_submission_id": "phone-1"}, headers=page_headers(survey, p)
    )
    assert same.status_code == 200 and first.json()["receipt"] in same.text
    r = await survey.client.post(
        "/survey", data=form | {"client_submission_id": "tab-2"}, headers=page_headers(survey, p)
    )
    assert r.status_code == 409
    assert "Phiếu của bạn đã được ghi nhận ngày 22/09/2023" in r.text
