"""The survey's HTML pages and RPCs on real NATS and PostgreSQL (app in-process over httpx).

A respondent fills the form, saves a draft, sees Vietnamese errors next to the questions,
reviews, sends and gets a receipt; the form is shown only while the wave is open; every POST
needs the session-bound CSRF token; progress pages show counts (and, to a focal point, names
of people who have not answered — never answers); the RPCs answer other services.
"""

from __future__ import annotations

import json
import re

from contracts import subjects
from contracts.events import RespondentWithdrawn, make
from parindex.bus.publish import publish_event
from parindex.web.auth import COOKIE, Principal, issue_token
from parindex.web.csrf import load_key, token_for
from tests.survey.test_service import (
    ADMIN,
    AFTER,
    Survey,
    full_answers,
    register,
    respondent,
    setup_open_campaign,
    small_campaign,
    subject_count,
)
from tests.waiting import eventually

NONCE = "csrf-nonce-for-tests"  # an anonymous nonce cookie: ignored once there is a session


def session_of(survey: Survey, p: Principal) -> str:
    """One session token per principal and stack, so its form token stays the same.

    Kept on the stack itself: a module-wide cache keyed by id(survey.key) once handed a later
    test the token of an earlier, collected key whose id the new key reused (refused: 303)."""
    if p not in survey.sessions:
        survey.sessions[p] = issue_token(survey.key, p)
    return survey.sessions[p]


def page_headers(survey: Survey, p: Principal, csrf: bool = True) -> dict[str, str]:
    cookie = f"{COOKIE}={session_of(survey, p)}"
    if csrf:
        cookie += f"; parindex_csrf={NONCE}"
    return {"Cookie": cookie}


def token(survey: Survey, p: Principal) -> str:
    """The form token the pages draw for p's session (docs/architecture.md, decision 25)."""
    return token_for(load_key(survey.app.state.settings), session=session_of(survey, p))


def fieldset(html: str, dom_id: str) -> str:
    """The <fieldset> of one question."""
    match = re.search(rf'<fieldset[^>]*id="{re.escape(dom_id)}".*?</fieldset>', html, re.S)
    assert match, dom_id
    return match.group(0)


def checked(html: str, option_id: str) -> bool:
    return re.search(rf'id="{re.escape(option_id)}"[^>]*\bchecked\b', html, re.S) is not None


