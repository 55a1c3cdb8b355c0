"""The web kit's guarantees on the real stack (docs/architecture.md, decision 25).

JSON writes need a header a cross-site form cannot send, form tokens are bound to the session
that drew them, a staff account tied to one campaign is refused every other campaign on every
route, and refusals reach a browser as a page in Vietnamese (English on the switch), never as a
raw code.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from contracts import subjects
from parindex.web.auth import Principal
from tests.security.conftest import UNIT_A, Stack, campaign_document
from tests.security.test_access_matrix import EXPECTED, call_args
from tests.waiting import eventually

OTHER = "t-other-campaign"
HTML = {"Accept": "text/html,application/xhtml+xml"}


async def _messages(s: Stack, subject: str) -> int:
    info = await s.nc.jetstream().stream_info(subjects.EVENTS_STREAM, subjects_filter=subject)
    return sum((info.state.subjects or {}).values())


async def _answers(s: Stack, token: str) -> list[dict[str, str]]:
    form = (await s.request("survey", "GET", "/api/form", token=token)).json()
    return [
        {"unit_code": u["code"], "question_id": q["id"], "option_code": q["options"][0]["code"]}
        for u in form["rated_units"]
        for c in form["form"]["criteria"]
        for q in c["questions"]
    ]


# --- JSON writes --------------------------------------------------------------------------
async def test_json_writes_without_the_header_change_nothing(campaign_stack: Stack) -> None:
    s = campaign_stack
    c = s.campaign_id
    an = s.people[0]
    answers = await _answers(s, an.token)
    ballots_before = await _messages(s, f"par.evt.{c}.ballot.>")
    calls: list[tuple[str, str, str, dict[str, Any], str]] = [
        ("survey", "POST", "/api/ballots", {"answers": answers}, an.token),
        ("survey", "PUT", "/api/draft", {"answers": answers}, an.token),
        ("survey", "POST", "/api/campaigns", campaign_document(OTHER), s.tokens["admin"]),
        (
            "notify",
            "POST",
            "/api/deliveries/resend",
            {"campaign_id": c, "respondent_id": an.respondent_id},
            s.tokens["admin"],
        ),
    ]
    for service, method, path, body, token in calls:
        for headers in ({}, {"X-Requested-With": "XMLHttpRequest"}, {"X-CSRF-Token": "forged"}):
            r = await s.request(
                service, method, path, token=token, json=body, json_header=False, headers=headers
            )
            assert r.status_code == 403, (path, headers, r.status_code, r.text)
            assert "X-Requested-With" in r.json()["detail"] or "x-requested-with" in r.text
    # nothing reached the log or the database
    assert await _messages(s, f"par.evt.{c}.ballot.>") == ballots_before
    assert await _messages(s, subjects.campaign(OTHER)) == 0
    assert (await s.request("survey", "GET", "/api/draft", token=an.token)).json()["answers"] == []
    deliveries = await s.request(
        "notify", "GET", "/api/deliveries", role="admin", params={"campaign": c}
    )
    assert not any("resend" in row["purpose"] for row in deliveries.json()["counts"])
    assert not (await s.request("survey", "GET", "/api/form", token=an.token)).json()["submitted"]

    # The session's own form token in the header is accepted; another session's is not.
    mine = s.form_token(session=an.token)
    theirs = s.form_token(session=s.people[1].token)
    draft = {"answers": answers[:1]}
    r = await s.request(
        "survey", "PUT", "/api/draft", token=an.token, json=draft, json_header=False,
        headers={"X-CSRF-Token": theirs},
    )  # fmt: skip
    assert r.status_code == 403
    r = await s.request(
        "survey", "PUT", "/api/draft", token=an.token, json=draft, json_header=False,
        headers={"X-CSRF-Token": mine},
    )  # fmt: skip
    assert r.status_code == 200, r.text


# --- form tokens are bound to the session ---------------------------------------------------
async def test_a_form_token_from_another_session_is_refused(campaign_stack: Stack) -> None:
    s = campaign_stack
    an, cuong = s.people[0], s.people[1]
    form = {"action": "draft", f"a:{UNIT_A}:03q1": "zqoptgood"}
    for forged in (
        s.form_token(session=cuong.token),  # another person's session
        s.form_token(nonce="planted"),  # an anonymous token, with a nonce cookie planted
        s.form_token(session=an.token + "x"),  # a token for a session that is not this one
    ):
        r = await s.request(
            "survey", "POST", "/survey", token=an.token, csrf="planted",
            data={**form, "csrf": forged},
        )  # fmt: skip
        assert r.status_code == 403, r.text
    assert (await s.request("survey", "GET", "/api/draft", token=an.token)).json()["answers"] == []
    # The same form with An's own token is saved.
    r = await s.request(
        "survey", "POST", "/survey", token=an.token,
        data={**form, "csrf": s.form_token(session=an.token)},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    assert (await s.request("survey", "GET", "/api/draft", token=an.token)).json()["answers"]

    # Before login the token is bound to the browser's nonce: another browser's is refused.
    admin = {"username": f"admin-{s.campaign_id}", "password": "staff-password-0123"}
    other = s.form_token(nonce="browser-two")
    r = await s.request(
        "identity", "POST", "/login", csrf="browser-one", data={**admin, "csrf": other}
    )
    assert r.status_code == 403 and "parindex_session" not in r.headers.get("set-cookie", "")
    r = await s.request(
        "identity", "POST", "/login", csrf="browser-two", data={**admin, "csrf": other}
    )
    assert r.status_code == 303


# --- campaign scopes --------------------------------------------------------------------------
def _elsewhere(value: Any, c: str) -> Any:
    if isinstance(value, str):
        return OTHER if value == c else value
    if isinstance(value, dict):
        return {k: _elsewhere(v, c) for k, v in value.items()}
    return value


async def test_scoped_staff_are_refused_other_campaigns_on_every_route(
    campaign_stack: Stack,
) -> None:
    """The stack's admin and auditor are scoped to its campaign (users add --campaign)."""
    s = campaign_stack
    c = s.campaign_id
    everywhere = s.mint(Principal(subject="admin-all", role="admin"))
    wrong: list[str] = []
    for key in sorted(EXPECTED):
        args = call_args(s, key)
        service, method = args.pop("service"), args.pop("method")
        path = args.pop("path").replace(c, OTHER)
        args = {k: _elsewhere(v, c) for k, v in args.items()}
        args["params"] = {"campaign": OTHER}
        if args.get("data", {}).get("csrf") == "csrf-tok":
            args["csrf"] = "csrf-tok"
        for role in ("admin", "auditor"):
            r = await s.request(service, method, path, role=role, **args)
            if r.status_code != 403:
                wrong.append(f"{key} as scoped {role}: {r.status_code} {r.text[:100]!r}")
        # An admin of every campaign is not refused for the campaign's sake.
        r = await s.request(service, method, path, token=everywhere, **args)
        if r.status_code == 403 and "limited to another campaign" in r.text:
            wrong.append(f"{key} as unscoped admin: {r.status_code}")
    assert wrong == []


