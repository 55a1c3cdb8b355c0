"""The PAR Index survey scoring method, as pure functions over counters (docs/scoring-method.md).

Why counters: a question's score needs only the mean weight of its answers per unit, so a
projection keeps (answered_count, weight_sum, dont_know_count) per unit x form x question and
ballots received per unit x form. Those sums are order-independent, so replaying the log in any
order, or rebuilding from PostgreSQL rows, gives the same results.

Why rationals: every derived number (means, quota factors, sums) is computed as an exact
`fractions.Fraction` from Decimal inputs. A Decimal context of any finite precision still rounds
1/3 and can land a value such as 1/3 + 1/3 + 1/3 + 0.005 on the wrong side of a rounding
boundary; a rational cannot. Each published number is rounded once, from its exact value.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, Inexact, localcontext
from fractions import Fraction
from typing import Any, Literal

from contracts.campaign import Campaign, Form, UnitKind
from contracts.events import BallotSubmitted, ResultRow

RoundingMode = Literal["ROUND_HALF_UP", "ROUND_HALF_EVEN"]
QuestionRow = tuple[str, str, str, int, Decimal, int]  # unit, form, question, answered, sum, dk
BallotRow = tuple[str, str, int]  # unit, form, received

_ZERO = Fraction(0)
_ONE = Fraction(1)


def _add_exact(a: Decimal, b: Decimal) -> Decimal:
    """Decimal addition that raises rather than round: weight sums must stay exact."""
    with localcontext() as ctx:
        ctx.prec = 50
        ctx.traps[Inexact] = True
        return a + b


def round_exact(value: Fraction, places: int, mode: RoundingMode) -> Decimal:
    """Round an exact rational to `places` decimals with integer arithmetic (no intermediate).

    ROUND_HALF_UP rounds ties away from zero (2.345 -> 2.35), ROUND_HALF_EVEN to the even digit
    (2.345 -> 2.34); both exactly as the decimal module defines them.
    """
    scaled = value * 10**places
    quotient, remainder = divmod(abs(scaled.numerator), scaled.denominator)
    twice = 2 * remainder
    if twice > scaled.denominator or (
        twice == scaled.denominator and (mode == "ROUND_HALF_UP" or quotient % 2 == 1)
    ):
        quotient += 1
    sign = "-" if scaled < 0 and quotient else ""
    with localcontext() as ctx:
        ctx.prec = 50
        return Decimal(f"{sign}{quotient}").scaleb(-places)


def fixed(value: Decimal) -> str:
    """A rounded Decimal as plain digits, never exponent notation ('0.00', not '0E-2')."""
    return format(value, "f")


# --- accumulation ------------------------------------------------------------------------
@dataclass
class QuestionCount:
    """Counters for one unit x form x question. Means are derived, never stored."""

    answered_count: int = 0  # answers with a weight
    weight_sum: Decimal = Decimal(0)  # sum of those weights, exact
    dont_know_count: int = 0  # answers whose option has weight None ("Không biết")


@dataclass
class Tally:
    """What the scoring projection accumulates from BallotSubmitted events.

    It holds sums and counts only, so adding ballots commutes and the state persists as rows.
    It does not deduplicate ballot ids: the projection must apply each ballot_id once.
    """

    questions: dict[tuple[str, str, str], QuestionCount] = field(default_factory=dict)
    ballots: dict[tuple[str, str], int] = field(default_factory=dict)

    @classmethod
    def of_ballot(cls, campaign: Campaign, ballot: BallotSubmitted) -> Tally:
        """One ballot's contribution, after validating it against the campaign.

        Raises ValueError (for the dead-letter subject) on an unknown form, unit, question or
        option, an answer for a unit the form does not rate from this ballot, or the same
        question answered twice for one unit. The rules live once, in BallotCounter.
        """
        counter = BallotCounter(campaign)
        counter.add(ballot)
        return counter.tally()

    def merge(self, other: Tally) -> None:
        """Add another tally's counters into this one (addition commutes: order is irrelevant)."""
        for key, c in other.questions.items():
            mine = self.questions.setdefault(key, QuestionCount())
            mine.answered_count += c.answered_count
            mine.dont_know_count += c.dont_know_count
            mine.weight_sum = _add_exact(mine.weight_sum, c.weight_sum)
        for bkey, n in other.ballots.items():
            self.ballots[bkey] = self.ballots.get(bkey, 0) + n

    def add_ballot(self, campaign: Campaign, ballot: BallotSubmitted) -> Tally:
        """Validate and add one ballot; returns its contribution (the rows to increment in SQL).

        Validation happens before any counter changes, so a rejected ballot leaves no trace.
        """
        delta = Tally.of_ballot(campaign, ballot)
        self.merge(delta)
        return delta

    # Persistence as plain rows ----------------------------------------------------------
    def question_rows(self) -> list[QuestionRow]:
        """(unit_code, form_code, question_id, answered_count, weight_sum, dont_know_count)."""
        return [
            (u, f, q, c.answered_count, c.weight_sum, c.dont_know_count)
            for (u, f, q), c in sorted(self.questions.items())
        ]

    def ballot_rows(self) -> list[BallotRow]:
        """(unit_code, form_code, received)."""
        return [(u, f, n) for (u, f), n in sorted(self.ballots.items())]

    @classmethod
    def from_rows(
        cls, question_rows: Iterable[Sequence[Any]], ballot_rows: Iterable[Sequence[Any]]
    ) -> Tally:
        """Rebuild from stored rows; rows for the same key are summed (so deltas work too)."""
        out = cls()
        for u, f, q, answered, weight_sum, dont_know in question_rows:
            out.merge(
                Tally(
                    questions={
                        (str(u), str(f), str(q)): QuestionCount(
                            int(answered), Decimal(str(weight_sum)), int(dont_know)
                        )
                    }
                )
            )
        for u, f, received in ballot_rows:
            out.merge(Tally(ballots={(str(u), str(f)): int(received)}))
        return out


