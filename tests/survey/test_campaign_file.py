"""The shipped Sóc Trăng 2023 campaign matches the plan's appendix; broken files say where."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts.campaign import Campaign, UnitKind
from services.survey.campaign_file import (
    CampaignFileError,
    load_campaign_file,
    load_shipped,
    parse_campaign,
    shipped_campaign_path,
)

pytestmark = pytest.mark.unit

ICT = timezone(timedelta(hours=7))

# The appendix "Bảng phân bố số mẫu điều tra xã hội học", transcribed row by row from the seed
# document (not from the YAML): unit name | form | ballots | send date (dd/mm, 2023).
APPENDIX = """
Huyện Châu Thành                            | 02 | 25 | 21/9
Huyện Cù Lao Dung                           | 02 | 29 | 21/9
Huyện Kế Sách                               | 02 | 31 | 21/9
Huyện Long Phú                              | 02 | 24 | 21/9
Huyện Mỹ Tú                                 | 02 | 28 | 21/9
Huyện Mỹ Xuyên                              | 02 | 28 | 21/9
Huyện Thạnh Trị                             | 02 | 28 | 21/9
Huyện Trần Đề                               | 02 | 27 | 21/9
Thành phố Sóc Trăng                         | 02 | 28 | 21/9
Thị xã Ngã Năm                              | 02 | 29 | 21/9
Thị xã Vĩnh Châu                            | 02 | 30 | 21/9
Ban Quản lý Dự án 1                         | 04 | 24 | 22/9
Ban Quản lý Dự án 2                         | 04 | 22 | 22/9
Trường Cao đẳng Cộng đồng Sóc Trăng         | 04 | 63 | 22/9
Trường Cao đẳng Nghề Sóc Trăng              | 04 | 40 | 22/9
Ban Dân tộc                                 | 03 | 11 | 25/9
Ban Quản lý các khu công nghiệp             | 03 | 13 | 25/9
Sở Công Thương                              | 03 | 30 | 25/9
Sở Giáo dục và Đào tạo                      | 03 | 29 | 25/9
Sở Giao thông vận tải                       | 03 | 20 | 25/9
Sở Kế hoạch và Đầu tư                       | 03 | 20 | 25/9
Sở Khoa học và Công nghệ                    | 03 | 20 | 25/9
Sở Lao động, Thương binh và Xã hội          | 03 | 47 | 25/9
Sở Nội vụ                                   | 03 | 31 | 25/9
Sở Nông nghiệp và Phát triển nông thôn      | 03 | 73 | 25/9
Sở Tài chính                                | 03 | 22 | 25/9
Sở Tài nguyên và Môi trường                 | 03 | 47 | 25/9
Sở Tư pháp                                  | 03 | 26 | 25/9
Sở Thông tin và Truyền thông                | 03 | 18 | 26/9
Sở Văn hóa, Thể thao và Du lịch             | 03 | 51 | 26/9
Sở Xây dựng                                 | 03 | 32 | 26/9
Sở Y tế                                     | 03 | 18 | 26/9
Thanh tra tỉnh                              | 03 | 16 | 26/9
Văn phòng Ủy ban nhân dân tỉnh              | 03 | 39 | 26/9
Bảo hiểm xã hội                             | 05 | 78 | 27/9
Công an tỉnh                                | 05 | 65 | 27/9
Cục Thuế                                    | 05 | 34 | 27/9
Chi cục Hải quan                            | 05 | 12 | 27/9
Ngân hàng Nhà nước chi nhánh tỉnh Sóc Trăng | 05 | 16 | 27/9
Kho bạc Nhà nước                            | 05 | 20 | 27/9
Huyện Châu Thành                            | 06 | 67 | 28/9
Huyện Cù Lao Dung                           | 06 | 69 | 28/9
Huyện Kế Sách                               | 06 | 80 | 28/9
Huyện Long Phú                              | 06 | 71 | 28/9
Huyện Mỹ Tú                                 | 06 | 72 | 29/9
Huyện Mỹ Xuyên                              | 06 | 73 | 29/9
Huyện Thạnh Trị                             | 06 | 77 | 29/9
Huyện Trần Đề                               | 06 | 73 | 29/9
Thành phố Sóc Trăng                         | 06 | 71 | 02/10
Thị xã Ngã Năm                              | 06 | 64 | 02/10
Thị xã Vĩnh Châu                            | 06 | 73 | 02/10
"""
# Section I of the appendix: provincial delegates, form 01, 51 ballots, sent 21/9.
FORM_01_BALLOTS = 51
# Subtotals printed in the appendix, and its grand total.
SUBTOTALS = {"01": 51, "02": 307, "04": 149, "03": 563, "05": 225, "06": 790}
TOTAL = 2085


def _appendix() -> list[tuple[str, str, int, date]]:
    rows = []
    for line in APPENDIX.strip().splitlines():
        name, form, ballots, when = (cell.strip() for cell in line.split("|"))
        day, month = (int(x) for x in when.split("/"))
        rows.append((name, form, int(ballots), date(2023, month, day)))
    return rows


@pytest.fixture(scope="module")
def campaign() -> Campaign:
    return load_shipped()


# The shipped campaign ------------------------------------------------------------------------


def test_shipped_loads(campaign: Campaign) -> None:
    assert shipped_campaign_path().name == "soctrang-2023.yaml"
    assert campaign.id == "soctrang-2023"
    assert campaign.timezone == "Asia/Ho_Chi_Minh"
    assert campaign.year == 2023
    assert campaign.deadline == datetime(2023, 10, 6, 23, 59, 59, tzinfo=ICT)
    assert campaign.form_priority == ["01", "02", "03", "04", "05", "06"]
    assert campaign.dedupe_rule == "single_by_priority"
    assert campaign.reminder_offsets_days == [3, 1]
    assert campaign.min_report_size == 10
    assert (campaign.rounding.places, campaign.rounding.mode) == (2, "ROUND_HALF_UP")


def test_quotas_total_2085(campaign: Campaign) -> None:
    assert campaign.total_quota() == TOTAL == sum(SUBTOTALS.values())
    by_form = Counter()
    for q in campaign.quotas:
        by_form[q.form_code] += q.ballots
    assert dict(by_form) == SUBTOTALS


def test_quotas_match_appendix_per_unit(campaign: Campaign) -> None:
    by_name = {u.name: u.code for u in campaign.units}
    expected = {(by_name[name], form): n for name, form, n, _ in _appendix()}
    shipped = {(q.unit_code, q.form_code): q.ballots for q in campaign.quotas if q.unit_code}
    assert shipped == expected
    assert sum(expected.values()) + FORM_01_BALLOTS == TOTAL
    form_wide = [q for q in campaign.quotas if q.unit_code is None]
    assert [(q.form_code, q.ballots) for q in form_wide] == [("01", FORM_01_BALLOTS)]
    for code in campaign.form("01").rated_units:
        assert campaign.quota("01", code) == FORM_01_BALLOTS


def test_units(campaign: Campaign) -> None:
    assert len(campaign.units) == 40
    kinds = Counter(u.kind for u in campaign.units)
    assert kinds == {
        UnitKind.district: 11,
        UnitKind.public_service_unit: 4,
        UnitKind.department: 19,
        UnitKind.central_agency: 6,
    }
    assert {u.name for u in campaign.units} == {name for name, *_ in _appendix()}
    assert all(u.name_en for u in campaign.units)
    assert all(u.code.isascii() for u in campaign.units)


def test_forms(campaign: Campaign) -> None:
    codes = [f.code for f in campaign.forms]
    assert codes == ["01", "02", "03", "04", "05", "06"]
    for f in campaign.forms:
        assert f.name.startswith(f"Phiếu số {f.code}/CCHC23-")
        for c in f.criteria:
            assert sum(q.max_points for q in c.questions) == c.max_points
            for q in c.questions:
                assert any(o.weight is None for o in q.options), "each question offers Không biết"
                assert q.text_en
    groups = {f.code: (f.group, f.rates, list(f.respondent_unit_kinds)) for f in campaign.forms}
    assert groups == {
        "01": ("provincial_delegate", "many_units", []),
        "02": ("district_delegate", "own_unit", [UnitKind.district]),
        "03": ("department_staff", "own_unit", [UnitKind.department]),
        "04": ("psu_staff", "own_unit", [UnitKind.public_service_unit]),
        "05": ("central_staff", "own_unit", [UnitKind.central_agency]),
        "06": ("district_staff", "own_unit", [UnitKind.district]),
    }
    rated = {campaign.unit(u).kind for u in campaign.form("01").rated_units}
    assert rated == {UnitKind.department, UnitKind.district}
    assert len(campaign.form("01").rated_units) == 30
    assert 4 <= len(campaign.form("01").criteria) <= 5
    for f in campaign.forms[1:]:
        assert len(f.criteria) == 8
        assert all(2 <= len(c.questions) <= 3 for c in f.criteria)
        assert Decimal(10) <= f.max_points <= Decimal(20)


def test_waves_match_appendix(campaign: Campaign) -> None:
    by_name = {u.name: u.code for u in campaign.units}
    rows = [("", "01", 0, date(2023, 9, 21))] + _appendix()  # form 01 has no unit row
    for name, form, _, day in rows:
        wave = campaign.wave_for(form, by_name.get(name))
        assert wave is not None, (name, form)
        assert wave.opens_at == datetime.combine(day, time(7), tzinfo=ICT), (name, form)
    assert [w.id for w in campaign.waves] == [
        "w1-0921",
        "w2-0922",
        "w3-0925",
        "w4-0926",
        "w5-0927",
        "w6-0928",
        "w7-0929",
        "w8-1002",
    ]
    for w in campaign.waves:
        assert w.id.endswith(w.opens_at.strftime("%m%d"))
        assert w.opens_at < campaign.deadline


def test_each_unit_form_pair_in_exactly_one_wave(campaign: Campaign) -> None:
    for name, form, _, _ in _appendix():
        code = next(u.code for u in campaign.units if u.name == name)
        hits = [
            w.id
            for w in campaign.waves
            for m in w.members
            if m.form_code == form and (m.unit_codes is None or code in m.unit_codes)
        ]
        assert len(hits) == 1, (name, form, hits)


# Files in general ----------------------------------------------------------------------------


def _shipped_data() -> dict[str, Any]:
    """The shipped file as plain data, with YAML anchors unshared so edits stay local."""
    return json.loads(json.dumps(yaml.safe_load(shipped_campaign_path().read_text("utf-8"))))


def test_json_roundtrip(tmp_path: Path, campaign: Campaign) -> None:
    path = tmp_path / "c.json"
    path.write_text(campaign.model_dump_json(), encoding="utf-8")
    assert load_campaign_file(path) == campaign


def test_json_plain_numbers(tmp_path: Path) -> None:
    data = _shipped_data()
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data, default=str, ensure_ascii=False), encoding="utf-8")
    c = load_campaign_file(path)
    assert c.total_quota() == TOTAL
    assert c.form("01").criteria[1].max_points == Decimal("2.5")


def test_yml_extension_and_parse_campaign(tmp_path: Path) -> None:
    text = shipped_campaign_path().read_text(encoding="utf-8")
    path = tmp_path / "c.yml"
    path.write_text(text, encoding="utf-8")
    assert load_campaign_file(path).id == "soctrang-2023"
    data = {k: v for k, v in _shipped_data().items() if not k.startswith("x-")}
    assert parse_campaign(data).total_quota() == TOTAL


def _broken() -> dict[str, Any]:
    data = _shipped_data()
    data["forms"][2]["criteria"][0]["questions"][1]["max_points"] = 1  # 1 + 1 + 0.5 != 2
    del data["forms"][1]["name"]  # missing field
    data["quotas"][3]["unit_code"] = "H-NOWHERE"  # unknown unit
    data["waves"][2]["members"][0]["unit_codes"][0] = "S-NOWHERE"
    data["units"][0]["kind"] = "village"
    data["deadline"] = "2023-10-06T23:59:59"  # no UTC offset
    return data


def test_broken_data_reports_every_error_with_its_path() -> None:
    with pytest.raises(CampaignFileError) as info:
        parse_campaign(_broken())
    errors = dict(info.value.errors)
    assert set(errors) == {
        "forms[2].criteria[0]",
        "forms[1].name",
        "quotas[3].unit_code",
        "waves[2].members[0].unit_codes[0]",
        "units[0].kind",
        "deadline",
    }
    assert "sum to 2.5, not 2" in errors["forms[2].criteria[0]"]
    assert errors["forms[1].name"] == "Field required"
    assert errors["quotas[3].unit_code"] == "quota names unknown unit H-NOWHERE"
    assert "S-NOWHERE" in errors["waves[2].members[0].unit_codes[0]"]
    assert "UTC offset" in errors["deadline"]
    assert "forms[2].criteria[0]" in str(info.value)


def test_broken_question_field_path() -> None:
    data = _shipped_data()
    data["forms"][2]["criteria"][0]["questions"][1]["max_points"] = -1
    data["forms"][3]["criteria"][1]["questions"][0]["options"][4]["weight"] = 2
    data["forms"][0]["extra"] = True
    with pytest.raises(CampaignFileError) as info:
        parse_campaign(data)
    assert info.value.paths == [
        "forms[0].extra",
        "forms[2].criteria[0].questions[1].max_points",
        "forms[3].criteria[1].questions[0].options[4].weight",
    ]
    assert dict(info.value.errors)["forms[0].extra"] == "Extra inputs are not permitted"


def test_broken_yaml_file_reports_paths_and_lines(tmp_path: Path) -> None:
    text = shipped_campaign_path().read_text(encoding="utf-8")
    text = text.replace(
        '{form_code: "02", unit_code: H-KESACH, ballots: 31}',
        '{form_code: "02", unit_code: H-NOWHERE, ballots: 31}',
    ).replace('{form_code: "05", unit_code: CAT, ballots: 65}', '{form_code: "05", unit_code: CAT}')
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CampaignFileError) as info:
        load_campaign_file(path)
    errors = dict(info.value.errors)
    lines = text.splitlines()
    unknown = next(p for p in errors if errors[p].startswith("quota names unknown unit H-NOWHERE"))
    missing = next(p for p in errors if errors[p].startswith("Field required"))
    assert unknown.startswith("quotas[") and unknown.endswith("].unit_code")
    assert missing.startswith("quotas[") and missing.endswith("].ballots")
    line = int(errors[unknown].rsplit("line ", 1)[1].rstrip(")"))
    assert "H-NOWHERE" in lines[line - 1]
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("id: x\nname: [unclosed\nyear: 2023\n", 3, 5),
        ("id: x\n  name: bad indent\n", 2, 7),
        ("id: x\nid: y\n", 2, 1),  # duplicate key
    ],
)
def test_bad_yaml_reports_line_and_column(
    tmp_path: Path, text: str, line: int, column: int
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CampaignFileError) as info:
        load_campaign_file(path)
    [(where, message)] = info.value.errors
    assert where == ""
    assert message.startswith(f"YAML syntax error at line {line}, column {column}:")


def test_bad_json_and_other_failures(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"id": "x",,}', encoding="utf-8")
    with pytest.raises(CampaignFileError, match="JSON syntax error at line 1"):
        load_campaign_file(bad)
    with pytest.raises(CampaignFileError, match="cannot read file"):
        load_campaign_file(tmp_path / "missing.yaml")
    with pytest.raises(CampaignFileError, match="unsupported file extension"):
        load_campaign_file(tmp_path / "c.toml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(CampaignFileError, match="mapping"):
        load_campaign_file(listing)
    with pytest.raises(CampaignFileError, match="no shipped campaign"):
        shipped_campaign_path("nowhere-1999")


def test_yaml_decimals_are_exact(tmp_path: Path) -> None:
    """0.1 + 0.2 == 0.3 must hold for points written in the file."""
    data = _shipped_data()
    data["x-unused"] = None
    crit = {
        "code": "T",
        "name": "t",
        "max_points": "0.3",
        "questions": [
            {"id": "T1", "text": "t", "max_points": "0.1", "options": data["x-scales"][0]},
            {"id": "T2", "text": "t", "max_points": "0.2", "options": data["x-scales"][0]},
        ],
    }
    data["forms"][0]["criteria"].append(crit)
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    text = text.replace("'0.3'", "0.3").replace("'0.1'", "0.1").replace("'0.2'", "0.2")
    path = tmp_path / "exact.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_campaign_file(path).form("01").criteria[-1].max_points == Decimal("0.3")
