"""Who may call what: every route of every service against every role, from one table.

EXPECTED is the access policy written down. A route added to any service without an entry
here fails `test_every_route_has_an_entry`, so nobody ships an endpoint whose audience was
never decided. "Denied" means 401/403, or a redirect to the login page for an HTML page.
Scoring's dashboards and JSON API are public routes, but what they show depends on the
publication stage (docs/architecture.md, decision 16): counts only until an admin publishes.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

from tests.security.conftest import (
    OPTION_CODES,
    ROLES,
    UNIT_A,
    UNIT_B,
    Stack,
)

SERVICES = ("identity", "survey", "scoring", "notify")
EXCLUDED = ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/redoc", "/static")
ALL = frozenset(ROLES)
STAFF_PROGRESS = frozenset({"admin", "auditor", "focal_a", "focal_b"})
ADMIN = frozenset({"admin"})
RESPONDENT = frozenset({"respondent"})
LOGGED_IN = ALL - {"anonymous"}
FOCAL = frozenset({"focal_a", "focal_b"})

EXPECTED: dict[str, frozenset[str]] = {
    # identity
    "identity GET /login": ALL,
    "identity POST /login": ALL,
    "identity POST /logout": ALL,
    "identity GET /": LOGGED_IN,
    "identity GET /reset": ALL,
    "identity POST /reset": ALL,
    "identity GET /admin/import": ADMIN,
    "identity POST /admin/import": ADMIN,
    "identity POST /admin/import/confirm": ADMIN,
    "identity POST /api/respondents/import": ADMIN,
    "identity GET /api/respondents": ADMIN,
    "identity GET /admin/registry": ADMIN,
    "identity POST /admin/registry/email": ADMIN,
    "identity POST /admin/registry/resend": ADMIN,
    "identity POST /admin/registry/remind": ADMIN,
    "identity GET /admin/registry/nonrespondents.xlsx": ADMIN,
    # the focal point's own unit only (decision 37)
    "identity GET /focal": FOCAL,
    "identity POST /focal/remind": FOCAL,
    "identity GET /focal/nonrespondents.xlsx": FOCAL,
    # Staff accounts: admins of every campaign only; this matrix's admin is campaign-scoped
    # (tests/identity/test_staff_pages.py covers the unscoped admin, decision 34).
    "identity GET /admin/staff": frozenset(),
    "identity POST /admin/staff": frozenset(),
    "identity POST /admin/staff/disable": frozenset(),
    "identity POST /admin/staff/reset": frozenset(),
    # survey
    "survey POST /api/campaigns": ADMIN,
    "survey GET /api/form": RESPONDENT,
    "survey POST /api/ballots": RESPONDENT,
    "survey PUT /api/draft": RESPONDENT,
    "survey GET /api/draft": RESPONDENT,
    "survey GET /api/progress": STAFF_PROGRESS,
    "survey GET /api/receipts/verify": ALL,  # says only "a ballot on this day"
    "survey GET /": ALL,  # a redirect to /survey
    "survey GET /survey": RESPONDENT,
    "survey POST /survey": RESPONDENT,
    "survey GET /progress": STAFF_PROGRESS,
    # the campaign workbook (decision 38): admins, a scoped one for its own campaign only
    "survey GET /admin/campaigns": ADMIN,
    "survey GET /admin/campaigns/template.xlsx": ADMIN,
    "survey GET /admin/campaigns/workbook.xlsx": ADMIN,
    "survey POST /admin/campaigns/upload": ADMIN,
    "survey POST /admin/campaigns/clone": ADMIN,
    "survey GET /admin/campaigns/drafts/{draft_id}": ADMIN,
    "survey GET /admin/campaigns/drafts/{draft_id}/workbook.xlsx": ADMIN,
    "survey POST /admin/campaigns/drafts/{draft_id}/publish": ADMIN,
    # scoring: public aggregates
    "scoring GET /api/results": ALL,
    "scoring GET /api/results/{campaign}/units/{unit_code}": ALL,
    "scoring GET /dashboard": ALL,
    "scoring GET /report": ALL,
    "scoring GET /dashboard/units/{unit_code}": ALL,
    "scoring GET /export/results.csv": ALL,
    "scoring GET /export/questions.csv": ALL,
    "scoring GET /export/results.xlsx": ALL,
    "scoring GET /export/report.pdf": ALL,  # gated by the stage like the questions CSV
    "scoring GET /export/report.docx": ALL,
    "scoring POST /publish": ADMIN,
    # notify
    "notify GET /api/deliveries": ADMIN,
    "notify POST /api/deliveries/resend": ADMIN,
    "notify GET /deliveries": ADMIN,
    "notify POST /deliveries/resend": ADMIN,
}

# State-changing routes: HTML forms carry the session-bound CSRF token; JSON APIs need the
# header `X-Requested-With: parindex` (docs/architecture.md, decision 25). Every
# POST/PUT/PATCH/DELETE must be in exactly one.
FORM_POSTS = {
    "identity POST /login",
    "identity POST /logout",
    "identity POST /reset",
    "identity POST /api/respondents/import",
    "identity POST /admin/import",
    "identity POST /admin/import/confirm",
    "identity POST /admin/registry/email",
    "identity POST /admin/registry/resend",
    "identity POST /admin/registry/remind",
    "identity POST /focal/remind",
    "identity POST /admin/staff",
    "identity POST /admin/staff/disable",
    "identity POST /admin/staff/reset",
    "survey POST /survey",
    "survey POST /admin/campaigns/upload",
    "survey POST /admin/campaigns/clone",
    "survey POST /admin/campaigns/drafts/{draft_id}/publish",
    "notify POST /deliveries/resend",
    "scoring POST /publish",
}
JSON_WRITES = {
    "survey POST /api/campaigns",
    "survey POST /api/ballots",
    "survey PUT /api/draft",
    "notify POST /api/deliveries/resend",
}


def _flat(routes: list[Any]) -> list[Any]:
    """app.routes, with routers included lazily (FastAPI >= 0.16x) expanded to their routes."""
    out: list[Any] = []
    for route in routes:
        if hasattr(route, "effective_route_contexts"):
            out += list(route.effective_route_contexts())
        elif isinstance(route, Mount):
            continue
        elif isinstance(route, APIRoute | Route):
            out.append(route)
        else:
            raise AssertionError(f"unknown route type {type(route)!r}: teach _flat about it")
    return out


def routes_of(app: Any, service: str) -> list[str]:
    out = []
    for route in _flat(app.routes):
        if route.path.startswith(EXCLUDED):
            continue
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                out.append(f"{service} {method} {route.path}")
    return out


def all_routes(stack: Stack) -> list[str]:
    return [r for s in SERVICES for r in routes_of(stack.apps[s], s)]


def denied(key: str, resp: httpx.Response) -> bool:
    if resp.status_code in (401, 403):
        return True
    return (
        key != "identity POST /logout"  # its success *is* going back to the login page
        and resp.status_code in (302, 303, 307)
        and "/login" in resp.headers.get("location", "")
    )


def call_args(stack: Stack, key: str) -> dict[str, Any]:
    """A well-formed call of each route, so that only authorisation can refuse it."""
    c = stack.campaign_id
    service, method, path = key.split(" ", 2)
    path = path.replace("{campaign}", c).replace("{unit_code}", UNIT_A)
    path = path.replace("{draft_id}", "no-such-draft")  # 404 once authorised
    kw: dict[str, Any] = {"params": {"campaign": c}, "csrf": "csrf-tok"}
    if key == "identity POST /login":
        admin = f"admin-{c}"
        kw["data"] = {"username": admin, "password": "staff-password-0123", "csrf": "csrf-tok"}
    elif key in ("identity POST /api/respondents/import", "identity POST /admin/import"):
        kw["data"] = {"campaign": c, "csrf": "csrf-tok"}
        kw["files"] = {"file": ("x.xlsx", b"not a spreadsheet")}  # refused as a file: 422
    elif key == "identity POST /admin/import/confirm":  # no such preview: 409 once authorised
        kw["data"] = {"campaign": c, "token": "t", "digest": "d", "csrf": "csrf-tok"}
    elif key.startswith("identity POST /admin/registry/"):  # nobody: 404 once authorised
        kw["data"] = {"campaign": c, "respondent_id": "r-nobody", "email": "n@example.vn"}
        kw["data"]["csrf"] = "csrf-tok"
    elif key == "identity POST /focal/remind":  # nobody: 404 once authorised
        kw["data"] = {"campaign": c, "respondent_id": "r-nobody", "csrf": "csrf-tok"}
    elif key.startswith("identity POST /admin/staff"):
        kw["data"] = {"username": "nobody-here", "role": "auditor", "csrf": "csrf-tok"}
    elif key == "identity GET /admin/registry/nonrespondents.xlsx":
        kw["params"] = {"campaign": c, "unit": UNIT_A}
    elif key == "survey POST /survey":
        kw["data"] = {"csrf": "csrf-tok", "action": "edit"}
    elif key == "survey POST /admin/campaigns/upload":
        kw["files"] = {"file": ("x.xlsx", b"not a spreadsheet")}  # refused as a file: 422
        kw["data"] = {"csrf": "csrf-tok"}
    elif key == "survey POST /admin/campaigns/clone":  # onto itself: 422 once authorised
        kw["data"] = {"campaign": c, "new_id": c, "new_year": "2031", "csrf": "csrf-tok"}
    elif key == "notify POST /deliveries/resend":
        kw["data"] = {"campaign_id": c, "respondent_id": "r-nobody", "csrf": "csrf-tok"}
    elif key == "scoring POST /publish":  # a live campaign: refused with 409 once authorised
        kw["data"] = {"campaign": c, "digest": "0" * 64, "csrf": "csrf-tok"}
    elif method == "POST" and key in FORM_POSTS:
        kw["data"] = {"csrf": "csrf-tok", "email": "nobody@example.vn"}
    elif key == "survey POST /api/campaigns":
        kw["json"] = {}  # invalid campaign: 422 once authorised
    elif key == "survey POST /api/ballots":
        kw["json"] = {"answers": [{"unit_code": "NOPE", "question_id": "Q", "option_code": "x"}]}
    elif key == "survey PUT /api/draft":
        kw["json"] = {"answers": []}
    elif key == "notify POST /api/deliveries/resend":
        kw["json"] = {"campaign_id": c, "respondent_id": "r-nobody"}
    return {"service": service, "method": method, "path": path, **kw}


# --- the table ------------------------------------------------------------------------------
async def test_every_route_has_an_entry(stack: Stack) -> None:
    found = set(all_routes(stack))
    assert found - EXPECTED.keys() == set(), "routes without an access decision in EXPECTED"
    assert EXPECTED.keys() - found == set(), "EXPECTED names routes that no longer exist"
    writes = {k for k in found if k.split(" ")[1] in ("POST", "PUT", "PATCH", "DELETE")}
    assert writes == FORM_POSTS | JSON_WRITES and not FORM_POSTS & JSON_WRITES


async def test_access_matrix(campaign_stack: Stack) -> None:
    s = campaign_stack
    wrong: list[str] = []
    focal_bodies: list[str] = []
    for key in sorted(EXPECTED):
        for role in ROLES:
            args = call_args(s, key)
            resp = await s.request(
                args.pop("service"),
                args.pop("method"),
                args.pop("path"),
                role=None if role == "anonymous" else role,
                **args,
            )
            assert resp.status_code < 500, (key, role, resp.status_code, resp.text[:300])
            allowed = role in EXPECTED[key]
            if allowed == denied(key, resp):
                wrong.append(f"{key} as {role}: {resp.status_code} {resp.text[:120]!r}")
            if role.startswith("focal"):
                focal_bodies.append(resp.text)
    assert wrong == []
    # A focal point never receives an answer option code, on any route.
    for body in focal_bodies:
        for code in OPTION_CODES.values():
            assert code not in body


async def test_forged_expired_and_foreign_tokens_are_anonymous(campaign_stack: Stack) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from parindex.web.auth import Principal, issue_token

    s = campaign_stack
    admin = Principal(subject="admin", role="admin")
    forged = issue_token(Ed25519PrivateKey.generate(), admin)
    expired = issue_token(s.rt("identity").extras["private_key"], admin, ttl_s=-60)
    for token in (forged, expired, "not-a-jwt", s.tokens["admin"] + "x"):
        for service, path in (
            ("survey", "/api/progress"),
            ("notify", "/api/deliveries"),
            ("identity", "/api/respondents"),
        ):
            r = await s.request(
                service, "GET", path, token=token, params={"campaign": s.campaign_id}
            )
            assert r.status_code == 401, (service, path, r.text)


# --- respondents: the principal decides, never the body -------------------------------------
async def test_respondent_cannot_read_or_submit_for_another(campaign_stack: Stack) -> None:
    s = campaign_stack
    an, cuong = s.people[0], s.people[1]
    mine = [{"unit_code": UNIT_A, "question_id": "03q1", "option_code": "zqoptgood"}]
    r = await s.request("survey", "PUT", "/api/draft", token=an.token, json={"answers": mine})
    assert r.status_code == 200
    for params in ({}, {"respondent_id": an.respondent_id}, {"subject": an.respondent_id}):
        r = await s.request("survey", "GET", "/api/draft", token=cuong.token, params=params)
        assert r.status_code == 200 and r.json()["answers"] == []
    page = await s.request(
        "survey", "GET", "/survey", token=cuong.token, params={"respondent_id": an.respondent_id}
    )
    assert page.status_code == 200 and "checked" not in page.text

    # An submits with Cường's identity in the body and the query: the ballot is An's.
    body = {
        "answers": [{"unit_code": UNIT_A, "question_id": "03q1", "option_code": "zqoptbad"}],
        "respondent_id": cuong.respondent_id,
        "username": cuong.username,
    }
    r = await s.request(
        "survey",
        "POST",
        "/api/ballots",
        token=an.token,
        json=body,
        params={"respondent_id": cuong.respondent_id},
    )
    assert r.status_code == 201, r.text
    assert (await s.request("survey", "GET", "/api/form", token=an.token)).json()["submitted"]
    assert not (await s.request("survey", "GET", "/api/form", token=cuong.token)).json()[
        "submitted"
    ]
    again = await s.request("survey", "POST", "/api/ballots", token=an.token, json=body)
    assert again.status_code == 409 and again.json()["error"] == "already_submitted"
    # Cường can still vote once, for himself.
    r = await s.request(
        "survey", "POST", "/api/ballots", token=cuong.token, json={"answers": body["answers"]}
    )
    assert r.status_code == 201, r.text


async def test_staff_token_is_not_a_respondent(campaign_stack: Stack) -> None:
    """A staff principal whose subject happens to equal a respondent id still cannot vote."""
    from parindex.web.auth import Principal

    s = campaign_stack
    an = s.people[0]
    fake = s.mint(
        Principal(
            subject=an.respondent_id,
            role="focal_point",
            campaign_id=s.campaign_id,
            unit_code=UNIT_A,
        )
    )
    r = await s.request(
        "survey",
        "POST",
        "/api/ballots",
        token=fake,
        json={"answers": [{"unit_code": UNIT_A, "question_id": "03q1", "option_code": "zqoptbad"}]},
    )
    assert r.status_code == 403


# --- focal points see their own unit only --------------------------------------------------
async def test_focal_point_sees_only_its_unit(campaign_stack: Stack) -> None:
    s = campaign_stack
    c = s.campaign_id
    a_names = [p.name for p in s.people if p.unit == UNIT_A]
    b_names = [p.name for p in s.people if p.unit == UNIT_B]
    for params in (
        {"campaign": c},
        {"campaign": c, "unit": UNIT_A},
        {"campaign": c, "unit_code": UNIT_A},
        {},
    ):
        r = await s.request("survey", "GET", "/api/progress", role="focal_b", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["unit_code"] == UNIT_B
        assert {u["unit_code"] for u in body["units"]} <= {UNIT_B}
        assert sorted(p["full_name"] for p in body["not_answered"]) == sorted(b_names)
        page = await s.request("survey", "GET", "/progress", role="focal_b", params=params)
        assert page.status_code == 200
        for text in (r.text, page.text):
            assert not any(n in text for n in a_names)
    a = await s.request("survey", "GET", "/api/progress", role="focal_a", params={"campaign": c})
    assert sorted(p["full_name"] for p in a.json()["not_answered"]) == sorted(a_names)
    assert not any(n in a.text for n in b_names)
    other = await s.request(
        "survey", "GET", "/api/progress", role="focal_b", params={"campaign": "t-someone-else"}
    )
    assert other.status_code == 403
    # Admin and auditor see counts for every unit but no names.
    for role in ("admin", "auditor"):
        r = await s.request("survey", "GET", "/api/progress", role=role, params={"campaign": c})
        assert "not_answered" not in r.json()
        assert not any(p.name in r.text for p in s.people)


# --- cookies and CSRF ---------------------------------------------------------------------
async def test_login_cookie_flags(campaign_stack: Stack) -> None:
    s = campaign_stack
    resp = await s.login(f"admin-{s.campaign_id}", "staff-password-0123")
    assert resp.status_code == 303
    cookies = {h.split("=", 1)[0]: h.lower() for h in resp.headers.get_list("set-cookie")}
    for name in ("parindex_session", "parindex_csrf"):
        flags = [f.strip() for f in cookies[name].split(";")]
        assert "httponly" in flags, name
        assert "samesite=lax" in flags, name
    max_age = re.search(r"max-age=(\d+)", cookies["parindex_session"])
    assert max_age is not None and max_age.group(1) == str(8 * 3600)


@pytest.mark.parametrize("cookie", [None, "csrf-tok"])
async def test_every_form_post_needs_the_csrf_token(campaign_stack: Stack, cookie) -> None:
    """Without the field (with or without the cookie), or with a field that does not match."""
    s = campaign_stack
    for key in sorted(FORM_POSTS):
        service, method, path = key.split(" ", 2)
        roles = (
            ["admin"]
            if key.endswith(("/import", "/resend"))
            else (["respondent"] if service == "survey" else ["anonymous", "admin", "respondent"])
        )
        for role in roles:
            args = call_args(s, key)
            for variant in ("missing", "mismatch"):
                data = dict(args.get("data") or {})
                data.pop("csrf", None)
                if variant == "mismatch":
                    data["csrf"] = "another-token"
                r = await s.request(
                    service,
                    method,
                    path,
                    data=data,
                    files=args.get("files"),
                    role=None if role == "anonymous" else role,
                    csrf=cookie,
                    params=args.get("params"),
                )
                assert r.status_code == 403, (key, role, variant, r.status_code, r.text[:200])
    # and nothing happened: no ballot, no import
    r = await s.request("survey", "GET", "/api/form", role="respondent")
    assert r.json()["submitted"] is False


# --- aggregates: small groups ------------------------------------------------------------
async def test_unit_breakdown_suppresses_small_groups(campaign_stack: Stack) -> None:
    """While the campaign runs the breakdown holds counts only: no criterion, no question."""
    from tests.waiting import eventually

    s = campaign_stack
    an = s.people[0]
    answers = [{"unit_code": UNIT_A, "question_id": "03q1", "option_code": "zqoptbad"}]
    r = await s.request("survey", "POST", "/api/ballots", token=an.token, json={"answers": answers})
    assert r.status_code == 201

    async def counted() -> dict | None:
        resp = await s.request("scoring", "GET", f"/api/results/{s.campaign_id}/units/{UNIT_A}")
        body = resp.json()
        forms = [f for f in body.get("forms", []) if f["form_code"] == "03"]
        return body if forms and forms[0]["received"] == 1 else None

    body = await eventually(counted, timeout=30)
    assert body["visible"] is False and body["status"] == "live"
    form03 = next(f for f in body["forms"] if f["form_code"] == "03")
    assert set(form03) == {"form_code", "received", "quota"}
