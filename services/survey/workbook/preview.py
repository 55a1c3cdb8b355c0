"""What the preview page shows of a draft, computed without IO (docs/architecture.md, decision 38).

The quota table is units × forms with row and column totals; a form-wide quota (form 01's 51
ballots) is its own row, since it is one number for the form, not one per unit. Waves are placed
on a timeline from the first opening to the deadline. Clone moves a campaign to another year.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from contracts.campaign import Campaign
from services.survey.workbook import rules as r


@dataclass(frozen=True)
class QuotaRow:
    code: str
    name: str
    cells: list[int | None]  # one per form, in campaign order
    total: int


@dataclass(frozen=True)
class WaveStep:
    id: str
    opens_at: datetime  # local to the campaign's time zone
    day: int  # days after the first wave opens
    percent: int  # position between the first opening (0) and the deadline (100)
    members: list[tuple[str, list[str] | None]]  # form code, unit codes (None: every unit)


@dataclass(frozen=True)
class Preview:
    forms: list[str]
    rows: list[QuotaRow]
    form_wide: list[int | None]
    form_totals: list[int]
    total: int
    waves: list[WaveStep]
    deadline: datetime
    dedupe_vi: str
    dedupe_en: str


def preview(c: Campaign) -> Preview:
    forms = [f.code for f in c.forms]
    rows = []
    for u in c.units:
        cells: list[int | None] = [
            next((q.ballots for q in c.quotas if q.form_code == f and q.unit_code == u.code), None)
            for f in forms
        ]
        if any(cells):
            rows.append(QuotaRow(u.code, u.name, cells, sum(x or 0 for x in cells)))
    wide: list[int | None] = [
        next((q.ballots for q in c.quotas if q.form_code == f and q.unit_code is None), None)
        for f in forms
    ]
    totals = [sum(q.ballots for q in c.quotas if q.form_code == f) for f in forms]
    tz = r.campaign_zone(c.timezone, c.deadline)
    ordered = sorted(c.waves, key=lambda w: w.opens_at)
    start = ordered[0].opens_at
    span = max((c.deadline - start).total_seconds(), 1.0)
    steps = [
        WaveStep(
            w.id,
            r.local_naive(w.opens_at, tz),
            (w.opens_at - start).days,
            round(100 * (w.opens_at - start).total_seconds() / span),
            [(m.form_code, m.unit_codes) for m in w.members],
        )
        for w in ordered
    ]
    order = ", ".join(c.form_priority) or ", ".join(forms)
    if c.dedupe_rule.value == "single_by_priority":
        vi = (
            "Mỗi người chỉ trả lời một phiếu. Người thuộc nhiều nhóm trả lời phiếu có thứ tự ưu "
            f"tiên cao nhất (theo thứ tự: {order})."
        )
        en = (
            "Each person answers one ballot. Someone in several groups answers the form with "
            f"the highest priority (in order: {order})."
        )
    else:
        vi = "Người thuộc nhiều nhóm trả lời một phiếu cho mỗi nhóm mình thuộc về."
        en = "Someone in several groups answers one ballot for each group they belong to."
    return Preview(
        forms,
        rows,
        wide,
        totals,
        c.total_quota(),
        steps,
        r.local_naive(c.deadline, tz),
        vi,
        en,
    )


def _shift(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February in a year without one
        return moment.replace(year=moment.year + years, day=28)


def clone(c: Campaign, new_id: str, new_year: int) -> Campaign:
    """The campaign moved to `new_year` under `new_id`: every date moves by the same years,
    the year in its name follows, the version starts again at 1.

    Raises pydantic's ValidationError if the id or year is not acceptable.
    """
    years = new_year - c.year
    data = c.model_dump()
    data.update(
        id=new_id,
        version=1,
        year=new_year,
        name=c.name.replace(str(c.year), str(new_year)),
        deadline=_shift(c.deadline, years),
        waves=[{**w.model_dump(), "opens_at": _shift(w.opens_at, years)} for w in c.waves],
    )
    return Campaign.model_validate(data)
