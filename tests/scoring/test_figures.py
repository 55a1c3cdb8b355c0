"""Displayed numbers are the method's numbers: rounded once, from exact values. No servers."""

from __future__ import annotations

import io
from decimal import Decimal
from fractions import Fraction

import pytest
from openpyxl import load_workbook

from contracts.campaign import Quota, UnitKind
from services.scoring.figures import (
    RESULT_HEAD,
    deduction,
    headers,
    number,
    question_table,
    result_table,
    unit_figures,
)
from services.scoring.method import (
    FormResult,
    UnitResult,
    compute_results,
    round_exact,
)
from services.scoring.web import _csv, _xlsx
from tests.scoring.test_method import (
    WORKED_BALLOTS,
    campaign,
    dept,
    own_form,
    tally_of,
    worked_campaign,
)

pytestmark = pytest.mark.unit


def _form(code: str, raw: Fraction, adjusted: Fraction, received: int, quota: int) -> FormResult:
    def rnd(x: Fraction) -> Decimal:
        return round_exact(x, 2, "ROUND_HALF_UP")

    return FormResult(
        "S01", code, received, quota, Fraction(received, quota), Fraction(received, quota),
        raw, adjusted, raw - adjusted, rnd(raw), rnd(adjusted), rnd(raw - adjusted), (),
    )  # fmt: skip


def test_unit_penalty_is_the_exact_penalty_rounded_not_a_sum_of_rounded_penalties() -> None:
    camp = campaign([dept("S01")], [own_form("03"), own_form("04")], [])
    # Exact penalties 2.095 and 2.085: rounded separately 2.10 + 2.09 = 4.19, exactly 4.18.
    a = _form("03", Fraction("3.5"), Fraction("3.5") - Fraction("2.095"), 1, 2)
    b = _form("04", Fraction("3.5"), Fraction("3.5") - Fraction("2.085"), 1, 2)
    assert a.penalty_rounded + b.penalty_rounded == Decimal("4.19")
    unit = UnitResult(
        "S01", UnitKind.department, (a, b), a.raw + b.raw, a.adjusted + b.adjusted,
        Decimal("7.00"), round_exact(a.adjusted + b.adjusted, 2, "ROUND_HALF_UP"), 1,
    )  # fmt: skip
    fig = unit_figures(camp, unit)
    assert fig.penalty == Decimal("4.18")
    assert deduction(fig.penalty, 2, "vi") == "−4,18"
    assert deduction(fig.penalty, 2, "en") == "−4.18"
    assert number(fig.total, 2, "vi") == "2,82"  # 7 - 4.18, not 7.00 - 4.19


def test_rounding_places_and_mode_of_the_campaign_are_used() -> None:
    from contracts.campaign import Rounding

    camp = campaign(
        [dept("S01"), dept("S02")],
        [own_form()],
        [Quota(form_code="03", ballots=4)],
        rounding=Rounding(places=3, mode="ROUND_HALF_EVEN"),
    )
    res = compute_results(camp, tally_of(camp, WORKED_BALLOTS))
    s02 = unit_figures(camp, res.unit("S02"))
    # S02: raw 3.2083..., adjusted x 3/4; the penalty is rounded from the exact difference.
    exact = res.unit("S02").raw - res.unit("S02").total
    assert s02.penalty == round_exact(exact, 3, "ROUND_HALF_EVEN")
    assert number(s02.penalty, 3, "vi").count(",") == 1
    assert len(number(s02.penalty, 3, "vi").split(",")[1]) == 3


def test_never_minus_zero_and_vietnamese_number_format() -> None:
    assert deduction(Decimal("0.00"), 2, "vi") == "0"
    assert number(Decimal("-0.00"), 2, "vi") == "0,00"
    assert number(Decimal("1234.5"), 2, "vi") == "1.234,50"
    assert number(Decimal("1234.5"), 2, "en") == "1,234.50"


