"""The web kit without servers: error pages, the login redirect, the CSRF route audit and tokens.

docs/architecture.md, decision 25.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from parindex.settings import Settings
from parindex.web import csrf, errors
from parindex.web.deps import Admin

pytestmark = pytest.mark.unit
HTML = {"accept": "text/html"}


def _app(tmp_path: Path) -> FastAPI:
    app = FastAPI()
    app.state.settings = Settings(state_dir=tmp_path)
    errors.install(app)

    @app.get("/boom")
    @app.get("/api/boom")
    async def boom() -> None:
        raise RuntimeError("secret detail of a bug")

    @app.get("/admin-page")
    @app.get("/api/admin")
    async def admin_only(_: Admin) -> None:
        return None

    return app


def test_failures_are_pages_for_browsers_and_json_for_apis(tmp_path: Path) -> None:
    client = TestClient(_app(tmp_path), raise_server_exceptions=False)
    page = client.get("/boom", headers=HTML)
    assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")
    assert 'lang="vi"' in page.text and "Đã xảy ra lỗi" in page.text
    assert "secret detail" not in page.text and "RuntimeError" not in page.text
    english = client.get("/boom", params={"lang": "en"}, headers=HTML)
    assert "Something went wrong" in english.text
    assert "parindex_lang=en" in english.headers["set-cookie"]  # the choice is remembered
    client.cookies.clear()
    api = client.get("/api/boom", headers=HTML)
    assert api.status_code == 500 and api.json() == {"detail": "internal error"}
    missing = client.get("/khong-co", headers=HTML)
    assert missing.status_code == 404 and "Không tìm thấy" in missing.text
    assert client.get("/khong-co", headers={"accept": "application/json"}).json()["detail"]


def test_anonymous_pages_go_to_the_login_and_apis_answer_401(tmp_path: Path) -> None:
    client = TestClient(_app(tmp_path), raise_server_exceptions=False)
    page = client.get("/admin-page", params={"x": "1"}, headers=HTML, follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Fadmin-page%3Fx%3D1"
    api = client.get("/api/admin", headers=HTML)
    assert api.status_code == 401 and api.json() == {"detail": "login required"}


def test_a_write_route_without_a_csrf_check_is_found() -> None:
    router = APIRouter()

    @router.post("/open")
    async def open_() -> None:
        return None

    @router.post("/form")
    async def form(_: csrf.FormCsrf) -> None:
        return None

    @router.put("/json")
    async def json_(_: csrf.JsonCsrf) -> None:
        return None

    app = FastAPI()
    app.include_router(router)
    assert csrf.unprotected_writes(app) == ["['POST'] /open"]


def test_tokens_are_bound_to_the_session_and_the_key(tmp_path: Path) -> None:
    key = csrf.load_key(Settings(state_dir=tmp_path))
    assert key == csrf.load_key(Settings(state_dir=tmp_path))  # made once, then read
    assert (tmp_path / "secrets" / "csrf_key").stat().st_mode & 0o077 == 0
    assert csrf.load_key(Settings(state_dir=tmp_path, csrf_key="from-env")) == b"from-env"
    a = csrf.token_for(key, session="session-a")
    assert a == csrf.token_for(key, session="session-a")
    assert a != csrf.token_for(key, session="session-b")
    assert a != csrf.token_for(b"another key", session="session-a")
    assert csrf.token_for(key, nonce="n") != csrf.token_for(key, session="n")