async def test_respondent_html_flow(survey: Survey, nc, campaign_id: str) -> None:
    people = [("an", "H-A", "02"), ("chi", None, "01")]
    await setup_open_campaign(survey, nc, campaign_id, people)
    client = survey.client
    an = page_headers(survey, respondent(campaign_id, "an"))

    # Anonymous: off to identity's login, coming back here.
    r = await client.get("/survey")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fsurvey"

    # The form: Vietnamese, sections, radio groups in fieldsets, every input labelled.
    r = await client.get(
        "/survey", headers=page_headers(survey, respondent(campaign_id, "an"), False)
    )
    assert r.status_code == 200
    # The form token is bound to the session: no anonymous nonce cookie is needed.
    assert "parindex_csrf=" not in r.headers.get("set-cookie", "")
    html = (await client.get("/survey", headers=an)).text
    assert 'lang="vi"' in html and "Công khai" in html and "Đơn vị được đánh giá: Huyện A" in html
    q1 = fieldset(html, "q-H-A-Q1")
    # Numbered questions and sections; no criterion or question code is shown.
    assert "Câu 1/2.</span> Câu 1</legend>" in q1 and "Không biết" in q1
    assert "Phần 1/1" in html and "C1." not in html
    radios = re.findall(r'<input type="radio" id="([^"]+)" name="a:H-A:Q1"', q1)
    assert radios == ["o-H-A-Q1-yes", "o-H-A-Q1-no", "o-H-A-Q1-dk"]
    for option_id in re.findall(r'<input type="radio" id="([^"]+)"', html):
        assert f'<label for="{option_id}">' in html
    assert f'name="csrf" value="{token(survey, respondent(campaign_id, "an"))}"' in html
    csrf = token(survey, respondent(campaign_id, "an"))

    # Draft: saved in the draft store (same as PUT /api/draft) and shown again.
    r = await client.post(
        "/survey", data={"csrf": csrf, "action": "draft", "a:H-A:Q1": "dk"}, headers=an
    )
    assert r.status_code == 200 and "Đã lưu nháp" in r.text
    draft = (await client.get("/api/draft", headers=an)).json()["answers"]
    assert draft == [{"unit_code": "H-A", "question_id": "Q1", "option_code": "dk"}]
    html = (await client.get("/survey", headers=an)).text
    assert checked(html, "o-H-A-Q1-dk") and not checked(html, "o-H-A-Q2-yes")

    # Review with a missing answer: the error sits next to that question, answers are kept.
    r = await client.post(
        "/survey", data={"csrf": csrf, "action": "review", "a:H-A:Q1": "yes"}, headers=an
    )
    assert r.status_code == 422
    q2 = fieldset(r.text, "q-H-A-Q2")
    assert "Vui lòng chọn một câu trả lời" in q2 and 'aria-invalid="true"' in q2
    assert "Vui lòng chọn một câu trả lời" not in fieldset(r.text, "q-H-A-Q1")
    assert checked(r.text, "o-H-A-Q1-yes")
    assert r.text.count("Vui lòng chọn một câu trả lời") == 1

    # Review OK: the answers listed, hidden fields and a server-made submission id.
    answers = {"a:H-A:Q1": "yes", "a:H-A:Q2": "no"}
    r = await client.post("/survey", data={"csrf": csrf, "action": "review", **answers}, headers=an)
    assert r.status_code == 200 and "Gửi phiếu" in r.text
    assert re.search(r'id="answer-q-H-A-Q1">Có<', r.text)
    assert re.search(r'id="answer-q-H-A-Q2">Không<', r.text)
    assert '<input type="hidden" name="a:H-A:Q2" value="no">' in r.text
    sid = re.search(r'name="client_submission_id" value="([^"]+)"', r.text)
    assert sid
    again = await client.post(
        "/survey", data={"csrf": csrf, "action": "review", **answers}, headers=an
    )
    assert sid.group(1) not in again.text  # a new id per review

    # Submit → receipt; a double click is the same event with the same receipt.
    form = {"csrf": csrf, "action": "submit", "client_submission_id": sid.group(1), **answers}
    r = await client.post("/survey", data=form, headers=an)
    assert r.status_code == 200, r.text
    assert "Biên nhận" in r.text and "22/09/2023" in r.text
    receipt = re.search(r'<code id="receipt">([^<]+)</code>', r.text)
    assert receipt
    r2 = await client.post("/survey", data=form, headers=an)
    assert receipt.group(1) in r2.text and "Bạn đã gửi phiếu" in r2.text
    js = nc.jetstream()
    assert await subject_count(js, f"par.evt.{campaign_id}.ballot.*") == 1
    assert (await client.get("/api/draft", headers=an)).json()["answers"] == []

    # Coming back: already submitted, with a receipt for the same day (nothing about the first
    # receipt is stored, so it is a fresh one that verifies too); no form any more.
    r = await client.get("/survey", headers=an)
    assert "Bạn đã gửi phiếu" in r.text and "22/09/2023" in r.text
    later = re.search(r'<code id="receipt">([^<]+)</code>', r.text)
    assert later
    for code in (receipt.group(1), later.group(1)):
        check = await client.get(
            "/api/receipts/verify", params={"campaign": campaign_id, "receipt": code}
        )
        assert check.json()["valid"] is True and check.json()["submitted_on"] == "2023-09-22"
    assert 'type="radio"' not in r.text
    r = await client.get("/survey?lang=en", headers=an)
    assert "You have sent your ballot" in r.text and "lang=en" in r.headers["set-cookie"]

    # A many-units form: one rated unit per page, headed by the unit's name (decision 32).
    chi = page_headers(survey, respondent(campaign_id, "chi", None, "01"))
    chi_csrf = token(survey, respondent(campaign_id, "chi", None, "01"))
    html = (await client.get("/survey", headers=chi)).text
    assert ">Huyện A</h2>" in html and "Huyện B</h2>" not in html and "Đơn vị 1/2" in html
    html = (await client.get("/survey?page=2", headers=chi)).text
    assert ">Huyện B</h2>" in html and 'name="a:H-B:Q2"' in html and 'name="a:H-A:Q1"' not in html
    # "Tiếp" saves this page's answers into the draft and goes on, without JavaScript.
    page1 = {"csrf": chi_csrf, "page": "1", "a:H-A:Q1": "yes", "a:H-A:Q2": "yes"}
    r = await client.post("/survey", data={**page1, "action": "next"}, headers=chi)
    assert r.status_code == 303 and r.headers["location"] == "/survey?page=2"
    draft = (await client.get("/api/draft", headers=chi)).json()["answers"]
    assert {(a["unit_code"], a["question_id"]) for a in draft} == {("H-A", "Q1"), ("H-A", "Q2")}
    # The language switch without JavaScript saves the page first, then switches.
    page2 = {"csrf": chi_csrf, "page": "2", "a:H-B:Q2": "no"}
    r = await client.post("/survey", data={**page2, "action": "lang:en"}, headers=chi)
    assert r.status_code == 303 and r.headers["location"] == "/survey?page=2&lang=en"
    assert len((await client.get("/api/draft", headers=chi)).json()["answers"]) == 3
    # Review with one question left on page 2: that page, the question marked, and a summary
    # linking to it.
    r = await client.post("/survey", data={**page2, "action": "review"}, headers=chi)
    assert r.status_code == 422
    assert "Vui lòng chọn một câu trả lời" in fieldset(r.text, "q-H-B-Q1")
    assert 'href="#q-H-B-Q1">Câu 1 – Huyện B</a>' in r.text
    assert checked(r.text, "o-H-B-Q2-no")
    # With questions left on both pages: the first one's page, linking to the other page.
    r = await client.post(
        "/survey", data={**page1, "a:H-A:Q2": "", "action": "review"}, headers=chi
    )
    assert r.status_code == 422 and 'href="#q-H-A-Q2"' in r.text
    assert 'href="/survey?page=2#q-H-B-Q1"' in r.text
    # The grid of questions × units shows every unit with the draft's answers.
    html = (await client.get("/survey?view=grid", headers=chi)).text
    assert 'name="a:H-A:Q1"' in html and 'name="a:H-B:Q2"' in html
    assert re.search(r'<option value="no" selected>', html)


