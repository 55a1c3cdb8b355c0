"""The campaign workbook pages on real NATS and PostgreSQL (docs/architecture.md, decision 38):
template → upload → preview → publish lands CampaignDefined on the log; a faulty workbook is a
page of problems by sheet, row and column and nothing reaches the log; clone; scopes; CSRF."""

from __future__ import annotations

import io
import re

import openpyxl
import pytest
from sqlalchemy import text

from contracts import subjects
from contracts.campaign import Campaign
from contracts.events import CampaignDefined, decode
from parindex.web.auth import Principal
from services.survey import campaign_drafts
from services.survey.storage.drafts import KEEP
from services.survey.workbook.export import build
from services.survey.workbook.read import read_workbook
from tests.survey.test_service import ADMIN, Survey, read_all, small_campaign, subject_count
from tests.survey.test_web import page_headers, token
from tests.waiting import eventually

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def upload(survey: Survey, p: Principal, content: bytes):
    return await survey.client.post(
        "/admin/campaigns/upload",
        headers=page_headers(survey, p),
        data={"csrf": token(survey, p)},
        files={"file": ("so-tay.xlsx", content, XLSX)},
    )


async def defined_on_log(nc, campaign_id: str) -> list[Campaign]:
    msgs = await read_all(nc.jetstream(), subjects.campaign(campaign_id))
    out = []
    for m in msgs:
        _, payload = decode(m.data)
        if isinstance(payload, CampaignDefined):
            out.append(payload.campaign)
    return out


async def test_upload_preview_publish_lands_campaign_defined(
    survey: Survey, nc, campaign_id: str
) -> None:
    admin = page_headers(survey, ADMIN)
    r = await survey.client.get("/admin/campaigns/template.xlsx", headers=admin)
    assert r.status_code == 200 and r.headers["content-type"] == XLSX
    assert "Đơn vị" in openpyxl.load_workbook(io.BytesIO(r.content)).sheetnames

    campaign = small_campaign(campaign_id)
    r = await upload(survey, ADMIN, build(campaign))
    assert r.status_code == 303, r.text
    preview_url = r.headers["location"]
    assert preview_url.startswith("/admin/campaigns/drafts/")
    assert await subject_count(nc.jetstream(), subjects.campaign(campaign_id)) == 0

    r = await survey.client.get(preview_url, headers=admin)
    assert r.status_code == 200
    html = r.text
    assert 'id="quota-total">10<' in html  # 5 form-wide + 3 + 2
    assert "06/10/2023 23:59" in html
    assert "Mỗi người chỉ trả lời một phiếu" in html
    assert "Huyện A" in html and "w1" in html
    assert 'data-stage="draft">Đang soạn thảo<' in html  # not on the log yet (decision 39)

    r = await survey.client.post(
        preview_url + "/publish", headers=admin, data={"csrf": token(survey, ADMIN)}
    )
    assert r.status_code == 200, r.text
    assert "Đã công bố đợt khảo sát" in r.text
    on_log = await defined_on_log(nc, campaign_id)
    assert len(on_log) == 1
    assert on_log[0].model_copy(update={"version": 1}) == campaign

    again = await survey.client.post(
        preview_url + "/publish", headers=admin, data={"csrf": token(survey, ADMIN)}
    )
    assert again.status_code == 409 and "đã được công bố" in again.text
    assert len(await defined_on_log(nc, campaign_id)) == 1

    async def stage_published() -> bool:  # the bar follows the log, not the draft
        page = await survey.client.get(preview_url, headers=admin)
        return 'data-stage="published"' in page.text

    await eventually(stage_published)

    # The published campaign exports to the same workbook content.
    async def listed() -> bool:
        page = await survey.client.get("/admin/campaigns", headers=admin)
        return campaign_id in page.text

    await eventually(listed)
    r = await survey.client.get(
        f"/admin/campaigns/workbook.xlsx?campaign={campaign_id}", headers=admin
    )
    assert r.status_code == 200
    exported, problems = read_workbook(r.content)
    assert problems == [] and exported == on_log[0]


async def test_a_faulty_workbook_is_a_page_of_located_problems(
    survey: Survey, nc, campaign_id: str
) -> None:
    wb = openpyxl.load_workbook(io.BytesIO(build(small_campaign(campaign_id))))
    wb["Chỉ tiêu"]["B3"].value = "H-Z"
    out = io.BytesIO()
    wb.save(out)
    r = await upload(survey, ADMIN, out.getvalue())
    assert r.status_code == 422
    row = re.search(r"<tr><td>Chỉ tiêu</td><td>3</td><td>Mã đơn vị</td><td>([^<]+)</td>", r.text)
    assert row, r.text
    assert row.group(1) == "«H-Z» không có trong trang «Đơn vị»."
    assert await subject_count(nc.jetstream(), subjects.campaign(campaign_id)) == 0

    en = await survey.client.post(
        "/admin/campaigns/upload?lang=en",
        headers=page_headers(survey, ADMIN),
        data={"csrf": token(survey, ADMIN)},
        files={"file": ("x.xlsx", b"not a workbook", XLSX)},
    )
    assert en.status_code == 422 and "not a valid .xlsx workbook" in en.text


