"""The campaign's stage and picker on identity's staff pages, the import preview and the
closed-campaign refusal, on real NATS and PostgreSQL (docs/architecture.md, decision 39)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import httpx

from contracts import subjects
from contracts.events import (
    CampaignDefined,
    DeadlineReached,
    Payload,
    ResultsPublished,
    ResultsReleased,
    WaveOpened,
    make,
)
from parindex.bus.publish import publish_event
from services.identity.accounts import add_user
from tests.identity.conftest import make_campaign
from tests.identity.test_service import (  # noqa: F401  # the fixture, reused
    ADMIN_PASSWORD,
    ROWS,
    identity,
    import_file,
    login,
    stream_messages,
    types_of,
)
from tests.waiting import eventually

NOW = datetime(2023, 10, 6, tzinfo=UTC)


async def put(nc, subject: str, payload: Payload, campaign_id: str) -> None:
    env = make(payload, campaign_id=campaign_id, producer="test")
    await publish_event(nc.jetstream(), subject, env)


async def stage_shown(client: httpx.AsyncClient, path: str = "/admin/registry") -> str:
    page = await client.get(path)
    found = re.search(r'data-stage="([a-z_]+)"[^>]*>([^<]+)<', page.text)
    return f"{found.group(1)}:{found.group(2)}" if found else ""


def token_of(page: str) -> dict[str, str]:
    return {
        k: re.search(rf'name="{k}" value="([^"]*)"', page).group(1)  # type: ignore[union-attr]  # asserted by the caller
        for k in ("csrf", "campaign", "token", "digest")
    }


async def test_stage_on_every_identity_page_follows_the_log(identity) -> None:  # noqa: F811
    client, c, nc = identity["client"], identity["campaign_id"], identity["nc"]
    await login(client, identity["admin"], ADMIN_PASSWORD)
    await client.get("/admin/registry", params={"campaign": c})  # picked and remembered
    assert await eventually(lambda: _is(client, "published:Đã ban hành, chưa mở đợt"))
    steps = [
        (
            subjects.wave(c, "w1"),
            WaveOpened(wave_id="w1", opens_at=NOW),
            "collecting:Đang thu phiếu",
        ),
        (subjects.deadline(c), DeadlineReached(deadline=NOW), "closed:Đã đóng"),
        (
            subjects.results(c),
            ResultsPublished(digest="d", last_sequence=1, rows=[]),
            "results_frozen:Đã chốt kết quả, chưa công bố",
        ),
        (
            subjects.release(c),
            ResultsReleased(digest="d", released_by="a", released_on=date(2023, 10, 7)),
            "results_published:Đã công bố kết quả",
        ),
    ]
    for subject, payload, shown in steps:
        await put(nc, subject, payload, c)
        await eventually(lambda shown=shown: _is(client, shown), timeout=15)
        for path in ("/", "/admin/import", "/admin/staff"):  # every staff page of identity
            assert await stage_shown(client, path) == shown, path
    en = await client.get("/admin/registry", params={"lang": "en"})
    assert "Results published" in en.text


async def _is(client: httpx.AsyncClient, shown: str) -> bool:
    return await stage_shown(client) == shown


async def test_picker_drives_registry_and_import_and_scoped_staff_cannot_pick(identity) -> None:  # noqa: F811
    client, c, nc, rt = identity["client"], identity["campaign_id"], identity["nc"], identity["rt"]
    other = f"{c}-b"
    await put(
        nc,
        subjects.campaign(other),
        CampaignDefined(campaign=make_campaign().model_copy(update={"id": other})),
        other,
    )
    await login(client, identity["admin"], ADMIN_PASSWORD)
    await eventually(lambda: other in identity["app"].state.campaign_watch.campaigns())
    page = await client.get("/admin/registry", params={"campaign": c})
    assert f'<option value="{c}" selected>' in page.text
    assert client.cookies.get("parindex_campaign") == c
    # The remembered pick drives the pages that name no campaign.
    imp = await client.get("/admin/import")
    assert (
        f'name="campaign" value="{c}"' in imp.text and 'type="text" id="campaign"' not in imp.text
    )
    await client.get("/admin/registry", params={"campaign": other})
    imp = await client.get("/admin/import")
    assert f'name="campaign" value="{other}"' in imp.text
    reg = await client.get("/admin/registry")
    assert f'<option value="{other}" selected>' in reg.text

    scoped = f"scoped-{c}"
    await add_user(rt.sessions, scoped, "admin", ADMIN_PASSWORD, campaign_id=c)
    transport = identity["transport"]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as s:
        await login(s, scoped, ADMIN_PASSWORD)
        s.cookies.set("parindex_campaign", other)
        own = await s.get("/admin/import")
        assert f'name="campaign" value="{c}"' in own.text
        assert 'id="campaign-pick"' not in own.text  # nothing to pick
        refused = await s.get("/admin/registry", params={"campaign": other})
        assert refused.status_code == 403
        assert "parindex_campaign" not in refused.headers.get("set-cookie", "")


async def test_preview_publishes_nothing_until_confirmed(identity, write_xlsx) -> None:  # noqa: F811
    client, c, nc = identity["client"], identity["campaign_id"], identity["nc"]
    await login(client, identity["admin"], ADMIN_PASSWORD)
    assert (await import_file(client, c, write_xlsx(ROWS))).status_code == 200
    before = len(await stream_messages(nc, c))
    changed = [list(r) for r in ROWS[:3]]  # Dung (form 01) is not in this file
    changed[1][1] = "Nguyễn Văn Ân"  # a change
    changed.append([4, "Lê Văn Tư", "tu.le@stc.gov.vn", "STC", "03", None])  # an addition
    await client.get("/admin/import", params={"campaign": c})
    page = await client.post(
        "/admin/import",
        data={"campaign": c, "csrf": token_of_csrf(client, await client.get("/admin/import"))},
        files={"file": ("v2.xlsx", write_xlsx(changed, name="v2.xlsx"))},
    )
    assert page.status_code == 200, page.text
    text = page.text
    assert 'data-count="new">1<' in text and 'data-count="updated">1<' in text
    assert 'data-count="missing">1<' in text
    assert "Lê Văn Tư" in text and "Nguyễn Văn Ân" in text and "Phạm Thị Dung" in text
    assert "Chưa có gì được ghi" in text
    assert len(await stream_messages(nc, c)) == before  # the preview published nothing

    form = token_of(text)
    done = await client.post("/admin/import/confirm", data=form)  # no withdrawal ticked
    assert done.status_code == 200, done.text
    kinds = types_of(await stream_messages(nc, c))[before:]
    assert sorted(kinds) == ["RespondentRegistered", "RespondentUpdated"]
    again = await client.post("/admin/import/confirm", data=form)  # used once only
    assert again.status_code == 409 and "hết hạn" in again.text

    # The same file again, now asking to withdraw the one not in it.
    page = await client.post(
        "/admin/import",
        data={"campaign": c, "csrf": form["csrf"]},
        files={"file": ("v2.xlsx", write_xlsx(changed, name="v2b.xlsx"))},
    )
    assert 'data-count="new">0<' in page.text and 'data-count="missing">1<' in page.text
    mid = len(await stream_messages(nc, c))
    done = await client.post(
        "/admin/import/confirm", data={**token_of(page.text), "withdraw": "true"}
    )
    assert done.status_code == 200, done.text
    assert types_of(await stream_messages(nc, c))[mid:] == ["RespondentWithdrawn"]


async def test_a_preview_outdated_by_another_import_publishes_nothing(identity, write_xlsx) -> None:  # noqa: F811
    client, c, nc = identity["client"], identity["campaign_id"], identity["nc"]
    await login(client, identity["admin"], ADMIN_PASSWORD)
    csrf = token_of_csrf(client, await client.get("/admin/import", params={"campaign": c}))
    page = await client.post(
        "/admin/import",
        data={"campaign": c, "csrf": csrf},
        files={"file": ("a.xlsx", write_xlsx(ROWS))},
    )
    assert 'data-count="new">3<' in page.text
    assert (await import_file(client, c, write_xlsx(ROWS[:2], name="b.xlsx"))).status_code == 200
    before = len(await stream_messages(nc, c))
    late = await client.post("/admin/import/confirm", data=token_of(page.text))
    assert late.status_code == 409 and "thay đổi" in late.text
    assert len(await stream_messages(nc, c)) == before


async def test_import_into_a_closed_campaign_is_refused(identity, write_xlsx) -> None:  # noqa: F811
    client, c, nc = identity["client"], identity["campaign_id"], identity["nc"]
    await login(client, identity["admin"], ADMIN_PASSWORD)
    csrf = token_of_csrf(client, await client.get("/admin/import", params={"campaign": c}))
    preview = await client.post(
        "/admin/import",
        data={"campaign": c, "csrf": csrf},
        files={"file": ("a.xlsx", write_xlsx(ROWS))},
    )
    assert preview.status_code == 200
    await put(nc, subjects.deadline(c), DeadlineReached(deadline=NOW), c)
    before = len(await stream_messages(nc, c))

    api = await import_file(client, c, write_xlsx(ROWS))
    assert api.status_code == 409 and api.json()["error"] == "campaign_closed"
    page = await client.post(
        "/admin/import",
        data={"campaign": c, "csrf": csrf},
        files={"file": ("a.xlsx", write_xlsx(ROWS, name="c.xlsx"))},
    )
    assert page.status_code == 409 and "Đợt khảo sát này đã đóng" in page.text
    late = await client.post("/admin/import/confirm", data=token_of(preview.text))
    assert late.status_code == 409 and "Đợt khảo sát này đã đóng" in late.text
    assert "Traceback" not in late.text and "campaign_closed" not in late.text
    after = await stream_messages(nc, c)
    assert len(after) == before and "RespondentRegistered" not in types_of(after)
    form = await eventually(lambda: _closed_form(client), timeout=15)
    assert 'type="file"' not in form  # the page offers no upload once closed


async def _closed_form(client: httpx.AsyncClient) -> str | None:
    page = await client.get("/admin/import")
    return page.text if "Đợt khảo sát này đã đóng" in page.text else None


def token_of_csrf(client: httpx.AsyncClient, page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text[:500]
    return found.group(1)