async def test_csrf_is_required_on_every_post(survey: Survey, nc, campaign_id: str) -> None:
    await setup_open_campaign(survey, nc, campaign_id, [("an", "H-A", "02")])
    p = respondent(campaign_id, "an")
    data = {"action": "submit", **{"a:H-A:Q1": "yes", "a:H-A:Q2": "yes"}}
    no_field = await survey.client.post("/survey", data=data, headers=page_headers(survey, p))
    # another session's token (a nonce cookie is no substitute for the session's)
    other = token(survey, respondent(campaign_id, "binh"))
    no_cookie = await survey.client.post(
        "/survey", data={**data, "csrf": other}, headers=page_headers(survey, p)
    )
    wrong = await survey.client.post(
        "/survey", data={**data, "csrf": "other"}, headers=page_headers(survey, p)
    )
    for r in (no_field, no_cookie, wrong):
        assert r.status_code == 403 and "không hợp lệ" in r.text
    header = await survey.client.post(
        "/survey",
        data={"action": "draft", "a:H-A:Q1": "yes"},
        headers={**page_headers(survey, p), "X-CSRF-Token": token(survey, p)},
    )
    assert header.status_code == 200 and "Đã lưu nháp" in header.text
    assert await subject_count(nc.jetstream(), f"par.evt.{campaign_id}.ballot.*") == 0


async def test_form_only_while_the_wave_is_open(survey: Survey, nc, campaign_id: str) -> None:
    c = small_campaign(campaign_id)
    r = await survey.client.post(
        "/api/campaigns", json=c.model_dump(mode="json"), headers=survey.as_(ADMIN)
    )
    assert r.status_code == 201
    await register(nc.jetstream(), campaign_id, "an", "H-A", "02")
    p = respondent(campaign_id, "an")
    an = page_headers(survey, p)

    async def registered() -> bool:
        return (await survey.client.get("/api/form", headers=survey.as_(p))).status_code == 200

    await eventually(registered)
    r = await survey.client.get("/survey", headers=an)
    assert r.status_code == 200
    assert "chưa mở" in r.text and "21/09/2023" in r.text and 'type="radio"' not in r.text
    r = await survey.client.post(
        "/survey",
        data={"csrf": token(survey, p), "action": "review", "a:H-A:Q1": "yes"},
        headers=an,
    )
    assert "chưa mở" in r.text and 'type="radio"' not in r.text

    survey.set_clock(AFTER)

    async def closed() -> bool:
        return (await survey.client.get("/api/form", headers=survey.as_(p))).json()[
            "deadline_passed"
        ]

    await eventually(closed)
    r = await survey.client.get("/survey", headers=an)
    assert "đã hết hạn" in r.text and "06/10/2023" in r.text and 'type="radio"' not in r.text
    r = await survey.client.post(
        "/survey",
        data={"csrf": token(survey, p), "action": "submit", "a:H-A:Q1": "yes", "a:H-A:Q2": "yes"},
        headers=an,
    )
    assert "đã hết hạn" in r.text
    assert await subject_count(nc.jetstream(), f"par.evt.{campaign_id}.ballot.*") == 0

    # Not a respondent at all.
    r = await survey.client.get("/survey", headers=page_headers(survey, ADMIN))
    assert r.status_code == 403


