"""The scoring method (services/scoring/method.py) against docs/scoring-method.md. No servers."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, localcontext
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.campaign import (
    AnswerOption,
    Campaign,
    Criterion,
    Form,
    Question,
    Quota,
    Rounding,
    Unit,
    UnitKind,
    Wave,
    WaveMember,
)
from contracts.events import Answer, BallotSubmitted, ResultRow
from services.scoring.method import (
    BallotCounter,
    Tally,
    canonical_bytes,
    compute_results,
    digest,
    result_rows,
    round_exact,
)

pytestmark = pytest.mark.unit

# The digest printed in docs/scoring-method.md for the worked example.
WORKED_DIGEST = "6f8dc01f0666f218e81e1c4cad1077d7d59bcbbe141b12c50601e40e8b846635"

OPTIONS = [
    AnswerOption(code="T", label="Tốt", weight=Decimal("1")),
    AnswerOption(code="K", label="Khá", weight=Decimal("0.75")),
    AnswerOption(code="TB", label="Trung bình", weight=Decimal("0.5")),
    AnswerOption(code="Y", label="Yếu", weight=Decimal("0")),
    AnswerOption(code="KB", label="Không biết", weight=None),
]


def q(qid: str, points: str, options: list[AnswerOption] = OPTIONS) -> Question:
    return Question(id=qid, text=f"Câu {qid}", max_points=Decimal(points), options=options)


def campaign(
    units: list[Unit],
    forms: list[Form],
    quotas: list[Quota],
    rounding: Rounding = Rounding(),
) -> Campaign:
    return Campaign(
        id="worked",
        name="Ví dụ",
        province="Sóc Trăng",
        year=2023,
        units=units,
        forms=forms,
        quotas=quotas,
        waves=[
            Wave(
                id="w1",
                opens_at=datetime.fromisoformat("2023-09-21T07:00:00+07:00"),
                members=[WaveMember(form_code=f.code) for f in forms],
            )
        ],
        deadline=datetime.fromisoformat("2023-10-06T23:59:59+07:00"),
        rounding=rounding,
    )


def own_form(code: str = "03", criteria: list[Criterion] | None = None) -> Form:
    return Form(
        code=code,
        name="Phiếu công chức sở ngành",
        group="department_staff",
        rates="own_unit",
        respondent_unit_kinds=[UnitKind.department],
        criteria=criteria
        or [
            Criterion(code="C1", name="Tiêu chí 1", max_points=Decimal("2"),
                      questions=[q("Q1", "1"), q("Q2", "1")]),
            Criterion(code="C2", name="Tiêu chí 2", max_points=Decimal("1.5"),
                      questions=[q("Q3", "1.5")]),
        ],
    )  # fmt: skip


def dept(code: str) -> Unit:
    return Unit(code=code, name=f"Sở {code}", kind=UnitKind.department)


def worked_campaign() -> Campaign:
    return campaign([dept("S01"), dept("S02")], [own_form()], [Quota(form_code="03", ballots=4)])


def ballot(
    bid: str, unit: str | None, answers: dict[str, str] | list[tuple[str, str, str]], form="03"
) -> BallotSubmitted:
    if isinstance(answers, dict):
        answers = [(unit, qid, opt) for qid, opt in answers.items()]
    return BallotSubmitted(
        ballot_id=bid,
        form_code=form,
        unit_code=unit,
        submitted_on=date(2023, 9, 25),
        answers=[Answer(unit_code=u, question_id=qi, option_code=o) for u, qi, o in answers],
    )


WORKED_BALLOTS = [
    ballot("b1", "S01", {"Q1": "T", "Q2": "K", "Q3": "T"}),
    ballot("b2", "S01", {"Q1": "T", "Q2": "KB", "Q3": "K"}),
    ballot("b3", "S01", {"Q1": "K", "Q2": "T", "Q3": "K"}),
    ballot("b4", "S01", {"Q1": "TB", "Q2": "K", "Q3": "TB"}),
    ballot("b5", "S02", {"Q1": "T", "Q2": "T", "Q3": "K"}),
    ballot("b6", "S02", {"Q1": "T", "Q2": "KB", "Q3": "T"}),
    ballot("b7", "S02", {"Q1": "TB", "Q2": "KB", "Q3": "T"}),
]


def tally_of(c: Campaign, ballots: list[BallotSubmitted]) -> Tally:
    t = Tally()
    for b in ballots:
        t.add_ballot(c, b)
    return t


def D(s: str) -> Decimal:
    return Decimal(s)


# --- the worked example, number by number -------------------------------------------------
def test_worked_example_every_number() -> None:
    c = worked_campaign()
    t = tally_of(c, WORKED_BALLOTS)
    r = compute_results(c, t)

    # S01: 4 ballots, quota 4.
    f1 = r.form("S01", "03")
    c1, c2 = f1.criteria
    q1, q2 = c1.questions
    (q3,) = c2.questions
    assert (q1.answered_count, q1.weight_sum, q1.dont_know_count) == (4, D("3.25"), 0)
    assert q1.mean_weight == D("0.8125") and q1.score == D("0.8125")
    assert (q2.answered_count, q2.weight_sum, q2.dont_know_count) == (3, D("2.5"), 1)
    assert q2.mean_weight == Fraction(5, 6) and q2.score == Fraction(5, 6)
    assert (q3.answered_count, q3.weight_sum, q3.dont_know_count) == (4, D("3"), 0)
    assert q3.mean_weight == D("0.75") and q3.score == D("1.125")
    assert c1.score == Fraction(79, 48) and c2.score == D("1.125")
    assert f1.raw == Fraction(133, 48)
    assert (f1.received, f1.quota, f1.completion, f1.factor) == (4, 4, 1, 1)
    assert f1.adjusted == Fraction(133, 48) and f1.penalty == 0
    assert [q1.score_rounded, q2.score_rounded, q3.score_rounded] == [
        D("0.81"),
        D("0.83"),
        D("1.13"),
    ]
    assert [c1.score_rounded, c2.score_rounded] == [D("1.65"), D("1.13")]
    assert (f1.raw_rounded, f1.adjusted_rounded, f1.penalty_rounded) == (
        D("2.77"),
        D("2.77"),
        D("0.00"),
    )

    # S02: 3 ballots, quota 4.
    f2 = r.form("S02", "03")
    c1, c2 = f2.criteria
    q1, q2 = c1.questions
    (q3,) = c2.questions
    assert (q1.answered_count, q1.weight_sum, q1.dont_know_count) == (3, D("2.5"), 0)
    assert q1.mean_weight == Fraction(5, 6) and q1.score == Fraction(5, 6)
    assert (q2.answered_count, q2.weight_sum, q2.dont_know_count) == (1, D("1"), 2)
    assert q2.mean_weight == 1 and q2.score == 1
    assert (q3.answered_count, q3.weight_sum, q3.dont_know_count) == (3, D("2.75"), 0)
    assert q3.mean_weight == Fraction(11, 12) and q3.score == D("1.375")
    assert c1.score == Fraction(11, 6) and c2.score == D("1.375")
    assert f2.raw == Fraction(77, 24)
    assert (f2.received, f2.quota, f2.completion, f2.factor) == (3, 4, D("0.75"), D("0.75"))
    assert f2.adjusted == D("2.40625") and f2.penalty == Fraction(77, 96)
    assert [q1.score_rounded, q2.score_rounded, q3.score_rounded] == [
        D("0.83"),
        D("1.00"),
        D("1.38"),
    ]
    assert [c1.score_rounded, c2.score_rounded] == [D("1.83"), D("1.38")]
    assert (f2.raw_rounded, f2.adjusted_rounded, f2.penalty_rounded) == (
        D("3.21"),
        D("2.41"),
        D("0.80"),
    )

    # Totals and ranks: S02's higher raw score is overtaken after its quota penalty.
    u1, u2 = r.unit("S01"), r.unit("S02")
    assert (u1.total, u1.total_rounded, u1.rank) == (Fraction(133, 48), D("2.77"), 1)
    assert (u2.total, u2.total_rounded, u2.rank) == (D("2.40625"), D("2.41"), 2)


def test_worked_example_rows_and_digest() -> None:
    c = worked_campaign()
    rows = result_rows(compute_results(c, tally_of(c, WORKED_BALLOTS)))
    assert [r.model_dump() for r in rows] == [
        dict(unit_code="S01", unit_kind="department", form_code="03", received=4, quota=4,
             raw="2.77", adjusted="2.77", rank=None),
        dict(unit_code="S01", unit_kind="department", form_code=None, received=4, quota=4,
             raw="2.77", adjusted="2.77", rank=1),
        dict(unit_code="S02", unit_kind="department", form_code="03", received=3, quota=4,
             raw="3.21", adjusted="2.41", rank=None),
        dict(unit_code="S02", unit_kind="department", form_code=None, received=3, quota=4,
             raw="3.21", adjusted="2.41", rank=2),
    ]  # fmt: skip
    assert canonical_bytes(rows).startswith(
        b'[{"adjusted":"2.77","form_code":"03","quota":4,"rank":null,"raw":"2.77",'
    )
    assert digest(rows) == WORKED_DIGEST
    doc = Path(__file__).parents[2] / "docs" / "scoring-method.md"
    if doc.exists():  # the doc prints the same digest and bytes
        text = doc.read_text(encoding="utf-8")
        assert f"digest = `{WORKED_DIGEST}`" in text
        assert canonical_bytes(rows).decode().replace("},{", "},\n{") in text


# --- the quota penalty --------------------------------------------------------------------
@pytest.mark.parametrize("received", [0, 1, 2, 3, 4, 5, 7])
def test_unit_under_quota_loses_exactly_the_missing_proportion(received: int) -> None:
    c = worked_campaign()
    ballots = [ballot(f"b{i}", "S01", {"Q1": "K", "Q2": "TB", "Q3": "T"}) for i in range(received)]
    f = compute_results(c, tally_of(c, ballots)).form("S01", "03")
    full = Fraction(D("0.75") + D("0.5") + D("1.5")) if received else Fraction(0)
    assert f.raw == full
    assert f.adjusted == full * min(Fraction(1), Fraction(received, 4))
    assert f.penalty == full * max(Fraction(0), Fraction(4 - received, 4))


def test_unit_with_no_ballots_is_listed_with_zero() -> None:
    c = worked_campaign()
    r = compute_results(c, tally_of(c, WORKED_BALLOTS[:4]))  # S02 sent nothing
    f = r.form("S02", "03")
    assert (f.received, f.quota, f.raw, f.adjusted) == (0, 4, 0, 0)
    assert r.unit("S02").rank == 2


def test_per_unit_quota_overrides_form_wide() -> None:
    c = campaign(
        [dept("S01"), dept("S02")],
        [own_form()],
        [Quota(form_code="03", ballots=4), Quota(form_code="03", unit_code="S02", ballots=6)],
    )
    r = compute_results(c, tally_of(c, WORKED_BALLOTS))
    assert r.form("S01", "03").quota == 4
    assert r.form("S02", "03").factor == Fraction(3, 6)


# --- don't know --------------------------------------------------------------------------
def test_dont_know_is_excluded_from_the_mean() -> None:
    c = worked_campaign()
    ballots = [
        ballot("a", "S01", {"Q1": "T", "Q2": "KB", "Q3": "KB"}),
        ballot("b", "S01", {"Q1": "TB", "Q2": "KB", "Q3": "Y"}),
        ballot("c", "S01", {"Q1": "KB", "Q2": "KB", "Q3": "KB"}),
    ]
    f = compute_results(c, tally_of(c, ballots)).form("S01", "03")
    q1, q2 = f.criteria[0].questions
    (q3,) = f.criteria[1].questions
    assert q1.mean_weight == D("0.75") and q1.dont_know_count == 1  # (1 + 0.5) / 2, not / 3
    assert q2.mean_weight is None and q2.score == 0  # nobody answered with a weight
    assert q3.mean_weight == 0 and q3.score == 0 and q3.answered_count == 1  # "Yếu" counts
    assert f.received == 3  # an all-"Không biết" ballot was still cast


# --- form 01: many units on one ballot -----------------------------------------------------
def delegates_campaign() -> Campaign:
    units = [dept("S01"), dept("S02"), Unit(code="H01", name="UBND H01", kind=UnitKind.district)]
    form01 = Form(
        code="01",
        name="Phiếu đại biểu HĐND tỉnh",
        group="provincial_delegate",
        rates="many_units",
        rated_units=["S01", "S02", "H01"],
        criteria=[Criterion(code="C1", name="Tiêu chí", max_points=Decimal("2"),
                            questions=[q("Q1", "1"), q("Q2", "1")])],
    )  # fmt: skip
    return campaign(units, [form01, own_form()], [Quota(form_code="01", ballots=2)])


def test_many_units_ballot_counts_once_for_each_rated_unit() -> None:
    c = delegates_campaign()
    t = Tally()
    t.add_ballot(
        c,
        ballot("d1", None, [("S01", "Q1", "T"), ("S01", "Q2", "K"), ("S02", "Q1", "KB")], "01"),
    )
    t.add_ballot(c, ballot("d2", None, [("S01", "Q1", "TB"), ("H01", "Q2", "T")], "01"))
    assert t.ballots == {("S01", "01"): 2, ("S02", "01"): 1, ("H01", "01"): 1}
    r = compute_results(c, t)
    s01, s02, h01 = r.form("S01", "01"), r.form("S02", "01"), r.form("H01", "01")
    assert (s01.received, s01.quota, s01.factor) == (2, 2, 1)  # the form-wide quota, per unit
    assert (s02.received, s02.quota, s02.factor) == (1, 2, Fraction(1, 2))
    assert s02.raw == 0  # its only answer was "Không biết", yet the ballot counts as received
    assert h01.adjusted == D("0.5")  # raw 1 x 1/2
    assert s01.raw == D("0.75") + D("0.75")  # Q1 mean (1 + 0.5)/2, Q2 mean 0.75
    # S01 is rated by 01 (listed) and 03 (department staff); H01 only by 01.
    assert [f.form_code for f in r.unit("S01").forms] == ["01", "03"]
    assert [f.form_code for f in r.unit("H01").forms] == ["01"]
    # Ranked within kind: H01 is alone among districts.
    assert r.unit("H01").rank == 1


def test_total_sums_adjusted_scores_over_forms() -> None:
    c = delegates_campaign()
    t = tally_of(c, WORKED_BALLOTS[:4])  # form 03 for S01, no quota on 03 here
    t.add_ballot(c, ballot("d1", None, [("S01", "Q1", "T"), ("S01", "Q2", "T")], "01"))
    r = compute_results(c, t)
    u = r.unit("S01")
    assert u.total == Fraction(2, 2) * 1 + Fraction(133, 48)  # form 01: raw 2 x 1/2
    rows = [row for row in result_rows(r) if row.unit_code == "S01"]
    assert [row.form_code for row in rows] == ["01", "03", None]
    assert rows[-1].quota is None  # form 03 has no quota in this campaign
    assert rows[-1].received == 5
    assert rows[-1].raw == "4.77"  # 2 + 133/48 = 4.7708..
    assert rows[-1].adjusted == "3.77"


# --- validation --------------------------------------------------------------------------
INVALID_BALLOTS = [
    ballot("x", "S01", {"Q1": "T"}, form="99"),  # unknown form
    ballot("x", "S01", {"Q9": "T"}),  # unknown question
    ballot("x", "S01", {"Q1": "ZZ"}),  # unknown option
    ballot("x", "S99", {"Q1": "T"}),  # unknown unit
    ballot("x", None, [("S01", "Q1", "T")]),  # own_unit form without unit
    ballot("x", "S01", [("S01", "Q2", "T"), ("S02", "Q1", "T")]),  # answer for another unit
    ballot("x", "S01", [("S01", "Q2", "T"), ("S01", "Q2", "K")]),  # answered twice
    ballot("x", "H01", {"Q1": "T"}),  # a district cannot use the department form
    ballot("x", None, [("S01", "Q1", "T"), ("S99", "Q1", "T")], "01"),  # not rated by 01
]


@pytest.mark.parametrize("bad", INVALID_BALLOTS)
def test_invalid_ballot_raises_and_changes_nothing(bad: BallotSubmitted) -> None:
    c = delegates_campaign()
    t = tally_of(c, WORKED_BALLOTS[:2])
    before = (t.question_rows(), t.ballot_rows())
    with pytest.raises(ValueError):
        t.add_ballot(c, bad)
    assert (t.question_rows(), t.ballot_rows()) == before


def _exact_rows(t: Tally) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Rows with each weight sum as its exact text (value and exponent, as stored)."""
    return [(*r[:4], str(r[4]), r[5]) for r in t.question_rows()], t.ballot_rows()