async def test_scoped_lists_and_campaign_definitions(campaign_stack: Stack) -> None:
    s = campaign_stack
    c = s.campaign_id
    everywhere = s.mint(Principal(subject="admin-all", role="admin"))
    doc = campaign_document(OTHER)
    refused = await s.request("survey", "POST", "/api/campaigns", role="admin", json=doc)
    assert refused.status_code == 403
    assert await _messages(s, subjects.campaign(OTHER)) == 0
    ok = await s.request("survey", "POST", "/api/campaigns", token=everywhere, json=doc)
    assert ok.status_code == 201, ok.text
    mine = await s.request("survey", "POST", "/api/campaigns", role="admin", json=doc | {"id": c})
    assert mine.status_code in (201, 409), mine.text  # its own campaign: not a scope refusal

    async def listed() -> httpx.Response | None:
        r = await s.request("scoring", "GET", "/dashboard", token=everywhere)
        return r if OTHER in r.text else None

    assert c in (await eventually(listed, timeout=30)).text
    for role in ("admin", "auditor"):
        page = await s.request("scoring", "GET", "/dashboard", role=role)
        assert c in page.text and OTHER not in page.text
        progress = await s.request("survey", "GET", "/progress", role=role)
        assert OTHER not in progress.text
    deliveries = await s.request("notify", "GET", "/deliveries", role="admin")
    assert deliveries.status_code == 200 and OTHER not in deliveries.text
    # A JSON body is read whatever its Content-Type claims (FastAPI parses one without any).
    raw = json.dumps({"campaign_id": OTHER, "respondent_id": "r-nobody"}).encode()
    for kind in (None, "text/plain", "application/merge-patch+json"):
        headers = {"X-Requested-With": "parindex"} | ({"Content-Type": kind} if kind else {})
        r = await s.request(
            "notify", "POST", "/api/deliveries/resend", role="admin", content=raw, headers=headers
        )
        assert r.status_code == 403 and "another campaign" in r.text, (kind, r.text)


# --- error pages ------------------------------------------------------------------------------
async def test_error_pages_speak_vietnamese_to_browsers(campaign_stack: Stack) -> None:
    s = campaign_stack
    for service in ("identity", "survey", "scoring", "notify"):
        page = await s.request(service, "GET", "/khong-co", headers=HTML)
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert 'lang="vi"' in page.text and "Không tìm thấy" in page.text
        assert "detail" not in page.text and "Traceback" not in page.text
        en = await s.request(service, "GET", "/khong-co", params={"lang": "en"}, headers=HTML)
        assert 'lang="en"' in en.text and "was not found" in en.text
        api = await s.request(service, "GET", "/api/khong-co", headers=HTML)
        assert api.status_code == 404 and api.json()["detail"]
    # a respondent on an admin page: 403 as a page; an anonymous one: to the login, with next
    page = await s.request("notify", "GET", "/deliveries", role="respondent", headers=HTML)
    assert page.status_code == 403 and "không có quyền" in page.text
    page = await s.request("identity", "GET", "/admin/import", headers=HTML)
    assert page.status_code == 303 and "/login?next=" in page.headers["location"]
    api = await s.request("identity", "GET", "/api/respondents", params={"campaign": s.campaign_id})
    assert api.status_code == 401 and api.json()["detail"]
    # a scoped admin on another campaign's page: told so, in Vietnamese
    page = await s.request(
        "scoring", "GET", "/dashboard", role="admin", params={"campaign": OTHER}, headers=HTML
    )
    assert page.status_code == 403 and "đợt khảo sát khác" in page.text
