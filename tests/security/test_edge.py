"""The HTTP edge (docs/architecture.md, decision 22): headers, body limits, internal endpoints,
cookies, spreadsheet exports and the mail spool, each checked on the real code paths."""

from __future__ import annotations

import ast
import io
import stat
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI, Request
from openpyxl import load_workbook
from starlette.responses import Response

from parindex.runtime.mailcatcher import _Store
from parindex.settings import Settings
from parindex.web.cookies import set_cookie
from parindex.web.service import create_app
from services.identity.service import SERVICE as IDENTITY
from services.notify.service import SERVICE as NOTIFY
from services.scoring.service import SERVICE as SCORING
from services.scoring.web import _csv, _xlsx
from services.survey.service import SERVICE as SURVEY

SPECS = {"identity": IDENTITY, "survey": SURVEY, "scoring": SCORING, "notify": NOTIFY}
HEADERS = {
    "content-security-policy": "frame-ancestors 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
}


def _client(app: FastAPI, host: str = "127.0.0.1") -> httpx.AsyncClient:
    # The lifespan is not entered: these routes answer without NATS or a database.
    transport = httpx.ASGITransport(app=app, client=(host, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://edge")


@pytest.mark.parametrize("service", SPECS)
async def test_every_answer_carries_the_framing_and_sniffing_headers(service: str) -> None:
    app = create_app(SPECS[service], Settings())
    async with _client(app) as http:
        for path in ("/healthz", "/no-such-page", "/docs", "/metrics"):
            resp = await http.get(path)
            for name, value in HEADERS.items():
                assert resp.headers.get(name) == value, (service, path, name)


@pytest.mark.parametrize("service", SPECS)
async def test_api_docs_are_hidden_unless_switched_on(service: str) -> None:
    async with _client(create_app(SPECS[service], Settings())) as http:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert (await http.get(path)).status_code == 404, path
    async with _client(create_app(SPECS[service], Settings(api_docs=True))) as http:
        assert (await http.get("/openapi.json")).json()["paths"]
        assert (await http.get("/docs")).status_code == 200


async def test_metrics_answer_only_loopback_and_the_allowed_networks() -> None:
    app = create_app(SCORING, Settings(metrics_allow="10.9.0.0/16, 192.0.2.7"))
    for host, status in [
        ("127.0.0.1", 200),
        ("10.9.3.4", 200),
        ("192.0.2.7", 200),
        ("203.0.113.5", 404),
        ("10.8.0.1", 404),
    ]:
        async with _client(app, host) as http:
            resp = await http.get("/metrics")
            assert resp.status_code == status, host
            assert ("parindex_" in resp.text) == (status == 200), host


def _echo_app(settings: Settings) -> tuple[FastAPI, list[int]]:
    app = create_app(SCORING, settings)
    read: list[int] = []

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        body = await request.body()
        read.append(len(body))
        return {"n": len(body)}

    @app.post("/api/respondents/import")
    async def importer(request: Request) -> dict[str, int]:
        return {"n": len(await request.body())}

    return app, read


async def test_an_oversized_body_is_refused_with_413_before_it_is_read_whole() -> None:
    app, read = _echo_app(Settings(max_body_bytes=1000, max_import_bytes=5000))
    async with _client(app) as http:
        assert (await http.post("/echo", content=b"x" * 1000)).json() == {"n": 1000}
        declared = await http.post("/echo", content=b"x" * 1001)
        assert declared.status_code == 413
        assert declared.headers["x-frame-options"] == "DENY"

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
            for _ in range(10):
                yield b"y" * 300

        streamed = await http.post("/echo", content=chunks())
        assert streamed.status_code == 413
        assert read == [1000]  # the handler never saw either oversized body
        # The respondent-list import has its own, larger limit.
        assert (await http.post("/api/respondents/import", content=b"z" * 4000)).status_code == 200
        assert (await http.post("/api/respondents/import", content=b"z" * 5001)).status_code == 413


def _request(secure: bool) -> Request:
    app = SimpleNamespace(state=SimpleNamespace(settings=Settings(cookie_secure=secure)))
    return Request({"type": "http", "app": app, "headers": []})


def test_the_cookie_helper_sets_secure_when_configured() -> None:
    for secure in (True, False):
        resp = Response()
        set_cookie(_request(secure), resp, "parindex_csrf", "v", httponly=True)
        header = resp.headers["set-cookie"].lower()
        assert ("secure" in header) == secure
        assert "samesite=lax" in header and "httponly" in header


def test_no_service_sets_a_cookie_but_through_the_helper() -> None:
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for path in [
        *root.joinpath("services").rglob("*.py"),
        *root.joinpath("parindex").rglob("*.py"),
    ]:
        if path.name == "cookies.py" and path.parent.name == "web":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "set_cookie":
                if isinstance(node.value, ast.Name) and node.value.id in {"resp", "response"}:
                    offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert offenders == []


HOSTILE = ['=HYPERLINK("http://x","y")', "+1+2", "-3+4", "@SUM(A1)", "\tx", "\rx", "Sở A"]


def test_exports_neutralise_formulas_but_keep_numbers() -> None:
    rows: list[list[object]] = [[name, Decimal("-0.50"), 3] for name in HOSTILE]
    text = _csv(rows, "x.csv").body.decode("utf-8-sig")
    assert "'=HYPERLINK" in text and "'+1+2" in text and "'-3+4" in text and "'@SUM" in text
    assert "\n=" not in text and ",-0.50,3" in text  # numbers (negative too) stay numbers
    wb = load_workbook(io.BytesIO(_xlsx({"S": rows}, "x.xlsx").body))
    ws = wb["S"]
    names = [ws.cell(row=i + 1, column=1).value for i in range(len(HOSTILE))]
    expected = ["'" + n for n in HOSTILE[:-1]] + ["Sở A"]
    # A bare CR survives (escaped as _x000D_) or comes back as LF, by writer: either is text.
    assert [str(n).replace("\r", "\n") for n in names] == [n.replace("\r", "\n") for n in expected]
    assert all(ws.cell(row=i + 1, column=1).data_type == "s" for i in range(len(HOSTILE)))
    assert ws.cell(row=1, column=2).value == -0.5 and ws.cell(row=1, column=3).value == 3


async def test_the_mail_spool_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    store = _Store(folder)
    envelope = SimpleNamespace(original_content=b"Subject: credentials\r\n\r\npassword")
    assert (await store.handle_DATA(None, None, envelope)).startswith("250")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    [message] = list(folder.glob("*.eml"))
    assert stat.S_IMODE(message.stat().st_mode) == 0o600