@pytest.mark.parametrize("bad", INVALID_BALLOTS)
def test_ballot_counter_refuses_what_of_ballot_refuses(bad: BallotSubmitted) -> None:
    c = delegates_campaign()
    counter = BallotCounter(c)
    for b in WORKED_BALLOTS[:2]:
        counter.add(b)
    before = _exact_rows(counter.tally())
    with pytest.raises(ValueError) as refused:
        counter.add(bad)
    with pytest.raises(ValueError) as expected:
        Tally.of_ballot(c, bad)
    assert str(refused.value) == str(expected.value)
    assert _exact_rows(counter.tally()) == before


def test_ballot_counter_equals_merged_tallies_on_the_worked_example() -> None:
    c = delegates_campaign()
    counter = BallotCounter(c)
    for b in WORKED_BALLOTS:
        counter.add(b)
    assert _exact_rows(counter.tally()) == _exact_rows(tally_of(c, WORKED_BALLOTS))


# --- order independence and persistence ----------------------------------------------------
OPTION_CODES = [o.code for o in OPTIONS]
random_ballot = st.builds(
    lambda unit, opts: (unit, dict(zip(["Q1", "Q2", "Q3"], opts, strict=True))),
    st.sampled_from(["S01", "S02"]),
    st.lists(st.sampled_from(OPTION_CODES), min_size=3, max_size=3),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(random_ballot, min_size=1, max_size=12), st.randoms(use_true_random=False))
