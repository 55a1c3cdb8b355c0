"""The deliveries page shows the campaign picked in the bar, not always the newest
(docs/architecture.md, decision 39)."""

from __future__ import annotations

import json

import httpx

from contracts import subjects
from parindex.settings import Settings
from parindex.web.auth import COOKIE, Principal, issue_token, load_or_create_private_key, public_pem
from parindex.web.service import create_app
from services.notify.service import SERVICE
from tests.notify.test_service import close, deadline_in, define, small_campaign
from tests.waiting import eventually


async def test_deliveries_follow_the_pick_and_scoped_staff_keep_theirs(
    nats_url, pg_url, tmp_path, campaign_id
) -> None:
    key = load_or_create_private_key(tmp_path / "k.pem")
    settings = Settings(nats_url=nats_url, database_url=pg_url, state_dir=tmp_path)
    older, newer = (
        small_campaign(f"{campaign_id}-a", deadline_in(10)),
        small_campaign(f"{campaign_id}-b", deadline_in(10)),
    )
    app = create_app(SERVICE, settings)
    async with app.router.lifespan_context(app):
        nc = app.state.rt.nc
        js = nc.jetstream()

        async def reply(msg) -> None:
            await msg.respond(json.dumps({"public_key_pem": public_pem(key)}).encode())

        sub = await nc.subscribe(subjects.RPC_IDENTITY_PUBLIC_KEY, cb=reply)
        try:
            await define(js, older, 0)
            await define(js, newer, 0)
            watch = app.state.campaign_watch
            await eventually(lambda: watch.campaigns()[:2] == [newer.id, older.id], timeout=15)
            admin = issue_token(key, Principal(subject="a", role="admin"))
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                http.cookies.set(COOKIE, admin)

                def heading(page: httpx.Response) -> str:
                    return page.text.split("<h1>", 1)[1].split("</h1>", 1)[0]

                first = await http.get("/deliveries")
                assert newer.id in heading(first)  # nothing picked yet: the newest
                assert 'data-stage="published"' in first.text
                picked = await http.get("/deliveries", params={"campaign": older.id})
                assert older.id in heading(picked)
                assert f'<option value="{older.id}" selected>' in picked.text
                again = await http.get("/deliveries")  # remembered in the cookie
                assert older.id in heading(again) and newer.id not in heading(again)

            scoped = issue_token(key, Principal(subject="s", role="admin", campaign_id=newer.id))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                http.cookies.set(COOKIE, scoped)
                http.cookies.set("parindex_campaign", older.id)  # a pick made elsewhere
                own = await http.get("/deliveries")
                assert newer.id in heading(own) and 'id="campaign-pick"' not in own.text
                other = await http.get("/deliveries", params={"campaign": older.id})
                assert other.status_code == 403
            await close(js, older)
            closed = await eventually(
                lambda: watch.stage(older.id).value == "closed" or None, timeout=15
            )
            assert closed
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                http.cookies.set(COOKIE, admin)
                page = await http.get("/deliveries", params={"campaign": older.id})
                assert 'data-stage="closed">Đã đóng<' in page.text
        finally:
            await close(js, newer)
            await sub.unsubscribe()
