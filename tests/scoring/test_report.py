"""The official report (issue #15 item 5, docs/architecture.md, decision 33).

The PDF is read back the way a person would see it: pages rendered to PNG with poppler's
pdftoppm, text extracted with pdftotext. Each unit's score must read exactly as the results
page shows it, next to the Quốc hiệu and the frozen digest; the DOCX (read with python-docx)
says the same. Before publication only staff get it, marked as a draft.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from docx import Document
from openpyxl import load_workbook
from PIL import Image
from sqlalchemy import text as sql

from contracts import subjects
from contracts.events import DeadlineReached, make
from parindex.bus.publish import publish_event
from parindex.settings import Settings
from parindex.web.auth import Principal
from parindex.web.service import create_app
from services.scoring.figures import all_unit_figures, number
from services.scoring.method import compute_results, digest, result_rows
from services.scoring.publication import Stage
from services.scoring.report.content import PENALTY_RULE, build_report
from services.scoring.report.docx import render_docx
from services.scoring.report.fonts import FontMissing, find_fonts
from services.scoring.report.pdf import render_pdf
from services.scoring.service import SERVICE
from tests.scoring.staff import client, csrf_of, serve_public_key
from tests.scoring.test_method import WORKED_BALLOTS, WORKED_DIGEST, tally_of, worked_campaign
from tests.scoring.test_service import publish_worked
from tests.waiting import eventually

NATION = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
MOTTO = "Độc lập - Tự do - Hạnh phúc"
DRAFT = "DỰ THẢO – chưa công bố"


def _fonts_ok() -> bool:
    try:
        find_fonts()
    except FontMissing:
        return False
    return True


needs_poppler = pytest.mark.skipif(
    shutil.which("pdftoppm") is None or shutil.which("pdftotext") is None or not _fonts_ok(),
    reason="poppler-utils (pdftoppm, pdftotext) or fonts-dejavu-core not installed; "
    ".ci/run installs them with apt-get",
)


def pdf_text(pdf: bytes, tmp: Path) -> str:
    """Every page rendered to PNG (each must show ink), then the text poppler reads back."""
    path = tmp / "report.pdf"
    path.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(path), str(tmp / "page")], check=True)
    pages = sorted(tmp.glob("page*.png"))
    assert pages, "pdftoppm rendered no page"
    for png in pages:
        with Image.open(png) as img:
            lo, _hi = img.convert("L").getextrema()
            assert lo < 128, f"{png.name} is blank"
    out = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True
    )
    return out.stdout


def docx_text(body: bytes) -> str:
    doc = Document(io.BytesIO(body))
    parts = [p.text for p in doc.paragraphs]
    for table in doc.tables:
        for row in table.rows:
            parts.extend(c.text for c in row.cells)
    parts.extend(p.text for s in doc.sections for p in s.header.paragraphs)
    return "\n".join(parts)


def _worked():
    camp = worked_campaign()
    res = compute_results(camp, tally_of(camp, WORKED_BALLOTS))
    return camp, res


@pytest.mark.unit
@needs_poppler
def test_pdf_and_docx_carry_every_score_the_header_and_the_digest(tmp_path: Path) -> None:
    camp, res = _worked()
    stage = Stage("frozen", digest(result_rows(res)), 7)
    assert stage.digest == WORKED_DIGEST
    report = build_report(camp, res, stage, date(2023, 10, 20))
    fonts = find_fonts()
    text = pdf_text(render_pdf(report, fonts), tmp_path)
    words = docx_text(render_docx(report, fonts))
    flat = " ".join(text.split())
    for shown in (flat, words):
        assert NATION in shown and MOTTO in shown and DRAFT in shown
        assert "UBND TỈNH SÓC TRĂNG" in shown and "SỞ NỘI VỤ" in shown
        assert "/BC-SNV" in shown and "Sóc Trăng, ngày 20 tháng 10 năm 2023" in shown
        assert WORKED_DIGEST in shown
        assert " ".join(PENALTY_RULE.split()) in " ".join(shown.split())
        for u in all_unit_figures(camp, res):  # exactly as the dashboard prints it
            assert number(u.total, 2) in shown, u.unit_code
        assert "−0,80" in shown and "2,41" in shown and "2,77" in shown
        assert "−0,00" not in shown and "-0,00" not in shown


@pytest.mark.unit
@needs_poppler
def test_released_report_has_no_draft_mark_and_is_dated_on_publication(tmp_path: Path) -> None:
    camp, res = _worked()
    camp = camp.model_copy(
        update={
            "report": camp.report.model_copy(
                update={"signer_title": "KT. GIÁM ĐỐC", "signer_subtitle": "PHÓ GIÁM ĐỐC",
                        "signer_name": "Huỳnh Văn Nam", "number_suffix": "BC-SNV-CCHC"}
            )
        }
    )  # fmt: skip
    stage = Stage("released", WORKED_DIGEST, 7, "admin", date(2023, 10, 25))
    report = build_report(camp, res, stage, date(2024, 1, 1))
    fonts = find_fonts()
    text = " ".join(pdf_text(render_pdf(report, fonts), tmp_path).split())
    words = docx_text(render_docx(report, fonts))
    for shown in (text, words):
        assert "DỰ THẢO" not in shown and "ngày 25 tháng 10 năm 2023" in shown
        assert "KT. GIÁM ĐỐC" in shown and "Huỳnh Văn Nam" in shown and "/BC-SNV-CCHC" in shown
        assert "25/10/2023" in shown
    en = build_report(camp, res, stage, date(2024, 1, 1), "en")
    assert en.nation == "SOCIALIST REPUBLIC OF VIET NAM" and not en.draft


@pytest.mark.unit
def test_a_live_campaign_has_no_report() -> None:
    camp, res = _worked()
    with pytest.raises(ValueError):
        build_report(camp, res, Stage("live"), date(2023, 10, 1))


ADMIN = Principal("admin-user", "admin", name="Quản trị")
AUDITOR = Principal("auditor-user", "auditor")
FOCAL = Principal("focal-s02", "focal_point", unit_code="S02")


@needs_poppler
async def test_report_over_http_staff_draft_then_public(
    nc, nats_url, pg_url, campaign_id, tmp_path
) -> None:
    js = nc.jetstream()
    cid = campaign_id
    key = await serve_public_key(nc)
    await publish_worked(js, cid)
    settings = Settings(nats_url=nats_url, database_url=pg_url, state_dir=tmp_path)
    app = create_app(SERVICE, settings)
    async with app.router.lifespan_context(app):
        anon, focal = client(app, None, None), client(app, key, FOCAL)
        admin, auditor = client(app, key, ADMIN), client(app, key, AUDITOR)
        files = ("/export/report.pdf", "/export/report.docx")

        async def counted() -> bool:
            r = await admin.get("/api/results", params={"campaign": cid})
            return r.status_code == 200 and sum(
                c["received"] for c in r.json()["counts"] if c["form_code"] is None
            ) == len(WORKED_BALLOTS)

        await eventually(counted, timeout=30)
        for http in (anon, focal, admin, auditor):  # while live: nobody, admins included
            for path in files:
                assert (await http.get(path, params={"campaign": cid})).status_code == 404

        await publish_event(
            js,
            subjects.deadline(cid),
            make(DeadlineReached(deadline=datetime.now(UTC)), campaign_id=cid, producer="survey"),
            expected_last_subject_seq=0,
        )

        async def frozen() -> dict | None:
            body = (await admin.get("/api/results", params={"campaign": cid})).json()
            return body if body["status"] == "frozen" else None

        api = await eventually(frozen, timeout=30)
        assert api["digest"] == WORKED_DIGEST
        totals = [r for r in api["rows"] if r["form_code"] is None]
        scores = {r["unit_code"]: number(Decimal(r["adjusted"]), 2) for r in totals}
        assert scores == {"S01": "2,77", "S02": "2,41"}
        # Frozen, not published: the public and focal points are refused; staff get a draft.
        for http in (anon, focal):
            for path in files:
                assert (await http.get(path, params={"campaign": cid})).status_code == 404
            page = await http.get("/report", params={"campaign": cid, "lang": "vi"})
            assert WORKED_DIGEST not in page.text and "2,41" not in page.text
        for http in (admin, auditor):
            pdf = await http.get("/export/report.pdf", params={"campaign": cid})
            assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
            assert "du-thao" in pdf.headers["content-disposition"]
        pdf = await admin.get("/export/report.pdf", params={"campaign": cid})
        draft_dir = tmp_path / "draft"
        draft_dir.mkdir()
        text = " ".join(pdf_text(pdf.content, draft_dir).split())
        assert NATION in text and DRAFT in text and WORKED_DIGEST in text
        page = await admin.get("/dashboard", params={"campaign": cid, "lang": "vi"})
        for unit, shown in scores.items():
            assert shown in text and shown in page.text, unit
        docx = await auditor.get("/export/report.docx", params={"campaign": cid})
        words = docx_text(docx.content)
        assert NATION in words and DRAFT in words and WORKED_DIGEST in words
        assert all(shown in words for shown in scores.values())
        html = await admin.get("/report", params={"campaign": cid, "lang": "vi"})
        assert html.status_code == 200 and NATION in html.text and DRAFT in html.text
        assert 'src="data:image/png;base64,' in html.text and "/export/report.pdf" in html.text
        assert "/export/report.docx" in page.text  # "Bản in" leads to the documents

        # Exports: Vietnamese headers, numeric score cells; English on the switch.
        xlsx = await admin.get("/export/results.xlsx", params={"campaign": cid, "lang": "vi"})
        ws = load_workbook(io.BytesIO(xlsx.content))["Kết quả"]
        head = [c.value for c in ws[1]]
        assert head[:3] == ["Mã đơn vị", "Tên đơn vị", "Loại đơn vị"] and "Hạng" in head
        total = next(
            r for r in ws.iter_rows(min_row=2) if (r[0].value, r[3].value) == ("S02", "Tổng cộng")
        )
        assert total[8].data_type == "n" and total[8].value == 2.41
        assert total[4].data_type == "n" and total[9].value == 2
        en = await admin.get("/export/results.csv", params={"campaign": cid, "lang": "en"})
        assert en.content.decode("utf-8-sig").startswith("Unit code,Unit name,Unit kind,Form")

        # Published: everybody gets the report, without the draft mark.
        ok = await admin.post(
            "/publish", data={"campaign": cid, "digest": WORKED_DIGEST, "csrf": csrf_of(admin)}
        )
        assert ok.status_code == 303, ok.text

        async def released() -> bool:
            r = await anon.get("/export/report.pdf", params={"campaign": cid})
            return r.status_code == 200

        await eventually(released, timeout=30)
        public = await anon.get("/export/report.pdf", params={"campaign": cid})
        pub_dir = tmp_path / "public"
        pub_dir.mkdir()
        text = " ".join(pdf_text(public.content, pub_dir).split())
        assert "DỰ THẢO" not in text and WORKED_DIGEST in text
        assert all(shown in text for shown in scores.values())
        docx = await focal.get("/export/report.docx", params={"campaign": cid})
        words = docx_text(docx.content)
        assert "DỰ THẢO" not in words and all(shown in words for shown in scores.values())

        # A hostile operator edits a count in the projection after publication: the figures no
        # longer give the frozen digest, so the report is refused rather than printed.
        async with app.state.rt.sessions() as session:
            await session.execute(
                sql(
                    "UPDATE scoring_ballot_counts SET received = received + 1 "
                    "WHERE campaign_id = :c AND unit_code = 'S02'"
                ),
                {"c": cid},
            )
            await session.commit()
        for path in (*files, "/report"):
            refused = await admin.get(path, params={"campaign": cid, "lang": "vi"})
            assert refused.status_code == 409 and "parindex audit" in refused.text, path
            assert "2,41" not in refused.text
        for http in (anon, focal, admin, auditor):
            await http.aclose()