def test_ballot_order_does_not_change_the_digest(specs, rnd) -> None:
    c = worked_campaign()
    ballots = [ballot(f"b{i}", u, a) for i, (u, a) in enumerate(specs)]
    shuffled = list(ballots)
    rnd.shuffle(shuffled)
    a, b = tally_of(c, ballots), tally_of(c, shuffled)
    assert a == b
    counter = BallotCounter(c)  # the rebuild's counter: the same rows, exponents included
    for one in shuffled:
        counter.add(one)
    assert _exact_rows(counter.tally()) == _exact_rows(a)
    assert digest(result_rows(compute_results(c, a))) == digest(result_rows(compute_results(c, b)))


@settings(max_examples=40, deadline=None)
@given(st.lists(random_ballot, min_size=1, max_size=12))
def test_tally_round_trips_through_rows(specs) -> None:
    c = worked_campaign()
    t = tally_of(c, [ballot(f"b{i}", u, a) for i, (u, a) in enumerate(specs)])
    rows_q, rows_b = t.question_rows(), t.ballot_rows()
    assert all(isinstance(r, tuple) for r in rows_q + rows_b)
    assert Tally.from_rows(rows_q, rows_b) == t
    # As PostgreSQL hands them back (numeric as str/Decimal, lists not tuples).
    again = Tally.from_rows([[*r[:4], str(r[4]), r[5]] for r in rows_q], [list(r) for r in rows_b])
    assert again == t


