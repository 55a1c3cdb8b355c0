"""Nothing invalid reaches the log from the survey's edge (docs/architecture.md, decision 17).

A campaign whose strings hold NUL, a lone surrogate or a control character is a 4xx naming
the field and publishes nothing; a malformed draft is refused, and one already stored does not
break the respondent's own page.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from contracts import subjects
from services.survey.secrecy import pseudonym
from tests.survey.test_service import (
    ADMIN,
    KEY,
    Survey,
    respondent,
    setup_open_campaign,
    small_campaign,
    subject_count,
)


def _json(body: object, headers: dict[str, str]) -> dict:
    """An ASCII JSON request: a lone surrogate travels as the escape "\\ud800"."""
    return {
        "content": json.dumps(body).encode(),
        "headers": {**headers, "Content-Type": "application/json"},
    }


def _campaign_body(campaign_id: str, **changes: object) -> dict:
    return {**small_campaign(campaign_id).model_dump(mode="json"), **changes}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "Khảo sát\x00 2023"),
        ("name", "Khảo sát\ud800 2023"),
        ("province", "Sóc\x1bTrăng"),
        ("name", "x" * 501),
    ],
    ids=["nul-name", "lone-surrogate-name", "escape-province", "overlong-name"],
)
async def test_campaign_with_bad_text_is_4xx_and_not_published(
    survey: Survey, nc, campaign_id: str, field: str, value: str
) -> None:
    body = _campaign_body(campaign_id, **{field: value})
    r = await survey.client.post("/api/campaigns", **_json(body, survey.as_(ADMIN)))
    assert 400 <= r.status_code < 500, r.text
    assert any(p["path"] == field for p in r.json()["detail"]["problems"]), r.text
    assert await subject_count(nc.jetstream(), subjects.campaign(campaign_id)) == 0


async def test_campaign_with_bad_key_or_raw_surrogate_bytes_is_4xx(
    survey: Survey, nc, campaign_id: str
) -> None:
    body = json.dumps(_campaign_body(campaign_id)).encode()
    headers = {**survey.as_(ADMIN), "Content-Type": "application/json"}
    for raw in (
        body.replace(b'"name"', b'"na\\ud800me"', 1),  # a lone surrogate in a key
        body.replace(b'"Th', b'"\xed\xa0\x80Th', 1),  # not UTF-8 at all
        body.replace(b'"province"', b'"pro\\u0000vince"', 1),
    ):
        r = await survey.client.post("/api/campaigns", content=raw, headers=headers)
        assert 400 <= r.status_code < 500, r.text
    assert await subject_count(nc.jetstream(), subjects.campaign(campaign_id)) == 0


async def test_malformed_draft_is_refused_and_a_stored_one_does_not_break_the_page(
    survey: Survey, nc, campaign_id: str
) -> None:
    await setup_open_campaign(survey, nc, campaign_id, [("an", "H-A", "02")])
    an = survey.as_(respondent(campaign_id, "an"))
    for answers in (
        [1, "x"],
        [{"unit_code": ["H-A"], "question_id": "Q1", "option_code": "yes"}],
        [{"unit_code": "H-A", "question_id": "Q1", "option_code": "y\x00es"}],
        [{"unit_code": "H-A", "question_id": "Q1\ud800", "option_code": "yes"}],
        [{"unit_code": "H-A", "question_id": "Q1", "option_code": "yes", "\ud800": 1}],
    ):
        r = await survey.client.put("/api/draft", **_json({"answers": answers}, an))
        assert r.status_code == 422, (answers, r.status_code, r.text)

    # A draft stored before drafts were checked: the page and the API skip what is malformed.
    stored = [
        {"unit_code": ["H-A"], "question_id": {"x": 1}},
        "junk",
        {"unit_code": "H-A", "question_id": "Q1", "option_code": "no"},
    ]
    async with survey.rt.sessions.begin() as s:
        await s.execute(
            text(
                "INSERT INTO survey_drafts (campaign, pseudonym, answers) "
                "VALUES (:c, :p, CAST(:a AS jsonb)) ON CONFLICT (campaign, pseudonym, holder) "
                "DO UPDATE SET answers = EXCLUDED.answers"
            ),
            {"c": campaign_id, "p": pseudonym(KEY, campaign_id, "an"), "a": json.dumps(stored)},
        )
    r = await survey.client.get("/api/draft", headers=an)
    assert r.status_code == 200 and r.json()["answers"] == [stored[2]]
    page = await survey.client.get("/survey", headers=an)
    assert page.status_code == 200 and "Câu 1" in page.text