async def _campaign_with_one_ballot(survey: Survey, nc, campaign_id: str) -> None:
    people = [("an", "H-A", "02"), ("binh", "H-A", "02"), ("cuong", "H-B", "02")]
    people += [("chi", None, "01"), ("dung", "H-A", "02")]
    await setup_open_campaign(survey, nc, campaign_id, people)
    await publish_event(
        nc.jetstream(),
        subjects.respondent(campaign_id, "dung"),
        make(RespondentWithdrawn(respondent_id="dung"), campaign_id=campaign_id, producer="t"),
    )
    an = survey.as_(respondent(campaign_id, "an"))
    r = await survey.client.post("/api/ballots", json={"answers": full_answers("H-A")}, headers=an)
    assert r.status_code == 201

    async def counted() -> bool:
        resp = await survey.client.get(
            f"/api/progress?campaign={campaign_id}",
            headers=survey.as_(
                Principal(
                    subject="fp", role="focal_point", campaign_id=campaign_id, unit_code="H-A"
                )
            ),
        )
        body = resp.json()
        row = next(u for u in body["units"] if u["form_code"] == "02")
        return row["received"] == 1 and len(body["not_answered"]) == 1

    await eventually(counted)


async def test_progress_pages(survey: Survey, nc, campaign_id: str) -> None:
    await _campaign_with_one_ballot(survey, nc, campaign_id)
    admin = page_headers(survey, ADMIN)
    r = await survey.client.get(f"/progress?campaign={campaign_id}", headers=admin)
    assert r.status_code == 200
    assert "Huyện A" in r.text and "Huyện B" in r.text
    assert "1 / 3" in r.text and "33,3%" in r.text and 'style="width: 33.3%"' in r.text
    assert "0 / 2" in r.text and "0,0%" in r.text
    assert '<td title="Phiếu 02">Phiếu 02</td>' in r.text  # the number; the title whole
    assert "Người chưa trả lời" not in r.text  # names are for focal points only
    r = await survey.client.get(f"/progress?campaign={campaign_id}&lang=en", headers=admin)
    assert "33.3%" in r.text and "Collection progress" in r.text
    auditor = page_headers(survey, Principal(subject="au", role="auditor"))
    assert (await survey.client.get("/progress", headers=auditor)).status_code == 200

    focal = Principal(subject="fp", role="focal_point", campaign_id=campaign_id, unit_code="H-A")
    r = await survey.client.get(
        f"/progress?campaign={campaign_id}", headers=page_headers(survey, focal)
    )
    assert r.status_code == 200
    assert "Huyện A" in r.text and "Huyện B" not in r.text
    names = re.findall(r"<li>([^<]+) <span", r.text)
    assert names == ["Nguyễn Văn BINH"]  # not AN (answered), not DUNG (withdrawn)
    assert "Câu 1" not in r.text and "option" not in r.text  # never answers
    r = await survey.client.get("/progress", headers=page_headers(survey, focal))
    assert "Nguyễn Văn BINH" in r.text  # own campaign by default

    other = Principal(subject="fp", role="focal_point", campaign_id="other", unit_code="H-A")
    r = await survey.client.get(
        f"/progress?campaign={campaign_id}", headers=page_headers(survey, other)
    )
    assert r.status_code == 403
    an = page_headers(survey, respondent(campaign_id, "an"))
    assert (
        await survey.client.get(f"/progress?campaign={campaign_id}", headers=an)
    ).status_code == 403
    r = await survey.client.get(f"/progress?campaign={campaign_id}")
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")


async def test_rpcs(survey: Survey, nc, campaign_id: str) -> None:
    await _campaign_with_one_ballot(survey, nc, campaign_id)

    async def ask(subject: str, body: dict) -> dict:
        reply = await nc.request(subject, json.dumps(body).encode(), timeout=5)
        return json.loads(reply.data)

    whole = await ask(subjects.RPC_SURVEY_NONRESPONDENTS, {"campaign_id": campaign_id})
    assert whole == {"respondent_ids": ["binh", "chi", "cuong"]}
    unit = await ask(
        subjects.RPC_SURVEY_NONRESPONDENTS, {"campaign_id": campaign_id, "unit_code": "H-A"}
    )
    assert unit == {"respondent_ids": ["binh"]}

    progress = await ask(subjects.RPC_SURVEY_PROGRESS, {"campaign_id": campaign_id})
    api = await survey.client.get(
        f"/api/progress?campaign={campaign_id}", headers=survey.as_(ADMIN)
    )
    assert progress == api.json()
    focal = Principal(subject="fp", role="focal_point", campaign_id=campaign_id, unit_code="H-A")
    progress = await ask(
        subjects.RPC_SURVEY_PROGRESS, {"campaign_id": campaign_id, "unit_code": "H-A"}
    )
    api = await survey.client.get(
        f"/api/progress?campaign={campaign_id}", headers=survey.as_(focal)
    )
    assert progress == api.json()
    assert progress["not_answered"] == [{"full_name": "Nguyễn Văn BINH", "form_code": "02"}]

    assert (await ask(subjects.RPC_SURVEY_PROGRESS, {}))["error"]["code"] == "bad_request"
    unknown = await ask(subjects.RPC_SURVEY_PROGRESS, {"campaign_id": "t-nope"})
    assert unknown == {"error": {"code": "unknown_campaign", "message": "unknown campaign"}}
