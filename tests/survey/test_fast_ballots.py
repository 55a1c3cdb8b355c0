"""The ballot's fast route answers ordinary ballots; every other request gets the route's answer.

`FAST_BALLOTS` (parindex/web/fast_write.py) sits in front of POST /api/ballots and skips
FastAPI's dependency solving for an ordinary ballot. Anything else is handed back to the FastAPI
route with its body, so the answer must be exactly what the app gives without the fast route:
checked here request by request, hostile bodies included (docs/architecture.md, decision 46).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from parindex.web.auth import COOKIE, Principal, issue_token
from parindex.web.csrf import load_key, token_for
from parindex.web.fast_write import _FastRoute
from services.survey import api
from tests.survey.test_service import (
    ADMIN,
    Survey,
    full_answers,
    respondent,
    setup_open_campaign,
)

PEOPLE = 60


@contextlib.contextmanager
def without_fast_route(survey: Survey) -> Iterator[None]:
    routes = survey.app.router.routes
    fast = [r for r in routes if isinstance(r, _FastRoute)]
    assert len(fast) == 1 and routes[0] is fast[0]  # in front of every other route
    routes.remove(fast[0])
    try:
        yield
    finally:
        routes.insert(0, fast[0])


def _cookie(survey: Survey, p: Principal) -> str:
    return f"{COOKIE}={issue_token(survey.key, p)}"


async def _post(survey: Survey, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    r = await survey.client.post("/api/ballots", content=body, headers=headers)
    try:
        answer: Any = r.json()
    except ValueError:
        answer = r.text
    if r.status_code == 201:
        answer = sorted(answer)  # receipts differ per ballot; the keys do not
    return r.status_code, answer


async def test_an_ordinary_ballot_takes_the_fast_route(
    survey: Survey, nc, campaign_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await setup_open_campaign(survey, nc, campaign_id, [("an", "H-A", "02")])
    taken: list[str] = []
    handle = api.FAST_BALLOTS.handle

    async def spy(request, p, body):  # type: ignore[no-untyped-def]  # the handle's own types
        taken.append(p.subject)
        return await handle(request, p, body)

    monkeypatch.setattr(api.FAST_BALLOTS, "handle", spy)
    r = await survey.client.post(
        "/api/ballots",
        json={"answers": full_answers("H-A")},
        headers=survey.as_(respondent(campaign_id, "an")),
    )
    assert r.status_code == 201, r.text
    assert taken == ["an"]
    again = await survey.client.post(
        "/api/ballots",
        json={"answers": full_answers("H-A", "no")},
        headers=survey.as_(respondent(campaign_id, "an")),
    )
    assert again.status_code == 409 and again.json()["error"] == "already_submitted"


@pytest.mark.timeout(120)
async def test_every_other_request_gets_exactly_the_routes_answer(
    survey: Survey, nc, campaign_id: str
) -> None:
    people = [(f"p{i:02d}", "H-A", "02") for i in range(PEOPLE)]
    await setup_open_campaign(survey, nc, campaign_id, people)
    fresh = iter(rid for rid, _, _ in people)
    good = json.dumps({"answers": full_answers("H-A")}).encode()
    scoped = Principal(subject="admin2", role="admin", campaign_id="other-campaign")

    def headers(p: Principal | None, **extra: str) -> dict[str, str]:
        out = {"content-type": "application/json", "x-requested-with": "parindex"}
        if p is not None:
            out["cookie"] = _cookie(survey, p)
        out.update(extra)
        return {k: v for k, v in out.items() if v}

    def person() -> Principal:
        return respondent(campaign_id, next(fresh))

    answers = full_answers("H-A")
    cases: list[tuple[str, Any]] = [
        ("anonymous", lambda: (good, headers(None))),
        ("an admin", lambda: (good, headers(ADMIN))),
        ("a scoped admin", lambda: (good, headers(scoped))),
        ("a forged session", lambda: (good, headers(None, cookie=f"{COOKIE}=x.y.z"))),
        ("no JSON header", lambda: (good, headers(person(), **{"x-requested-with": ""}))),
        (
            "JSON header, other value",
            lambda: (good, headers(person(), **{"x-requested-with": "x"})),
        ),
        ("text/plain", lambda: (good, headers(person(), **{"content-type": "text/plain"}))),
        ("no content type", lambda: (good, headers(person(), **{"content-type": ""}))),
        (
            "json; charset",
            lambda: (
                good,
                headers(person(), **{"content-type": "application/json; charset=utf-8"}),
            ),
        ),
        ("not JSON", lambda: (b"answers=1", headers(person()))),
        ("empty body", lambda: (b"", headers(person()))),
        ("JSON null", lambda: (b"null", headers(person()))),
        ("a list", lambda: (b"[]", headers(person()))),
        ("no answers", lambda: (b'{"answers": []}', headers(person()))),
        (
            "an extra field",
            lambda: (json.dumps({"answers": answers, "who": "me"}).encode(), headers(person())),
        ),
        (
            "an answer with an extra key",
            lambda: (
                json.dumps({"answers": [answers[0] | {"x": "1"}] + answers[1:]}).encode(),
                headers(person()),
            ),
        ),
        (
            "a number for a code",
            lambda: (
                json.dumps({"answers": [answers[0] | {"option_code": 1}] + answers[1:]}).encode(),
                headers(person()),
            ),
        ),
        (
            "a NUL in a code",
            lambda: (
                json.dumps(
                    {"answers": [answers[0] | {"option_code": "ye\u0000s"}] + answers[1:]}
                ).encode(),
                headers(person()),
            ),
        ),
        (
            "a lone surrogate",
            lambda: (
                b'{"answers": [{"unit_code": "H-A", "question_id": "\\ud800", '
                b'"option_code": "yes"}]}',
                headers(person()),
            ),
        ),
        (
            "NaN",
            lambda: (
                json.dumps({"answers": answers, "client_submission_id": float("nan")}).encode(),
                headers(person()),
            ),
        ),
        ("a BOM", lambda: (b"\xef\xbb\xbf" + good, headers(person()))),
        ("bad UTF-8", lambda: (b'{"answers": [{"unit_code": "\xff"}]}', headers(person()))),
        (
            "duplicate keys",
            lambda: (
                b'{"answers": [], "answers": ' + json.dumps(answers).encode() + b"}",
                headers(person()),
            ),
        ),
        (
            "a long submission id",
            lambda: (
                json.dumps({"answers": answers, "client_submission_id": "x" * 101}).encode(),
                headers(person()),
            ),
        ),
        (
            "an unknown question",
            lambda: (
                json.dumps(
                    {
                        "answers": answers
                        + [{"unit_code": "H-A", "question_id": "Q99", "option_code": "yes"}]
                    }
                ).encode(),
                headers(person()),
            ),
        ),
        (
            "a missing answer",
            lambda: (json.dumps({"answers": answers[1:]}).encode(), headers(person())),
        ),
        ("the session's CSRF token", lambda: _with_token(survey, person(), good)),
        ("an ordinary ballot", lambda: (good, headers(person()))),
    ]
    differ = []
    for name, make in cases:
        body, h = make()
        fast = await _post(survey, body, h)
        body, h = make()  # a fresh respondent where the request names one
        with without_fast_route(survey):
            ordinary = await _post(survey, body, h)
        if fast != ordinary:
            differ.append((name, fast, ordinary))
    assert not differ


def _with_token(survey: Survey, p: Principal, body: bytes) -> tuple[bytes, dict[str, str]]:
    session = issue_token(survey.key, p)
    token = token_for(load_key(survey.app.state.settings), session=session)
    return body, {
        "content-type": "application/json",
        "cookie": f"{COOKIE}={session}",
        "x-csrf-token": token,
    }


async def test_other_methods_on_the_path_are_answered_as_before(
    survey: Survey, nc, campaign_id: str
) -> None:
    await setup_open_campaign(survey, nc, campaign_id, [("an", "H-A", "02")])
    h = survey.as_(respondent(campaign_id, "an"))
    for method in ("GET", "PUT", "DELETE", "HEAD", "PATCH"):
        fast = await survey.client.request(method, "/api/ballots", headers=h)
        with without_fast_route(survey):
            ordinary = await survey.client.request(method, "/api/ballots", headers=h)
        assert (fast.status_code, fast.headers.get("allow"), fast.content) == (
            ordinary.status_code,
            ordinary.headers.get("allow"),
            ordinary.content,
        ), method
        assert fast.status_code == 405
