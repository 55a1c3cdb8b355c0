"""Hostile input: random events and campaign files, oversized and malformed HTTP bodies,
malicious spreadsheets, generated calls of every OpenAPI operation (schemathesis) and random
fields on every HTML form. Nothing may crash with a 5xx or show a stack trace.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.events import PAYLOADS, EventError, decode
from parindex.web.auth import Principal
from services.survey.campaign_file import CampaignFileError, parse_campaign
from tests.identity.conftest import VN_HEADERS
from tests.identity.test_service import stream_messages
from tests.security.conftest import Stack, campaign_document, write_xlsx
from tests.waiting import eventually

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = [
    "event_id",
    "type",
    "schema_version",
    "occurred_at",
    "campaign_id",
    "correlation_id",
    "causation_id",
    "producer",
    "data",
]


@st.composite
def envelopes(draw: st.DrawFn) -> bytes:
    """Mostly envelope-shaped: known types, plausible fields, random data and versions."""
    env: dict[str, Any] = {}
    for name in FIELDS:
        if draw(st.booleans()) or name in ("type", "data"):
            env[name] = draw(json_values)
    env["type"] = draw(st.sampled_from(sorted(PAYLOADS)) | st.text(max_size=10))
    env["schema_version"] = draw(st.integers(min_value=-2, max_value=4) | json_scalars)
    env["occurred_at"] = draw(st.sampled_from(["2023-09-22T03:00:00Z", "2023-09-22", "x"]))
    env["data"] = draw(st.dictionaries(st.text(max_size=12), json_values, max_size=6) | json_values)
    return json.dumps(env).encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=envelopes() | st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode())
)
def test_decode_raises_only_event_error(raw: bytes) -> None:
    try:
        decode(raw)
    except EventError:
        pass


@st.composite
def campaign_like(draw: st.DrawFn) -> Any:
    """A valid campaign with random parts replaced, or random JSON altogether."""
    doc = campaign_document("t-hypo")
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        target: Any = doc
        path = []
        while isinstance(target, dict | list) and target and draw(st.booleans()):
            key = draw(
                st.sampled_from(
                    sorted(target) if isinstance(target, dict) else list(range(len(target)))
                )
            )
            path.append(key)
            if not isinstance(target[key], dict | list):
                break
            target = target[key]
        if isinstance(target, dict):
            target[draw(st.sampled_from([*target, "extra"]))] = draw(json_values)
        elif isinstance(target, list) and target:
            target[draw(st.integers(0, len(target) - 1))] = draw(json_values)
    return doc


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=campaign_like()
    | st.dictionaries(st.text(max_size=10), json_values, max_size=8)
    | json_values
)
def test_parse_campaign_raises_only_campaign_file_error(data: Any) -> None:
    try:
        result = parse_campaign(data)
    except CampaignFileError as exc:
        assert exc.errors
    else:
        assert result.id


@pytest.mark.parametrize("where", ["form_priority", "unit_codes"])
def test_parse_campaign_unhashable_reference(where: str) -> None:
    doc = campaign_document("t-unhashable")
    if where == "form_priority":
        doc["form_priority"] = [["01"], {"x": 1}]
    else:
        doc["waves"][0]["members"][0]["unit_codes"] = [["SNV"]]
    with pytest.raises(CampaignFileError):
        parse_campaign(doc)


# --- HTTP bodies ------------------------------------------------------------------------
def assert_clean_4xx(resp: Any) -> None:
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text[:300])
    assert "Traceback" not in resp.text and 'File "' not in resp.text
    resp.json()  # a JSON error body


BIG = 20 * 1024 * 1024

BODIES = [
    b"{",
    b"not json at all",
    b"\xff\xfe\x00garbage",
    b'{"answers": [',
    b"[]",
    b"null",
    b'"a string"',
    b'{"answers": "x"}',
    b'{"answers": [{"unit_code": 1}]}',
    b'{"id": {"$gt": ""}}',
    ('{"x": "' + "a" * BIG + '"}').encode(),
    b"[" * 100_000,
    ("[" + ",".join(["{}"] * 200_000) + "]").encode(),
]


def _body_cases() -> list[Any]:
    cases = []
    for path, role in (("/api/ballots", "respondent"), ("/api/campaigns", "admin")):
        for body in BODIES:
            marks: list[Any] = []
            not_json = True
            try:
                json.loads(body)
                not_json = False
            except (ValueError, RecursionError):
                pass
            del not_json  # every malformed body now gets a clear 4xx
            cases.append(
                pytest.param(path, role, body, marks=marks, id=f"{path}-{len(body)}B-{body[:10]!r}")
            )
    return cases


@pytest.mark.parametrize("path,role,body", _body_cases())
async def test_malformed_and_oversized_json_bodies(
    stack: Stack, path: str, role: str, body: bytes
) -> None:
    p = (
        Principal(
            subject="r-x", role=role, campaign_id=stack.campaign_id, unit_code="SNV", form_code="03"
        )
        if role == "respondent"
        else Principal("a", "admin")
    )
    for content_type in ("application/json", "text/plain"):
        r = await stack.request(
            "survey",
            "POST",
            path,
            token=stack.mint(p),
            content=body,
            headers={"content-type": content_type},
        )
        assert_clean_4xx(r)


# --- spreadsheets ------------------------------------------------------------------------
def broken_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.xml", "<workbook")
    return buf.getvalue()[:-30]


async def test_malicious_spreadsheets_are_refused(stack: Stack, tmp_path) -> None:
    s = stack
    c = s.campaign_id
    s.tokens["admin"] = s.mint(Principal("admin", "admin"))
    r = await s.request("survey", "POST", "/api/campaigns", role="admin", json=campaign_document(c))
    assert r.status_code == 201, r.text
    ok_row = [1, "Nguyễn Văn An", "an@example.vn", "SNV", "03", None]

    def row(**change: object) -> list[object]:
        out = list(ok_row)
        for i, name in enumerate(("stt", "name", "email", "unit", "form", "phone")):
            if name in change:
                out[i] = change[name]
        return out

    huge = [VN_HEADERS] + [row(email=f"p{i}@example.vn") for i in range(20_001)]
    files: dict[str, bytes] = {
        "formula": write_xlsx(
            [
                VN_HEADERS,
                row(name='=HYPERLINK("http://evil/","x")'),
                row(email="b@example.vn", name="@SUM(A1)"),
                row(email="c@example.vn", name="+cmd|' /C calc'!A0"),
            ],
            tmp_path / "f.xlsx",
        ),
        "wrong types": write_xlsx(
            [VN_HEADERS, row(email=12345), row(form=3.5), row(unit=True, email="d@example.vn")],
            tmp_path / "t.xlsx",
        ),
        "broken zip": broken_zip(),
        "not a spreadsheet": b"\x89PNG\r\n\x1a\n" + b"\x00" * 100,
        "empty": b"",
        "too big": b"PK\x03\x04" + b"\x00" * (11 * 1024 * 1024),
        "huge sheet": write_xlsx(huge, tmp_path / "h.xlsx"),
    }

    async def import_(content: bytes) -> Any:
        return await s.request(
            "identity",
            "POST",
            "/api/respondents/import",
            role="admin",
            csrf="t",
            data={"campaign": c, "csrf": "t"},
            files={"file": ("ds.xlsx", content)},
        )

    async def known() -> bool:  # identity has read the campaign from the log
        return (await import_(files["empty"])).status_code != 404

    await eventually(known, timeout=30)
    for name, content in files.items():
        r = await import_(content)
        assert r.status_code == 422, (name, r.status_code, r.text[:300])
        assert "Traceback" not in r.text
        problems = r.json()["problems"]
        assert problems, name
        for p in problems:
            assert isinstance(p["row"], int) and "column" in p and p["code"], (name, p)
        if name == "formula":
            assert {(p["row"], p["code"]) for p in problems} >= {
                (2, "formula_injection"),
                (3, "formula_injection"),
                (4, "formula_injection"),
            }
    types = [json.loads(m.data)["type"] for m in await stream_messages(s.nc, c)]
    assert "RespondentRegistered" not in types


# --- schemathesis ------------------------------------------------------------------------
SERVICES = ("identity", "survey", "scoring", "notify")
# The web kit requires a custom header and a session-bound CSRF token on writes; sending both
# (with the matching cookie) lets the fuzzing reach the handlers rather than the refusal.
FUZZ_HEADERS = {"X-Requested-With": "parindex", "X-CSRF-Token": "t"}
FUZZ_ROLES: tuple[str | None, ...] = (None, "admin", "respondent", "focal_point")


def fuzz_tokens(s: Stack) -> None:
    c = s.campaign_id
    s.tokens["admin"] = s.mint(Principal("admin", "admin"))
    s.tokens["respondent"] = s.mint(
        Principal(subject="r-x", role="respondent", campaign_id=c, unit_code="SNV", form_code="03")
    )
    s.tokens["focal_point"] = s.mint(
        Principal(subject="fp-x", role="focal_point", campaign_id=c, unit_code="SNV")
    )


def failed(resp: Any) -> bool:
    return resp.status_code >= 500 or "Traceback" in resp.text or 'File "' in resp.text


async def test_schemathesis_no_5xx(stack: Stack) -> None:
    """Generated calls of every operation of all four services, as anonymous, admin,
    respondent and focal point: no answer is a 5xx or shows a traceback."""
    import asyncio

    import schemathesis
    from hypothesis import Phase

    s = stack
    fuzz_tokens(s)
    failures: list[str] = []
    operations = 0
    for service in SERVICES:
        schema = schemathesis.openapi.from_dict(s.apps[service].openapi())
        cases: list[dict[str, Any]] = []

        def generate(
            schema: Any = schema, cases: list = cases, base: str = f"http://{service}"
        ) -> int:
            count = 0
            for result in schema.get_all_operations():
                op = result.ok()
                count += 1

                @settings(
                    max_examples=4,
                    deadline=None,
                    database=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=op.as_strategy())
                def collect(case: Any) -> None:
                    cases.append(case.as_transport_kwargs(base_url=base))

                collect()
            return count

        operations += await asyncio.to_thread(generate)
        assert cases, service
        for kw in cases:
            body: dict[str, Any] = {}
            for key in ("json", "files"):
                if kw.get(key) is not None:
                    body[key] = kw[key]
            data = kw.get("data")
            if isinstance(data, bytes | str):
                body["content"] = data
            elif data is not None:
                body["data"] = data
            headers = {
                k: v
                for k, v in (kw.get("headers") or {}).items()
                if k.lower() not in ("cookie", "authorization")
            }
            for role in FUZZ_ROLES:
                r = await s.request(
                    service,
                    kw["method"],
                    kw["url"].removeprefix(f"http://{service}"),
                    role=role,
                    csrf="t",
                    params=kw.get("params"),
                    headers={**headers, **FUZZ_HEADERS},
                    **body,
                )
                if failed(r):
                    failures.append(
                        f"{service} {role} {kw['method']} {kw['url']} {kw.get('params')} "
                        f"{str(kw.get('json') or data)[:120]} -> {r.status_code} {r.text[:200]}"
                    )
    assert operations >= 30  # every service's operations, POST /api/campaigns included
    assert failures == [], "\n".join(failures[:20])


# Every HTML form route, with the fields it reads and random ones.
FORM_ROUTES: list[tuple[str, str, tuple[str, ...]]] = [
    ("identity", "/login", ("username", "password", "next")),
    ("identity", "/reset", ("email",)),
    ("identity", "/logout", ()),
    ("identity", "/admin/import", ("campaign",)),
    ("identity", "/admin/import/confirm", ("campaign", "token", "digest", "withdraw")),
    ("identity", "/admin/registry/email", ("campaign", "respondent_id", "email")),
    ("identity", "/admin/registry/resend", ("campaign", "respondent_id")),
    ("identity", "/admin/registry/remind", ("campaign", "respondent_id", "unit")),
    ("identity", "/focal/remind", ("campaign", "respondent_id", "everyone")),
    ("identity", "/admin/staff", ("username", "role", "unit_code", "scope_campaign", "password")),
    ("identity", "/admin/staff/disable", ("username",)),
    ("identity", "/admin/staff/reset", ("username",)),
    ("survey", "/survey", ("submission_id", "action", "a:SNV:q1", "a:SNV:q2")),
    ("survey", "/admin/campaigns/clone", ("campaign", "new_id", "new_year")),
    ("survey", "/admin/campaigns/upload", ("file",)),
    ("survey", "/admin/campaigns/drafts/no-such-draft/publish", ()),
    ("notify", "/deliveries/resend", ("campaign", "respondent_id", "campaign_id")),
    ("scoring", "/publish", ("campaign", "digest")),
]
hostile_text = st.text(max_size=30) | st.sampled_from(
    ["\x00", "a\x00b", "=cmd()", "x" * 5000, "../../etc/passwd", "%00", ""]
)


async def test_form_routes_take_random_fields_without_5xx(stack: Stack) -> None:
    import asyncio

    s = stack
    fuzz_tokens(s)
    generated: list[tuple[str, str, dict[str, Any]]] = []

    def generate() -> None:
        for service, path, names in FORM_ROUTES:
            fields = st.dictionaries(
                st.sampled_from([*names, "csrf"]) | st.text(max_size=8), hostile_text, max_size=6
            )

            @settings(max_examples=12, deadline=None, database=None)
            @given(form=fields)
            def collect(form: dict[str, Any]) -> None:
                generated.append((service, path, form))  # noqa: B023 - run before the next

            collect()

    await asyncio.to_thread(generate)
    failures = []
    for service, path, form in generated:
        for role in FUZZ_ROLES:
            for csrf in (None, "t"):
                data = {**form, "csrf": "t"} if csrf else form
                r = await s.request(
                    service, "POST", path, role=role, csrf=csrf, data=data, headers=FUZZ_HEADERS
                )
                if failed(r):
                    failures.append(f"{service} {path} {role} {data!r:.120} -> {r.status_code}")
    # Bytes no client library would encode: a lone surrogate and invalid UTF-8, escaped.
    raw = b"csrf=t&email=%ED%A0%80&username=%ff%fe%00&password=%C0&campaign=%ED%BF%BF&x=%"
    for service, path, _ in FORM_ROUTES:
        for role in FUZZ_ROLES:
            r = await s.request(
                service,
                "POST",
                path,
                role=role,
                csrf="t",
                content=raw,
                headers={**FUZZ_HEADERS, "content-type": "application/x-www-form-urlencoded"},
            )
            if failed(r):
                failures.append(f"{service} {path} {role} raw bytes -> {r.status_code}")
    assert len(generated) >= len(FORM_ROUTES) * 5
    assert failures == [], "\n".join(failures[:20])


async def test_out_of_range_numbers_are_refused_naming_the_field(stack: Stack) -> None:
    s = stack
    s.tokens["admin"] = s.mint(Principal("admin", "admin"))
    for change, field in (
        ({"quotas": [{"form_code": "03", "ballots": 10**7}]}, "ballots"),
        ({"min_report_size": 2**60}, "min_report_size"),
        ({"year": -1}, "year"),
        ({"reminder_offsets_days": [10**9]}, "reminder_offsets_days"),
    ):
        doc = {**campaign_document(s.campaign_id), **change}
        r = await s.request(
            "survey", "POST", "/api/campaigns", role="admin", json=doc, headers=FUZZ_HEADERS
        )
        assert r.status_code == 422, (field, r.status_code, r.text[:300])
        assert any(field in p["path"] for p in r.json()["detail"]["problems"]), r.text[:300]


async def test_nul_in_query_parameters(stack: Stack) -> None:
    s = stack
    s.tokens["admin"] = s.mint(Principal("admin", "admin"))
    failing = []
    routes = [
        ("survey", "/progress"),
        ("survey", "/api/progress"),
        ("scoring", "/api/results"),
        ("scoring", "/dashboard"),
        ("scoring", "/export/results.csv"),
        ("notify", "/api/deliveries"),
        ("notify", "/deliveries"),
        ("identity", "/api/respondents"),
    ]
    for service, path in routes:
        r = await s.request(service, "GET", path, role="admin", params={"campaign": "a\x00b"})
        if r.status_code >= 500:
            failing.append(f"{service} {path}")
    for body in (
        {"campaign_id": "a\x00b", "respondent_id": "r"},
        {"campaign_id": s.campaign_id, "respondent_id": "r\x00"},
    ):
        r = await s.request("notify", "POST", "/api/deliveries/resend", role="admin", json=body)
        if r.status_code >= 500:
            failing.append(f"notify POST /api/deliveries/resend {body}")
    assert failing == [], ", ".join(failing)