class BallotCounter:
    """The rules and refusals of counting ballots of one campaign version (Tally.of_ballot is
    one ballot of it).

    The rebuild applies hundreds of thousands of ballots (issue #18): this keeps each form's
    questions and options indexed once, counts answers as integers per option, and turns the
    counts into a Tally (weights multiplied exactly) only when the batch is written. The result
    equals merging Tally.of_ballot of every ballot; a refused ballot leaves no count.
    """

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        self._forms: dict[str, tuple[Form, dict[str, dict[str, Decimal | None]]]] = {}
        self._units: dict[str, UnitKind] = {}
        self._rated_units: dict[str, frozenset[str]] = {}
        self.options: dict[tuple[str, str, str, str], int] = {}  # unit, form, question, option
        self.ballots: dict[tuple[str, str], int] = {}

    def _form(self, code: str) -> tuple[Form, dict[str, dict[str, Decimal | None]]]:
        found = self._forms.get(code)
        if found is None:
            form = _form(self.campaign, code)
            index: dict[str, dict[str, Decimal | None]] = {}
            for q in form.questions():
                if q.id in index:  # as of_ballot's dict: the last question with an id wins
                    del index[q.id]
                weights: dict[str, Decimal | None] = {}
                for o in q.options:
                    weights.setdefault(o.code, o.weight)  # the first option with a code wins
                index[q.id] = weights
            found = self._forms[code] = (form, index)
        return found

    def _unit_kind(self, code: str) -> UnitKind:
        kind = self._units.get(code)
        if kind is None:
            kind = self._units[code] = _unit_kind(self.campaign, code)
        return kind

    def add(self, ballot: BallotSubmitted) -> None:
        """Validate and count one ballot; ValueError (as Tally.of_ballot) leaves no trace."""
        # A pydantic model's __dict__ holds its fields: the answers read as mappings.
        self.add_fields(
            ballot.ballot_id,
            ballot.form_code,
            ballot.unit_code,
            [a.__dict__ for a in ballot.answers],
        )

    def add_fields(
        self,
        ballot_id: str,
        form_code: str,
        unit_code: str | None,
        answers: Iterable[Mapping[str, str]],
    ) -> None:
        """`add` on a ballot's validated fields, answers as mappings with `unit_code`,
        `question_id` and `option_code`: the decoded model and the rebuild's fast decode
        (contracts.events.decode_ballot) count through these same rules and messages
        (docs/architecture.md, decision 43)."""
        form, questions = self._form(form_code)
        allowed: set[str] | frozenset[str]
        if form.rates == "own_unit":
            if unit_code is None:
                raise ValueError(f"ballot {ballot_id}: form {form.code} needs a unit_code")
            unit = self._unit_kind(unit_code)
            if form.respondent_unit_kinds and unit not in form.respondent_unit_kinds:
                raise ValueError(
                    f"ballot {ballot_id}: form {form.code} does not rate "
                    f"{unit.value} unit {unit_code}"
                )
            allowed = {unit_code}
        else:
            allowed = self._rated(form)
        seen: set[tuple[str, str]] = set()
        keys: list[tuple[str, str, str, str]] = []
        fcode = form.code
        for a in answers:
            u, q, o = a["unit_code"], a["question_id"], a["option_code"]
            if u not in allowed:
                raise ValueError(f"ballot {ballot_id}: form {fcode} does not rate unit {u}")
            weights = questions.get(q)
            if weights is None:
                raise ValueError(f"ballot {ballot_id}: form {fcode} has no question {q}")
            if o not in weights:
                raise ValueError(f"ballot {ballot_id}: question {q} has no option {o}")
            uq = (u, q)
            if uq in seen:
                raise ValueError(f"ballot {ballot_id}: question {q} answered twice for unit {u}")
            seen.add(uq)
            keys.append((u, fcode, q, o))
        options = self.options
        for key in keys:
            options[key] = options.get(key, 0) + 1
        ballots = self.ballots
        for bkey in {(u, fcode) for u, _ in seen}:
            ballots[bkey] = ballots.get(bkey, 0) + 1

    def _rated(self, form: Form) -> frozenset[str]:
        rated = self._rated_units.get(form.code)
        if rated is None:
            rated = self._rated_units[form.code] = frozenset(form.rated_units)
        return rated

    def tally(self) -> Tally:
        """The counts so far as a Tally: weight sums are count x weight, exact."""
        out = Tally(ballots=dict(sorted(self.ballots.items())))
        for (u, f, q, o), n in sorted(self.options.items()):
            weight = self._forms[f][1][q][o]
            count = out.questions.setdefault((u, f, q), QuestionCount())
            if weight is None:
                count.dont_know_count += n
            else:
                count.answered_count += n
                count.weight_sum = _add_exact(count.weight_sum, _mul_exact(weight, n))
        return out


