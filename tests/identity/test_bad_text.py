"""Login and reset refuse text PostgreSQL cannot store (docs/architecture.md, decision 17)."""

from __future__ import annotations

import re

from tests.identity.test_service import ADMIN_PASSWORD, identity  # noqa: F401 - fixture


async def _csrf(client, path: str) -> str:
    page = await client.get(path)
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


async def test_login_and_reset_with_nul_answer_4xx_naming_the_field(identity) -> None:  # noqa: F811
    client = identity["client"]
    for username, password in (("ad\x00min", ADMIN_PASSWORD), (identity["admin"], "pw\x00")):
        r = await client.post(
            "/login",
            data={
                "username": username,
                "password": password,
                "csrf": await _csrf(client, "/login"),
            },
        )
        assert r.status_code == 400, r.text
        assert "không được phép" in r.text
    assert "«Tên đăng nhập»" in r.text or "«Mật khẩu»" in r.text
    r = await client.post(
        "/reset", data={"email": "a\x00@example.vn", "csrf": await _csrf(client, "/reset")}
    )
    assert r.status_code == 400 and "«Email»" in r.text


async def test_admin_portal_shows_the_dead_letter_count(identity) -> None:  # noqa: F811
    from parindex.bus.deadletter import dead_letter_count
    from tests.identity.test_service import login

    client = identity["client"]
    assert (await login(client, identity["admin"], ADMIN_PASSWORD)).status_code == 303
    count = await dead_letter_count(identity["nc"].jetstream())
    page = await client.get("/")
    shown = re.search(r"Sự kiện lỗi: (\d+)", page.text)
    assert page.status_code == 200 and shown is not None
    assert int(shown.group(1)) >= count  # others may dead-letter meanwhile, never fewer
