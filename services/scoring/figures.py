"""The numbers pages and exports show: each rounded once, by the campaign's rule, from exact values.

Why here and not in templates: a sum of rounded figures is not the rounded sum (a unit's
penalty of 4.175 + 0.005 shown as 4.19), so every displayed figure, totals included, is
derived from the exact rationals of services.scoring.method and rounded by round_exact with
the campaign's places and mode (docs/architecture.md, decision 16).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

from contracts.campaign import Campaign
from parindex.web.i18n import catalog, plain_number
from parindex.web.spreadsheet import neutral
from services.scoring.method import Results, UnitResult, fixed, round_exact

MEAN_PLACES = 4  # a mean weight lies in [0, 1]: the score's places would erase it


@dataclass(frozen=True)
class FormFigures:
    form_code: str
    name: str
    name_en: str
    short: str  # as a table cites it (Form.short_name)
    short_en: str
    received: int
    quota: int | None
    shortfall: int  # ballots missing from this form's quota, never offset by another form
    no_ballot: bool  # nothing received: the form's points are all lost
    max_points: Decimal
    raw: Decimal
    penalty: Decimal  # rounded from raw - adjusted, exact
    adjusted: Decimal


@dataclass(frozen=True)
class UnitFigures:
    unit_code: str
    name: str
    kind: str
    rank: int
    max_points: Decimal
    raw: Decimal
    penalty: Decimal  # rounded from the unit's exact raw - total, not a sum of rounded penalties
    total: Decimal
    quota: int | None  # None unless every form has one
    received: int
    percent: float  # bar width only
    forms: tuple[FormFigures, ...]


def rounder(camp: Campaign):
    """The campaign's one rounding rule, as a function of an exact value."""
    places, mode = camp.rounding.places, camp.rounding.mode

    def rnd(value: Fraction) -> Decimal:
        return round_exact(value, places, mode)

    return rnd


def unit_figures(camp: Campaign, unit: UnitResult) -> UnitFigures:
    rnd = rounder(camp)
    forms = []
    for f in unit.forms:
        form = camp.form(f.form_code)
        forms.append(
            FormFigures(
                form_code=f.form_code,
                name=form.name,
                name_en=form.name_en or form.name,
                short=form.short_name("vi"),
                short_en=form.short_name("en"),
                received=f.received,
                quota=f.quota,
                shortfall=max(0, (f.quota or 0) - f.received),
                no_ballot=f.received == 0,
                max_points=form.max_points,
                raw=f.raw_rounded,
                penalty=f.penalty_rounded,
                adjusted=f.adjusted_rounded,
            )
        )
    maxp = sum((x.max_points for x in forms), Decimal(0))
    quotas = [f.quota for f in unit.forms]
    return UnitFigures(
        unit_code=unit.unit_code,
        name=camp.unit(unit.unit_code).name,
        kind=unit.kind.value,
        rank=unit.rank,
        max_points=maxp,
        raw=unit.raw_rounded,
        penalty=rnd(unit.raw - unit.total),
        total=unit.total_rounded,
        quota=None if any(q is None for q in quotas) else sum(q or 0 for q in quotas),
        received=sum(f.received for f in unit.forms),
        percent=float(unit.total / Fraction(maxp) * 100) if maxp else 0.0,
        forms=tuple(forms),
    )


def all_unit_figures(camp: Campaign, results: Results) -> list[UnitFigures]:
    return [unit_figures(camp, u) for u in results.units]


def number(value: Decimal | None, places: int, lang: str = "vi") -> str:
    """A rounded figure with exactly `places` decimals; Vietnamese: 1.234,56. Never '-0,00'."""
    if value is None:
        return "–"
    return plain_number(value, places, lang)


def deduction(value: Decimal, places: int, lang: str = "vi") -> str:
    """A penalty as a deduction: '−4,18', and plain '0' when it rounds to nothing."""
    shown = number(value, places, lang)
    return "0" if shown.strip("0,.") == "" else "−" + shown


# --- exports -----------------------------------------------------------------------------
# Column keys; the headers people read come from the catalog in their language (decision 25).
RESULT_HEAD = [
    "unit_code", "unit_name", "unit_kind", "form_code", "received", "quota",
    "raw", "penalty", "adjusted", "rank",
]  # fmt: skip
QUESTION_HEAD = [
    "unit_code", "form_code", "criterion", "question_id", "answered", "dont_know",
    "mean_weight", "score",
]  # fmt: skip
COUNT_HEAD = ["unit_code", "unit_name", "unit_kind", "form_code", "received", "quota"]
TEXT = catalog(Path(__file__).parent / "text")


def headers(keys: list[str], lang: str = "vi") -> list[object]:
    """Vietnamese column headers, or English on the English switch."""
    return [TEXT.t(lang, f"sc.col.{k}") for k in keys]


def _kind(kind: str, lang: str) -> str:
    return TEXT.t(lang, f"sc.kind.{kind}")


def result_table(camp: Campaign, results: Results, lang: str = "vi") -> list[list[object]]:
    """Rows of rounded Decimals (not text), one per form and a total row carrying the quota."""
    rows: list[list[object]] = [headers(RESULT_HEAD, lang)]
    total = TEXT.t(lang, "sc.col.total_row")
    for u in all_unit_figures(camp, results):
        for f in u.forms:
            rows.append(
                [u.unit_code, u.name, _kind(u.kind, lang), f.form_code, f.received, f.quota,
                 f.raw, f.penalty, f.adjusted, None]
            )  # fmt: skip
        rows.append(
            [u.unit_code, u.name, _kind(u.kind, lang), total, u.received, u.quota,
             u.raw, u.penalty, u.total, u.rank]
        )  # fmt: skip
    return rows


def count_table(camp: Campaign, results: Results, lang: str = "vi") -> list[list[object]]:
    """Before publication: ballots received against quota, per form, and nothing else."""
    rows: list[list[object]] = [headers(COUNT_HEAD, lang)]
    total = TEXT.t(lang, "sc.col.total_row")
    for u in all_unit_figures(camp, results):
        kind = _kind(u.kind, lang)
        for f in u.forms:
            rows.append([u.unit_code, u.name, kind, f.form_code, f.received, f.quota])
        rows.append([u.unit_code, u.name, kind, total, u.received, u.quota])
    return rows


def question_table(camp: Campaign, results: Results, lang: str = "vi") -> list[list[object]]:
    """Per-question figures; a group under the minimum reporting size shows none of them."""
    rnd = rounder(camp)
    rows: list[list[object]] = [headers(QUESTION_HEAD, lang)]
    for u in results.units:
        for f in u.forms:
            for c in f.criteria:
                for q in c.questions:
                    if q.answered_count + q.dont_know_count < camp.min_report_size:
                        rows.append(
                            [u.unit_code, f.form_code, c.code, q.question_id,
                             f"<{camp.min_report_size}", None, None, None]
                        )  # fmt: skip
                        continue
                    mean = (
                        None
                        if q.mean_weight is None
                        else round_exact(q.mean_weight, MEAN_PLACES, camp.rounding.mode)
                    )
                    rows.append(
                        [u.unit_code, f.form_code, c.code, q.question_id, q.answered_count,
                         q.dont_know_count, mean, rnd(q.score)]
                    )  # fmt: skip
    return rows


def csv_cell(value: object) -> object:
    """Decimals as plain digits ('0.00', never '0E-2'); None as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return fixed(value)
    # A unit named "=HYPERLINK(...)" stays text (docs/architecture.md, decision 22).
    return neutral(value)