def _mul_exact(weight: Decimal, n: int) -> Decimal:
    """n copies of a weight added up, exactly (the same value and exponent as n additions)."""
    with localcontext() as ctx:
        ctx.prec = 50
        ctx.traps[Inexact] = True
        return weight * n


# --- results -----------------------------------------------------------------------------
@dataclass(frozen=True)
class QuestionResult:
    question_id: str
    max_points: Decimal
    answered_count: int
    dont_know_count: int
    weight_sum: Decimal
    mean_weight: Fraction | None  # None: nobody answered with a weight
    score: Fraction  # max_points x mean_weight, 0 when mean_weight is None
    score_rounded: Decimal


@dataclass(frozen=True)
class CriterionResult:
    code: str
    max_points: Decimal
    score: Fraction  # sum of its questions' exact scores
    score_rounded: Decimal
    questions: tuple[QuestionResult, ...]


@dataclass(frozen=True)
class FormResult:
    unit_code: str
    form_code: str
    received: int
    quota: int | None
    completion: Fraction | None  # received / quota, uncapped; None without a quota
    factor: Fraction  # min(1, completion); 1 without a quota
    raw: Fraction
    adjusted: Fraction  # raw x factor
    penalty: Fraction  # raw - adjusted
    raw_rounded: Decimal
    adjusted_rounded: Decimal
    penalty_rounded: Decimal
    criteria: tuple[CriterionResult, ...]