def test_deltas_from_add_ballot_rebuild_the_tally() -> None:
    c = worked_campaign()
    t, q_rows, b_rows = Tally(), [], []
    for b in WORKED_BALLOTS:
        delta = t.add_ballot(c, b)
        q_rows += delta.question_rows()
        b_rows += delta.ballot_rows()
    assert Tally.from_rows(q_rows, b_rows) == t  # summing increments = the tally


# --- rounding ----------------------------------------------------------------------------
def test_round_half_up_at_the_boundary() -> None:
    assert round_exact(Fraction("2.345"), 2, "ROUND_HALF_UP") == D("2.35")
    assert round_exact(Fraction("2.345"), 2, "ROUND_HALF_EVEN") == D("2.34")
    assert round_exact(Fraction("2.335"), 2, "ROUND_HALF_EVEN") == D("2.34")
    assert round_exact(Fraction("2.3449999"), 2, "ROUND_HALF_UP") == D("2.34")
    assert str(round_exact(Fraction(0), 2, "ROUND_HALF_UP")) == "0.00"
    assert str(round_exact(Fraction(5, 2), 0, "ROUND_HALF_UP")) == "3"


def one_question_form(points: str) -> Form:
    return own_form(
        criteria=[
            Criterion(code="C1", name="Tiêu chí", max_points=D(points), questions=[q("Q1", points)])
        ]
    )