@pytest.mark.parametrize("lang", ["vi", "en"])
@pytest.mark.parametrize("value", ["-0.004", "-0.0049999", "-0", "-0.000", "0.001", "-1e-9"])
def test_a_value_that_rounds_to_zero_never_shows_a_sign(value: str, lang: str) -> None:
    from parindex.web.i18n import en_number, percent, vi_number

    zero = "0,00" if lang == "vi" else "0.00"
    assert number(Decimal(value), 2, lang) == zero
    assert deduction(Decimal(value), 2, lang) == "0"
    assert (vi_number if lang == "vi" else en_number)(value, 2) == zero
    assert percent(Decimal(value) / 100, 1, lang) in ("0,0%", "0.0%")
    assert "-" not in percent(Decimal("-0.0001"), 100, lang)
    # a real negative keeps its sign, and half-even rounding is unchanged
    assert number(Decimal("-0.006"), 2, lang) == ("-0,01" if lang == "vi" else "-0.01")
    assert vi_number("0.125", 2) == "0,12" and vi_number("0.135", 2) == "0,14"


def test_shortfall_per_form_and_a_form_without_ballot_loses_everything() -> None:
    camp = campaign(
        [dept("S01")],
        [own_form("03"), own_form("04")],
        [Quota(form_code="03", ballots=1), Quota(form_code="04", ballots=2)],
    )
    ballots = [b.model_copy(update={"unit_code": "S01"}) for b in WORKED_BALLOTS[:1]]
    res = compute_results(camp, tally_of(camp, ballots))
    fig = unit_figures(camp, res.unit("S01"))
    f03, f04 = fig.forms
    assert (f03.received, f03.quota, f03.shortfall, f03.no_ballot) == (1, 1, 0, False)
    assert (f04.received, f04.quota, f04.shortfall, f04.no_ballot) == (0, 2, 2, True)
    assert f04.adjusted == 0 and fig.quota == 3 and fig.received == 1


def test_exports_hold_numbers_and_total_rows_carry_the_quota() -> None:
    camp = worked_campaign()
    res = compute_results(camp, tally_of(camp, WORKED_BALLOTS))
    table = result_table(camp, res)
    assert table[0] == headers(RESULT_HEAD) and table[0][:2] == ["Mã đơn vị", "Tên đơn vị"]
    assert result_table(camp, res, "en")[0][:2] == ["Unit code", "Unit name"]
    total = next(r for r in table if r[0] == "S02" and r[3] == "Tổng cộng")
    assert total[4:] == [3, 4, Decimal("3.21"), Decimal("0.80"), Decimal("2.41"), 2]
    csv_text = _csv(table, "x.csv").body.decode("utf-8-sig")
    assert 'S02,Sở S02,"Sở, ban, ngành tỉnh",Tổng cộng,3,4,3.21,0.80,2.41,2' in csv_text
    assert 'S01,Sở S01,"Sở, ban, ngành tỉnh",03,4,4,2.77,0.00,2.77,' in csv_text  # never 0E-2

    book = load_workbook(io.BytesIO(_xlsx({"Kết quả": table}, "x.xlsx").body))
    ws = book["Kết quả"]
    row = next(
        r for r in ws.iter_rows(min_row=2) if (r[0].value, r[3].value) == ("S02", "Tổng cộng")
    )
    for cell in row[6:9]:
        assert cell.data_type == "n" and isinstance(cell.value, float)
        assert cell.number_format == "0.00"
    assert row[8].value == pytest.approx(2.41)


def test_question_figures_of_small_groups_are_all_suppressed() -> None:
    camp = worked_campaign()  # min_report_size 10, at most 4 answers per question
    rows = question_table(camp, compute_results(camp, tally_of(camp, WORKED_BALLOTS)))
    assert len(rows) > 1
    for r in rows[1:]:
        assert r[4] == "<10" and r[5:] == [None, None, None]
    big = camp.model_copy(update={"min_report_size": 1})
    rows = question_table(big, compute_results(big, tally_of(big, WORKED_BALLOTS)))
    q3 = next(r for r in rows if r[0] == "S01" and r[3] == "Q3")
    assert q3[4:] == [4, 0, Decimal("0.7500"), Decimal("1.13")]