async def test_clone_makes_a_draft_for_the_new_year(survey: Survey, nc, campaign_id: str) -> None:
    admin = page_headers(survey, ADMIN)
    r = await upload(survey, ADMIN, build(small_campaign(campaign_id)))
    assert r.status_code == 303 and "/drafts/" in r.headers["location"], (r, r.headers, r.text)
    r = await survey.client.post(
        r.headers["location"] + "/publish", headers=admin, data={"csrf": token(survey, ADMIN)}
    )
    assert r.status_code == 200, r.text

    async def on_the_projection() -> bool:
        # What clone reads: the campaign as survey's projection holds it. The campaigns page
        # lists the published draft at once, before the projection has applied the event.
        r = await survey.client.get(
            "/admin/campaigns/workbook.xlsx", params={"campaign": campaign_id}, headers=admin
        )
        return r.status_code == 200

    await eventually(on_the_projection)
    new_id = f"{campaign_id}-next"[:64]
    r = await survey.client.post(
        "/admin/campaigns/clone",
        headers=admin,
        data={
            "csrf": token(survey, ADMIN),
            "campaign": campaign_id,
            "new_id": new_id,
            "new_year": "2024",
        },
    )
    assert r.status_code == 303, r.text
    preview = await survey.client.get(r.headers["location"], headers=admin)
    assert "06/10/2024 23:59" in preview.text and new_id in preview.text
    r = await survey.client.get(r.headers["location"] + "/workbook.xlsx", headers=admin)
    draft, problems = read_workbook(r.content)
    assert problems == [] and draft is not None
    assert draft.id == new_id and draft.year == 2024
    assert await subject_count(nc.jetstream(), subjects.campaign(new_id)) == 0


async def test_scoped_admins_and_csrf(survey: Survey, nc, campaign_id: str) -> None:
    scoped = Principal(subject="scoped", role="admin", campaign_id="another-campaign")
    r = await upload(survey, scoped, build(small_campaign(campaign_id)))
    assert r.status_code == 403
    r = await survey.client.get(
        f"/admin/campaigns/workbook.xlsx?campaign={campaign_id}",
        headers=page_headers(survey, scoped),
    )
    assert r.status_code == 403
    r = await upload(survey, ADMIN, build(small_campaign(campaign_id)))
    draft_url = r.headers["location"]
    assert (
        await survey.client.get(draft_url, headers=page_headers(survey, scoped))
    ).status_code == 403
    no_token = await survey.client.post(draft_url + "/publish", headers=page_headers(survey, ADMIN))
    assert no_token.status_code == 403
    r = await survey.client.get("/admin/campaigns", headers=page_headers(survey, ADMIN))
    assert r.status_code == 200 and draft_url in r.text  # the unscoped admin sees the draft
    r = await survey.client.get("/admin/campaigns", headers=page_headers(survey, scoped))
    assert r.status_code == 200 and draft_url not in r.text  # the scoped one does not
    respondent = Principal(subject="r1", role="respondent", campaign_id=campaign_id)
    r = await survey.client.get("/admin/campaigns", headers=page_headers(survey, respondent))
    assert r.status_code == 403
    assert await subject_count(nc.jetstream(), subjects.campaign(campaign_id)) == 0


async def test_publishing_after_the_first_wave_is_refused(
    survey: Survey, nc, campaign_id: str
) -> None:
    from tests.survey.test_service import setup_open_campaign

    await setup_open_campaign(survey, nc, campaign_id, [("an", "H-A", "02")])
    before = await subject_count(nc.jetstream(), subjects.campaign(campaign_id))
    changed = small_campaign(campaign_id).model_copy(update={"name": "Đổi tên sau khi mở"})
    r = await upload(survey, ADMIN, build(changed))
    assert r.status_code == 303
    r = await survey.client.post(
        r.headers["location"] + "/publish",
        headers=page_headers(survey, ADMIN),
        data={"csrf": token(survey, ADMIN)},
    )
    assert r.status_code == 409
    assert "không sửa được nữa" in r.text
    assert await subject_count(nc.jetstream(), subjects.campaign(campaign_id)) == before


async def test_past_200_drafts_in_a_day_the_oldest_go_never_the_new_one(
    survey: Survey, campaign_id: str
) -> None:
    """Drafts hold the day only; pruning once broke the day's tie by random id and could
    delete a draft the moment it was uploaded (its preview then answered 404)."""
    campaign = small_campaign(campaign_id)
    made = [
        await campaign_drafts.keep(survey.rt.sessions, campaign, "workbook", "admin")
        for _ in range(KEEP + 5)
    ]
    for draft_id in made[-5:]:
        assert (await campaign_drafts.get(survey.rt.sessions, draft_id)).id == draft_id
    with pytest.raises(campaign_drafts.UnknownDraft):
        await campaign_drafts.get(survey.rt.sessions, made[0])
    async with survey.rt.sessions() as s:
        assert await s.scalar(text("SELECT count(*) FROM survey_campaign_drafts")) == KEEP