def test_a_score_of_exactly_2_345_publishes_as_2_35() -> None:
    # 4.69 x mean(1, 0) = 2.345 exactly.
    c = campaign([dept("S01")], [one_question_form("4.69")], [])
    t = tally_of(c, [ballot("a", "S01", {"Q1": "T"}), ballot("b", "S01", {"Q1": "Y"})])
    [form_row, total_row] = result_rows(compute_results(c, t))
    assert form_row.raw == form_row.adjusted == total_row.adjusted == "2.35"
    c_even = campaign(
        [dept("S01")], [one_question_form("4.69")], [], Rounding(mode="ROUND_HALF_EVEN")
    )
    assert result_rows(compute_results(c_even, t))[0].raw == "2.34"


def test_rounding_happens_once_from_the_exact_value() -> None:
    # Double rounding would go 2.3449 -> 2.345 -> 2.35; rounding once gives 2.34.
    c = campaign([dept("S01")], [one_question_form("4.6898")], [])
    t = tally_of(c, [ballot("a", "S01", {"Q1": "T"}), ballot("b", "S01", {"Q1": "Y"})])
    assert result_rows(compute_results(c, t))[0].raw == "2.34"
    # Rounded parts do not add up to the rounded whole, by design (worked example, S01).
    w = worked_campaign()
    f = compute_results(w, tally_of(w, WORKED_BALLOTS)).form("S01", "03")
    assert sum(cr.score_rounded for cr in f.criteria) == D("2.78")
    assert f.raw_rounded == D("2.77")