@dataclass(frozen=True)
class UnitResult:
    unit_code: str
    kind: UnitKind
    forms: tuple[FormResult, ...]
    raw: Fraction  # sum of the forms' exact raw scores
    total: Fraction  # sum of the forms' exact adjusted scores: the survey score
    raw_rounded: Decimal
    total_rounded: Decimal
    rank: int  # competition rank within `kind`, by exact total


@dataclass(frozen=True)
class Results:
    campaign_id: str
    campaign_version: int
    places: int
    mode: RoundingMode
    units: tuple[UnitResult, ...]  # sorted by unit_code

    def unit(self, code: str) -> UnitResult:
        return next(u for u in self.units if u.unit_code == code)

    def form(self, unit_code: str, form_code: str) -> FormResult:
        return next(f for f in self.unit(unit_code).forms if f.form_code == form_code)


def forms_rating(campaign: Campaign, unit_code: str, tally: Tally) -> list[Form]:
    """The forms that rate a unit, in campaign order.

    many_units: the unit is in rated_units. own_unit: the unit's kind is a respondent kind of
    the form, or the form has a quota naming the unit, or ballots of it rated the unit. So a
    unit that should have been rated but received nothing still appears, scoring 0.
    """
    kind = campaign.unit(unit_code).kind
    out = []
    for form in campaign.forms:
        if form.rates == "many_units":
            rated = unit_code in form.rated_units
        else:
            rated = (
                kind in form.respondent_unit_kinds
                or any(
                    q.form_code == form.code and q.unit_code == unit_code for q in campaign.quotas
                )
                or tally.ballots.get((unit_code, form.code), 0) > 0
            )
        if rated:
            out.append(form)
    return out


def compute_results(campaign: Campaign, tally: Tally) -> Results:
    """Score every unit that at least one form rates; see docs/scoring-method.md."""
    places, mode = campaign.rounding.places, campaign.rounding.mode

    def rnd(x: Fraction) -> Decimal:
        return round_exact(x, places, mode)

    units: list[UnitResult] = []
    for unit in sorted(campaign.units, key=lambda u: u.code):
        forms: list[FormResult] = []
        for form in forms_rating(campaign, unit.code, tally):
            criteria: list[CriterionResult] = []
            for criterion in form.criteria:
                qrs: list[QuestionResult] = []
                for q in criterion.questions:
                    c = tally.questions.get((unit.code, form.code, q.id), QuestionCount())
                    mean = Fraction(c.weight_sum) / c.answered_count if c.answered_count else None
                    score = Fraction(q.max_points) * mean if mean is not None else _ZERO
                    qrs.append(
                        QuestionResult(
                            q.id, q.max_points, c.answered_count, c.dont_know_count,
                            c.weight_sum, mean, score, rnd(score),
                        )
                    )  # fmt: skip
                cscore = sum((r.score for r in qrs), _ZERO)
                criteria.append(
                    CriterionResult(
                        criterion.code, criterion.max_points, cscore, rnd(cscore), tuple(qrs)
                    )
                )
            raw = sum((c.score for c in criteria), _ZERO)
            received = tally.ballots.get((unit.code, form.code), 0)
            quota = campaign.quota(form.code, unit.code)
            completion = Fraction(received, quota) if quota is not None else None
            factor = min(_ONE, completion) if completion is not None else _ONE
            adjusted = raw * factor
            forms.append(
                FormResult(
                    unit.code, form.code, received, quota, completion, factor,
                    raw, adjusted, raw - adjusted,
                    rnd(raw), rnd(adjusted), rnd(raw - adjusted), tuple(criteria),
                )
            )  # fmt: skip
        if not forms:
            continue
        raw = sum((f.raw for f in forms), _ZERO)
        total = sum((f.adjusted for f in forms), _ZERO)
        units.append(
            UnitResult(unit.code, unit.kind, tuple(forms), raw, total, rnd(raw), rnd(total), 0)
        )
    ranked = _rank(units)
    return Results(campaign.id, campaign.version, places, mode, tuple(ranked))


