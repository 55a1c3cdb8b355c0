"""The campaign definition: the survey methodology as data.

CampaignDefined carries one of these whole, so every service (and every auditor) reads the
methodology from the log, never from a file on some machine.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from contracts.numbers import (
    CampaignVersion,
    OffsetDays,
    Places,
    Points,
    PositiveQuota,
    ReportSize,
    Weight,
    Year,
)
from contracts.text import Name, NonEmptyName, Text

SUBJECT_TOKEN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
CODE = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"
# Every string is a contracts.text.Text (docs/architecture.md, decision 17).
Code = Annotated[str, Text(32, pattern=CODE)]
Token = Annotated[str, Text(64, pattern=SUBJECT_TOKEN)]
Ref = Annotated[str, Text(32)]  # a reference to a code, checked against the codes by Campaign
QuestionText = Annotated[str, Text(2000, min_length=1, multiline=True)]
OptionalQuestionText = Annotated[str, Text(2000, multiline=True)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UnitKind(StrEnum):
    department = "department"  # sở ngành
    public_service_unit = "public_service_unit"  # đơn vị sự nghiệp công lập tỉnh
    central_agency = "central_agency"  # cơ quan Trung ương đặt tại tỉnh
    district = "district"  # UBND cấp huyện


class DedupeRule(StrEnum):
    single_by_priority = "single_by_priority"  # 2023 plan: one ballot, highest-priority form
    one_per_group = "one_per_group"  # 2021 notice: one ballot per group the person is in


class Unit(Strict):
    code: Code
    name: NonEmptyName
    name_en: Name | None = None
    kind: UnitKind


class AnswerOption(Strict):
    code: Code
    label: NonEmptyName
    label_en: Name | None = None
    # None means "counts as no answer" (e.g. "Không biết"): excluded from the mean.
    weight: Weight | None = None


class Question(Strict):
    id: Code
    text: QuestionText
    text_en: OptionalQuestionText | None = None
    max_points: Points
    options: list[AnswerOption] = Field(min_length=2, max_length=100)
    required: bool = True

    @model_validator(mode="after")
    def _unique_options(self) -> Question:
        codes = [o.code for o in self.options]
        if len(codes) != len(set(codes)):
            raise ValueError(f"duplicate option codes in question {self.id}")
        if all(o.weight is None for o in self.options):
            raise ValueError(f"question {self.id} has no weighted option")
        return self


class Criterion(Strict):
    code: Code
    name: NonEmptyName
    name_en: Name | None = None
    max_points: Points
    questions: list[Question] = Field(min_length=1)

    @model_validator(mode="after")
    def _points_add_up(self) -> Criterion:
        total = sum((q.max_points for q in self.questions), Decimal(0))
        if total != self.max_points:
            raise ValueError(
                f"criterion {self.code}: questions' max_points sum to {total}, "
                f"not {self.max_points}"
            )
        return self


class Form(Strict):
    code: Code
    name: NonEmptyName
    name_en: Name | None = None
    group: Annotated[str, Text(64, min_length=1)] = Field(
        description="respondent group, e.g. provincial_delegate"
    )
    # own_unit: the ballot rates the respondent's own unit; many_units: it rates every rated_unit.
    rates: Literal["own_unit", "many_units"]
    respondent_unit_kinds: list[UnitKind] = Field(
        default_factory=list, description="kinds of unit a respondent of this form belongs to"
    )
    rated_units: list[Ref] = Field(default_factory=list, description="for many_units forms")
    criteria: list[Criterion] = Field(min_length=1)

    def questions(self) -> list[Question]:
        return [q for c in self.criteria for q in c.questions]

    @property
    def max_points(self) -> Decimal:
        return sum((c.max_points for c in self.criteria), Decimal(0))

    def short_name(self, lang: str = "vi") -> str:
        """The form as officials cite it in a table ("Phiếu số 01/CCHC23-ĐBHĐND(CT)"): its name
        up to the first colon, or the whole name when it has no short head before one."""
        name = self.name_en if lang == "en" and self.name_en else self.name
        head, colon, _ = name.partition(":")
        head = head.strip()
        return head if colon and 0 < len(head) <= SHORT_NAME_MAX else name


SHORT_NAME_MAX = 40  # a form's number with its series; longer heads are sentences


class Quota(Strict):
    form_code: Ref
    unit_code: Ref | None = Field(
        default=None, description="None: a form-wide quota, applied to every unit the form rates"
    )
    ballots: PositiveQuota


class WaveMember(Strict):
    form_code: Ref
    unit_codes: list[Ref] | None = None  # None: every unit of the form


class Wave(Strict):
    id: Token
    opens_at: datetime
    members: list[WaveMember] = Field(min_length=1)

    @field_validator("opens_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("opens_at needs a UTC offset, e.g. 2023-09-21T07:00:00+07:00")
        return v


class Rounding(Strict):
    places: Places = 2
    mode: Literal["ROUND_HALF_UP", "ROUND_HALF_EVEN"] = "ROUND_HALF_UP"


class ReportHeader(Strict):
    """Who issues the official results report (Báo cáo kết quả điều tra xã hội học).

    Every field is optional: the report falls back to "UBND TỈNH <PROVINCE>", "SỞ NỘI VỤ",
    number suffix "BC-SNV", the province as the place and no signer's name (left to sign by
    hand), so campaigns defined before these fields existed still print a valid header.
    """

    parent_agency: Name | None = Field(default=None, description='e.g. "UBND TỈNH SÓC TRĂNG"')
    agency: Name | None = Field(default=None, description='e.g. "SỞ NỘI VỤ"')
    number_suffix: Annotated[str, Text(32)] | None = Field(
        default=None, description='after "Số: …/", e.g. "BC-SNV"'
    )
    place: Name | None = Field(default=None, description='the date line\'s place, "Sóc Trăng"')
    signer_title: Name | None = Field(default=None, description='e.g. "KT. GIÁM ĐỐC"')
    signer_subtitle: Name | None = Field(default=None, description='e.g. "PHÓ GIÁM ĐỐC"')
    signer_name: Name | None = None


class Campaign(Strict):
    id: Token
    version: CampaignVersion = 1
    name: NonEmptyName
    province: Name
    year: Year
    timezone: Annotated[str, Text(64)] = "Asia/Ho_Chi_Minh"
    units: list[Unit] = Field(min_length=1)
    forms: list[Form] = Field(min_length=1)
    quotas: list[Quota] = Field(default_factory=list)
    waves: list[Wave] = Field(min_length=1)
    deadline: datetime
    dedupe_rule: DedupeRule = DedupeRule.single_by_priority
    # Forms in priority order for single_by_priority (2023: provincial delegate > district > staff).
    form_priority: list[Ref] = Field(default_factory=list)
    reminder_offsets_days: list[OffsetDays] = Field(default_factory=lambda: [3, 1], max_length=30)
    min_report_size: ReportSize = 10
    rounding: Rounding = Rounding()
    report: ReportHeader = ReportHeader()
    helpline: Name | None = Field(
        default=None,
        description="who respondents call when a password fails, e.g. "
        '"0299 3822 345 (Sở Nội vụ, giờ hành chính)"; shown on login pages and in mails',
    )

    @field_validator("deadline")
    @classmethod
    def _deadline_aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("deadline needs a UTC offset, e.g. 2023-10-06T23:59:59+07:00")
        return v

    @model_validator(mode="after")
    def _references(self) -> Campaign:
        units = {u.code for u in self.units}
        forms = {f.code: f for f in self.forms}
        errors: list[str] = []
        if len(units) != len(self.units):
            errors.append("duplicate unit codes")
        if len(forms) != len(self.forms):
            errors.append("duplicate form codes")
        for f in self.forms:
            for u in f.rated_units:
                if u not in units:
                    errors.append(f"form {f.code} rates unknown unit {u}")
            if f.rates == "many_units" and not f.rated_units:
                errors.append(f"form {f.code} rates many_units but lists no rated_units")
            qids = [q.id for q in f.questions()]
            if len(qids) != len(set(qids)):
                errors.append(f"form {f.code} has duplicate question ids")
        for q in self.quotas:
            if q.form_code not in forms:
                errors.append(f"quota names unknown form {q.form_code}")
            if q.unit_code is not None and q.unit_code not in units:
                errors.append(f"quota names unknown unit {q.unit_code}")
        for w in self.waves:
            if w.opens_at >= self.deadline:
                errors.append(f"wave {w.id} opens after the deadline")
            for m in w.members:
                if m.form_code not in forms:
                    errors.append(f"wave {w.id} names unknown form {m.form_code}")
                for u in m.unit_codes or []:
                    if u not in units:
                        errors.append(f"wave {w.id} names unknown unit {u}")
        for code in self.form_priority:
            if code not in forms:
                errors.append(f"form_priority names unknown form {code}")
        if errors:
            raise ValueError("; ".join(errors))
        return self

    # Lookups used by every service -------------------------------------------------------
    def unit(self, code: str) -> Unit:
        return next(u for u in self.units if u.code == code)

    def form(self, code: str) -> Form:
        return next(f for f in self.forms if f.code == code)

    def units_rated_by(self, form_code: str, respondent_unit: str | None) -> list[str]:
        form = self.form(form_code)
        if form.rates == "many_units":
            return list(form.rated_units)
        return [respondent_unit] if respondent_unit else []

    def quota(self, form_code: str, unit_code: str) -> int | None:
        for q in self.quotas:
            if q.form_code == form_code and q.unit_code == unit_code:
                return q.ballots
        for q in self.quotas:
            if q.form_code == form_code and q.unit_code is None:
                return q.ballots
        return None

    def wave_for(self, form_code: str, unit_code: str | None) -> Wave | None:
        for w in self.waves:
            for m in w.members:
                if m.form_code == form_code and (
                    m.unit_codes is None or (unit_code is not None and unit_code in m.unit_codes)
                ):
                    return w
        return None

    def total_quota(self) -> int:
        return sum(q.ballots for q in self.quotas)
