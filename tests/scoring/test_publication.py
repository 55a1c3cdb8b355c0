"""No score before the deadline, publication by a person (issue #13, docs/architecture.md 16).

The differential attack: a tester who watches who votes and polls the per-question scores
recovers each ballot from the change it causes. Here ballots of known units arrive one by one
while every scoring page, JSON API and export is polled as an anonymous reader, a focal point
and an admin: nothing but received counts may change, and no score is ever shown.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, date, datetime, timedelta

import nats
from openpyxl import load_workbook

from contracts import subjects
from contracts.events import CampaignDefined, DeadlineReached, ResultsReleased, decode, make
from contracts.lifecycle import Stage
from parindex.bus.publish import publish_event
from parindex.settings import Settings
from parindex.web.auth import Principal
from parindex.web.i18n import VN
from parindex.web.service import create_app
from services.scoring.audit import audit
from services.scoring.figures import COUNT_HEAD, headers
from services.scoring.service import SERVICE
from tests.scoring.staff import client, csrf_of, serve_public_key
from tests.scoring.test_method import WORKED_BALLOTS, WORKED_DIGEST, worked_campaign
from tests.waiting import eventually

ADMIN = Principal("admin-user", "admin", name="Quản trị")
AUDITOR = Principal("auditor-user", "auditor")
FOCAL = Principal("focal-s02", "focal_point", unit_code="S02")
SCORE_WORDS = (
    "Trừ điểm", "Trừ do thiếu phiếu", ">Hạng<", "Điểm thô", "Điểm sau điều chỉnh",
    "Điểm khảo sát", "Mã kiểm tra", "Penalty", ">Rank<", "Raw score", "Adjusted", "Digest",
    "Công bố ngày", "Published on",
)  # fmt: skip


def _endpoints(cid: str) -> list[tuple[str, dict]]:
    pages = ["/dashboard", "/report", "/dashboard/units/S01", "/dashboard/units/S02"]
    out = [(p, {"campaign": cid, "lang": lang}) for p in pages for lang in ("vi", "en")]
    out += [
        ("/api/results", {"campaign": cid}),
        (f"/api/results/{cid}/units/S01", {}),
        (f"/api/results/{cid}/units/S02", {}),
        ("/export/results.csv", {"campaign": cid}),
        ("/export/questions.csv", {"campaign": cid}),
        ("/export/results.xlsx", {"campaign": cid}),
    ]
    return out


def _blank_received(obj: object) -> object:
    if isinstance(obj, dict):
        return {k: None if k == "received" else _blank_received(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_blank_received(x) for x in obj]
    return obj


def _hidden_snapshot(path: str, resp) -> object:
    """What the reader saw, with received counts blanked; asserts no score is in it."""
    if path.endswith("questions.csv"):
        assert resp.status_code == 404, resp.text[:200]
        return resp.status_code
    assert resp.status_code == 200, (path, resp.status_code, resp.text[:300])
    if path.startswith("/api/results/"):
        body = resp.json()
        assert body["visible"] is False and set(body) == {
            "unit_code", "kind", "status", "visible", "forms",
        }  # fmt: skip
        for f in body["forms"]:
            assert set(f) == {"form_code", "received", "quota"}
        return _blank_received(body)
    if path == "/api/results":
        body = resp.json()
        assert body["rows"] == [] and body["digest"] is None and body["published"] is None
        assert body["visible"] is False
        return _blank_received(body)
    if path.endswith(".csv"):
        rows = list(csv.reader(io.StringIO(resp.content.decode("utf-8-sig"))))
        assert rows[0] in COUNT_HEADERS
        return [r[:4] + r[5:] for r in rows]
    if path.endswith(".xlsx"):
        book = load_workbook(io.BytesIO(resp.content))
        assert book.sheetnames in (["Số phiếu"], ["Ballots"])  # the polling may choose English
        rows = [list(r) for r in book.worksheets[0].iter_rows(values_only=True)]
        assert rows[0] in COUNT_HEADERS
        return [r[:4] + r[5:] for r in rows]
    html = resp.text
    for word in SCORE_WORDS:
        assert word not in html, (path, word)
    main = re.split(r"<main[^>]*>", html, maxsplit=1)[1]  # the stylesheet has decimals too
    visible = re.sub(r'(style|aria-label)="[^"]*"', "", main)
    assert not re.search(r"\d+[.,]\d+", re.sub(r"<[^>]*>", " ", visible)), (path, visible)
    # Counts (and the bars and shortfalls they drive) may change; nothing else.
    masked = re.sub(r'(style|aria-label|class)="[^"]*"', "", html)
    masked = re.sub(r"\((thiếu|missing) \d+\)", "", masked)
    return re.sub(r"\s+", " ", re.sub(r"\d+", "#", masked))


COUNT_HEADERS = (headers(COUNT_HEAD, "vi"), headers(COUNT_HEAD, "en"))


async def _release_events(js, cid: str) -> list:
    info = await js.stream_info(subjects.EVENTS_STREAM, subjects_filter=subjects.release(cid))
    count = (info.state.subjects or {}).get(subjects.release(cid), 0)
    if not count:
        return []
    msg = await js.get_last_msg(subjects.EVENTS_STREAM, subjects.release(cid))
    return [decode(msg.data)] * count


async def test_no_score_before_publication_and_publication_by_an_admin(
    nc, nats_url, pg_url, campaign_id, tmp_path
) -> None:
    js = nc.jetstream()
    cid = campaign_id
    key = await serve_public_key(nc)
    camp = worked_campaign().model_copy(update={"id": cid})
    await publish_event(
        js,
        subjects.campaign(cid),
        make(CampaignDefined(campaign=camp), campaign_id=cid, producer="t"),
    )
    settings = Settings(nats_url=nats_url, database_url=pg_url, state_dir=tmp_path)
    app = create_app(SERVICE, settings)
    async with app.router.lifespan_context(app):
        # The staff bar shows the campaign's stage once the service's watch has read it
        # (decision 39); the snapshots below compare pages, so they start after that.
        await eventually(lambda: app.state.campaign_watch.stage(cid) != Stage.DRAFT, timeout=30)
        anon, focal, admin = (
            client(app, None, None),
            client(app, key, FOCAL),
            client(app, key, ADMIN),
        )
        auditor = client(app, key, AUDITOR)
        readers = {"anonymous": anon, "focal": focal, "admin": admin}
        previous: dict[tuple[str, str, str], object] = {}
        for n, b in enumerate(WORKED_BALLOTS, start=1):
            await publish_event(
                js, subjects.ballot(cid, b.ballot_id), make(b, campaign_id=cid, producer="survey")
            )

            async def counted(n: int = n) -> bool:
                resp = await anon.get("/api/results", params={"campaign": cid})
                if resp.status_code == 404:  # the campaign is not projected yet
                    return False
                body = resp.json()
                return sum(c["received"] for c in body["counts"] if c["form_code"] is None) == n

            await eventually(counted, timeout=30)
            for who, http in readers.items():
                for path, params in _endpoints(cid):
                    snap = _hidden_snapshot(path, await http.get(path, params=params))
                    k = (who, path, json.dumps(params, sort_keys=True))
                    if k in previous:
                        assert snap == previous[k], f"{path} as {who} changed with ballot {n}"
                    previous[k] = snap
        for http in readers.values():
            http.cookies.delete("parindex_lang")  # the polling left English chosen
        api = (await anon.get("/api/results", params={"campaign": cid})).json()
        s02 = next(c for c in api["counts"] if c["unit_code"] == "S02" and c["form_code"] is None)
        assert (s02["received"], s02["quota"], api["status"]) == (3, 4, "live")

        # An admin cannot publish live results.
        live = await admin.post(
            "/publish", data={"campaign": cid, "digest": "x", "csrf": csrf_of(admin)}
        )
        assert live.status_code == 409 and "hạn chót" in live.text

        # The deadline freezes the results: staff see them marked not published.
        await publish_event(
            js,
            subjects.deadline(cid),
            make(DeadlineReached(deadline=datetime.now(UTC)), campaign_id=cid, producer="survey"),
            expected_last_subject_seq=0,
        )

        async def frozen() -> dict | None:
            body = (await admin.get("/api/results", params={"campaign": cid})).json()
            return body if body["status"] == "frozen" else None

        staff_api = await eventually(frozen, timeout=30)
        assert staff_api["digest"] == WORKED_DIGEST and staff_api["rows"]
        for http in (admin, auditor):
            page = await http.get("/dashboard", params={"campaign": cid, "lang": "vi"})
            assert "Kết quả chưa công bố" in page.text and WORKED_DIGEST in page.text
            assert "−0,80" in page.text and "2,41" in page.text
        assert (
            'action="/publish"'
            in (await admin.get("/dashboard", params={"campaign": cid, "lang": "vi"})).text
        )
        assert (
            'action="/publish"'
            not in (await auditor.get("/dashboard", params={"campaign": cid, "lang": "vi"})).text
        )
        for who, http in (("anonymous", anon), ("focal", focal)):
            for path, params in _endpoints(cid):
                _hidden_snapshot(path, await http.get(path, params=params))
            body = (await http.get("/api/results", params={"campaign": cid})).json()
            assert body["status"] == "frozen" and body["final"], who

        # Refusals: wrong digest, no CSRF token, not an admin, anonymous.
        bad = await admin.post(
            "/publish", data={"campaign": cid, "digest": "0" * 64, "csrf": csrf_of(admin)}
        )
        assert bad.status_code == 409 and "không khớp" in bad.text
        no_csrf = await admin.post("/publish", data={"campaign": cid, "digest": WORKED_DIGEST})
        assert no_csrf.status_code == 403
        for http, status in ((focal, 403), (auditor, 403), (anon, 303)):
            r = await http.post(
                "/publish", data={"campaign": cid, "digest": WORKED_DIGEST, "csrf": csrf_of(http)}
            )
            assert r.status_code == status
            if status == 303:  # an anonymous form post is sent to the login page (decision 25)
                assert r.headers["location"].startswith("/login")
        assert await _release_events(js, cid) == []

        # The admin publishes: ResultsReleased on the log, then everybody sees the results.
        ok = await admin.post(
            "/publish", data={"campaign": cid, "digest": WORKED_DIGEST, "csrf": csrf_of(admin)}
        )
        assert ok.status_code == 303, ok.text
        ((env, released),) = await _release_events(js, cid)
        assert isinstance(released, ResultsReleased) and env.producer == "scoring"
        assert released.digest == WORKED_DIGEST and released.released_by == "admin-user"
        today = datetime.now(VN).date()
        assert released.released_on in (today, today - timedelta(days=1))

        async def public() -> dict | None:
            body = (await anon.get("/api/results", params={"campaign": cid})).json()
            return body if body["status"] == "released" else None

        body = await eventually(public, timeout=30)
        assert body["digest"] == WORKED_DIGEST and body["visible"] and body["rows"]
        assert body["released"]["released_by"] is None  # the publisher's name is for staff
        assert date.fromisoformat(body["released"]["released_on"]) == released.released_on
        for http in (anon, focal):
            page = await http.get("/dashboard", params={"campaign": cid, "lang": "vi"})
            assert "Công bố ngày " + released.released_on.strftime("%d/%m/%Y") in page.text
            assert "−0,80" in page.text and "chưa công bố" not in page.text.lower()
            unit = await http.get("/dashboard/units/S02", params={"campaign": cid, "lang": "vi"})
            assert "2,41" in unit.text and "(thiếu 1)" in unit.text
            breakdown = (await http.get(f"/api/results/{cid}/units/S02")).json()
            assert breakdown["visible"] and breakdown["total_rounded"] == "2.41"
            for q in (q for f in breakdown["forms"] for c in f["criteria"] for q in c["questions"]):
                assert q["suppressed"] and q["score_rounded"] is None  # 3 answers < 10
        xlsx = await anon.get("/export/results.xlsx", params={"campaign": cid})
        ws = load_workbook(io.BytesIO(xlsx.content))["Kết quả"]
        total = next(
            r for r in ws.iter_rows(min_row=2) if r[0].value == "S02" and r[3].value == "Tổng cộng"
        )
        assert (
            total[8].data_type == "n"
            and total[8].value == 2.41
            and total[8].number_format == "0.00"
        )

        # Publishing twice is refused, and the log still holds one publication.
        again = await admin.post(
            "/publish", data={"campaign": cid, "digest": WORKED_DIGEST, "csrf": csrf_of(admin)}
        )
        assert again.status_code == 409
        assert len(await _release_events(js, cid)) == 1
        for http in (anon, focal, admin, auditor):
            await http.aclose()
    try:
        msg = await js.get_last_msg(subjects.EVENTS_STREAM, subjects.results(cid))
    except nats.js.errors.NotFoundError:
        raise AssertionError("ResultsPublished (the frozen results) is missing") from None
    assert decode(msg.data)[1].digest == WORKED_DIGEST
    report = await audit(nc, settings, cid)
    assert report.ok and report.released_digest == WORKED_DIGEST, report.render()
    assert "released digest" in report.render()