def _rank(units: list[UnitResult]) -> list[UnitResult]:
    """Competition ranking (1, 1, 3) within each kind by exact total, descending."""
    by_code: dict[str, UnitResult] = {}
    for kind in {u.kind for u in units}:
        members = sorted(
            (u for u in units if u.kind == kind), key=lambda u: (-u.total, u.unit_code)
        )
        for i, u in enumerate(members):
            tied = i > 0 and members[i - 1].total == u.total
            rank = by_code[members[i - 1].unit_code].rank if tied else i + 1
            by_code[u.unit_code] = replace(u, rank=rank)
    return [by_code[u.unit_code] for u in units]


# --- publication -------------------------------------------------------------------------
def _row_key(row: ResultRow) -> tuple[str, bool, str]:
    return (row.unit_code, row.form_code is None, row.form_code or "")


def result_rows(results: Results) -> list[ResultRow]:
    """One row per unit x form plus one total row per unit (form_code None), sorted by
    (unit_code, form_code) with the total row last.

    Total row: raw / adjusted are rounded from the exact sums (not sums of rounded rows),
    received is the sum over forms, quota the sum of quotas (None unless every form has one),
    and rank is set only there.
    """
    rows: list[ResultRow] = []
    for u in results.units:
        for f in u.forms:
            rows.append(
                ResultRow(
                    unit_code=u.unit_code,
                    unit_kind=u.kind.value,
                    form_code=f.form_code,
                    received=f.received,
                    quota=f.quota,
                    raw=fixed(f.raw_rounded),
                    adjusted=fixed(f.adjusted_rounded),
                )
            )
        quotas = [f.quota for f in u.forms]
        rows.append(
            ResultRow(
                unit_code=u.unit_code,
                unit_kind=u.kind.value,
                form_code=None,
                received=sum(f.received for f in u.forms),
                quota=None if any(q is None for q in quotas) else sum(q or 0 for q in quotas),
                raw=fixed(u.raw_rounded),
                adjusted=fixed(u.total_rounded),
                rank=u.rank,
            )
        )
    return sorted(rows, key=_row_key)


def canonical_bytes(rows: Iterable[ResultRow]) -> bytes:
    """The one byte string a set of result rows serialises to, on any machine.

    Canonical because: rows are put in the result_rows order (unit_code, form_code, total
    last) whatever order they arrive in; each row is its full JSON dump (every field present,
    None as null); keys are sorted; separators carry no whitespace; numbers are only ints,
    since scores are fixed-decimal strings (no float repr to differ); and the text is UTF-8
    without \\u escapes, so each string has exactly one encoding.
    """
    data = [r.model_dump(mode="json") for r in sorted(rows, key=_row_key)]
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def digest(rows: Iterable[ResultRow]) -> str:
    """sha256 hex of canonical_bytes(rows): ResultsPublished.digest."""
    return hashlib.sha256(canonical_bytes(rows)).hexdigest()


# --- lookups that raise ValueError (Campaign's own raise StopIteration) ------------------
def _form(campaign: Campaign, code: str) -> Form:
    for f in campaign.forms:
        if f.code == code:
            return f
    raise ValueError(f"unknown form {code}")


def _unit_kind(campaign: Campaign, code: str) -> UnitKind:
    for u in campaign.units:
        if u.code == code:
            return u.kind
    raise ValueError(f"unknown unit {code}")