def test_thirds_sum_exactly_where_a_finite_decimal_context_would_misround() -> None:
    # Three questions each scoring 4/3 plus one scoring 0.005: raw is exactly 4.005 -> 4.01.
    qs = [q("Q1", "4"), q("Q2", "4"), q("Q3", "4"), q("Q4", "0.015")]
    form = own_form(
        criteria=[Criterion(code="C1", name="Tiêu chí", max_points=D("12.015"), questions=qs)]
    )
    c = campaign([dept("S01")], [form], [])
    answers = [{"Q1": "T", "Q2": "T", "Q3": "T", "Q4": "T"}] + [
        {"Q1": "Y", "Q2": "Y", "Q3": "Y", "Q4": "Y"}
    ] * 2
    t = tally_of(c, [ballot(f"b{i}", "S01", a) for i, a in enumerate(answers)])
    f = compute_results(c, t).form("S01", "03")
    assert f.raw == D("4.005") and f.raw_rounded == D("4.01")
    with localcontext() as ctx:  # what a prec=50 Decimal pipeline would publish instead
        ctx.prec = 50
        approx = sum([D(4) * 1 / 3] * 3, D("0.005"))
        assert approx < D("4.005")
        assert approx.quantize(D("0.01"), rounding="ROUND_HALF_UP") == D("4.00")


# --- ranking and canonical form -----------------------------------------------------------
def test_ties_share_a_rank_and_are_ordered_by_code() -> None:
    units = [dept("S03"), dept("S01"), dept("S02"), dept("S04")]
    units.append(Unit(code="H01", name="UBND H01", kind=UnitKind.district))
    form02 = Form(code="02", name="Phiếu huyện", group="district_delegate", rates="own_unit",
                  respondent_unit_kinds=[UnitKind.district],
                  criteria=[Criterion(code="C1", name="T", max_points=D("1"),
                                      questions=[q("Q1", "1")])])  # fmt: skip
    c = campaign(units, [one_question_form("1"), form02], [])
    t = tally_of(
        c,
        [
            ballot("a", "S03", {"Q1": "T"}),
            ballot("b", "S01", {"Q1": "T"}),
            ballot("c", "S02", {"Q1": "K"}),
            ballot("d", "S04", {"Q1": "T"}),
            ballot("e", "H01", {"Q1": "Y"}, form="02"),
        ],
    )
    r = compute_results(c, t)
    assert [(u.unit_code, u.rank) for u in r.units] == [
        ("H01", 1), ("S01", 1), ("S02", 4), ("S03", 1), ("S04", 1)
    ]  # fmt: skip
    ranked = sorted((u for u in r.units if u.kind == UnitKind.department),
                    key=lambda u: (u.rank, u.unit_code))  # fmt: skip
    assert [u.unit_code for u in ranked] == ["S01", "S03", "S04", "S02"]


def test_canonical_bytes_ignore_row_order_and_have_no_whitespace() -> None:
    c = worked_campaign()
    rows = result_rows(compute_results(c, tally_of(c, WORKED_BALLOTS)))
    raw = canonical_bytes(rows)
    assert canonical_bytes(list(reversed(rows))) == raw
    assert b" " not in raw and b"\n" not in raw
    assert raw.decode("utf-8")
    assert digest(rows) == digest(reversed(rows))
    other = rows[:-1] + [ResultRow(**{**rows[-1].model_dump(), "adjusted": "2.42"})]
    assert digest(other) != digest(rows)


@pytest.mark.parametrize(("places", "expected"), [(0, "3"), (3, "3.208"), (6, "3.208333")])
def test_rows_carry_exactly_places_decimals(places: int, expected: str) -> None:
    w = worked_campaign()
    c = w.model_copy(update={"rounding": Rounding(places=places)})
    rows = result_rows(compute_results(c, tally_of(c, WORKED_BALLOTS)))
    assert rows[2].raw == expected  # S02 form 03: 77/24 = 3.208333...
