"""Respondent import: a unit's list (.xlsx/.csv) -> a checked, deduplicated ImportPlan.

Pure: no database, no network. The admin uploads a list, sees every problem at once (row,
column, Vietnamese and English message) and nothing is imported until the file is clean.
Respondent ids are derived from campaign + e-mail + form, so importing the same file twice
changes nothing and a corrected file shows up as just its differences (diff_against).

Entry points: parse_import(content, filename, campaign) and diff_against(plan, existing).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from contracts.campaign import Campaign, Form, Unit
from contracts.events import RespondentRegistered, RespondentUpdated
from contracts.text import text_problem
from services.identity.importer_read import (
    HEADER_LABEL,
    HEADERS,
    MAX_BYTES,
    MAX_ROWS,
    ROLE_FIELDS,
    FileRejected,
    ImportProblem,
    Table,
    fold,
    read_tables,
)
from services.identity.importer_rules import Candidate, Merge, resolve

__all__ = [
    "MAX_BYTES",
    "MAX_ROWS",
    "ImportDiff",
    "ImportPlan",
    "ImportProblem",
    "Merge",
    "PlannedRespondent",
    "UpdatedRespondent",
    "diff_against",
    "parse_import",
    "respondent_id_for",
    "username_for",
]

# Deliberately simple: something@domain.tld, no quoted local parts or IP literals.
EMAIL_RE = re.compile(
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$"
)
PHONE_RE = re.compile(r"^\+?[0-9]{8,15}$")
NATIONAL_ID_RE = re.compile(r"^(?:[0-9]{9}|[0-9]{12})$")  # old CMND 9 digits, CCCD 12
TRUE_WORDS = {"x", "1", "co", "yes", "true", "y"}
FALSE_WORDS = {"0", "khong", "no", "false", "n"}
FORMULA_START = ("=", "+", "-", "@")
MAX_TEXT = 254
PROVINCIAL_GROUP, PROVINCIAL_CODE = "provincial_delegate", "01"
DISTRICT_GROUP, DISTRICT_CODE = "district_delegate", "02"
COMPARED = (
    "username",
    "full_name",
    "email",
    "unit_code",
    "form_code",
    "roles",
    "phone",
    "national_id",
    "position",
)
UPDATABLE = ("full_name", "email", "unit_code", "phone", "position")  # RespondentUpdated's


@dataclass(frozen=True)
class PlannedRespondent:
    """A registration the import would make; field names match RespondentRegistered."""

    respondent_id: str
    username: str
    full_name: str
    email: str
    unit_code: str | None  # None for forms without respondent unit kinds (form 01)
    form_code: str
    roles: list[str]
    phone: str | None = None
    national_id: str | None = None  # kept for matching only; the event does not carry it
    position: str | None = None

    def to_event(self) -> RespondentRegistered:
        return RespondentRegistered(
            respondent_id=self.respondent_id,
            username=self.username,
            full_name=self.full_name,
            email=self.email,
            unit_code=self.unit_code,
            form_code=self.form_code,
            roles=list(self.roles),
            phone=self.phone,
            position=self.position,
        )


@dataclass
class ImportPlan:
    """What importing the file would do. Callers must check `ok`: any problem imports nothing."""

    registrations: list[PlannedRespondent] = field(default_factory=list)
    problems: list[ImportProblem] = field(default_factory=list)
    merges: list[Merge] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def importable(self) -> list[PlannedRespondent]:
        """The registrations if the file is clean, else none: a half-good file imports nothing."""
        return list(self.registrations) if self.ok else []


@dataclass(frozen=True)
class UpdatedRespondent:
    respondent: PlannedRespondent
    changes: dict[str, tuple[Any, Any]]  # field -> (existing, imported)

    def to_event(self) -> RespondentUpdated | None:
        """The RespondentUpdated for the fields that event can carry (None if none changed)."""
        carried = {
            k: new for k, (_, new) in self.changes.items() if k in UPDATABLE and new is not None
        }
        if not carried:
            return None
        return RespondentUpdated(respondent_id=self.respondent.respondent_id, **carried)


@dataclass
class ImportDiff:
    new: list[PlannedRespondent] = field(default_factory=list)
    updated: list[UpdatedRespondent] = field(default_factory=list)
    unchanged: list[PlannedRespondent] = field(default_factory=list)
    # Existing ids absent from this file. Informational: a file may cover one unit only, so
    # withdrawing them is the caller's decision, never automatic.
    missing: list[str] = field(default_factory=list)


# --- identity ------------------------------------------------------------------------------
def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def respondent_id_for(campaign_id: str, email: str, form_code: str) -> str:
    """Stable id: the same person and form in the same campaign always get the same id."""
    return "r-" + _digest(campaign_id, email.strip().lower(), form_code)[:16]


def username_for(campaign_id: str, email: str, form_code: str, suffix_len: int = 6) -> str:
    """Readable and stable: ascii of the e-mail's local part plus a short hash suffix."""
    local = re.sub(r"[^a-z0-9]", "", fold(email.split("@", 1)[0]))[:20] or "user"
    suffix = _digest("username", campaign_id, email.strip().lower(), form_code)[:suffix_len]
    return f"{local}-{suffix}"


# --- cells ---------------------------------------------------------------------------------
def _clean(text: str) -> str:
    text = unicodedata.normalize("NFC", text).replace("\u00a0", " ")
    text = re.sub(r"[\u200b\u200c\u200d\ufeff]", "", text)
    return " ".join(text.split())


class _Row:
    """One data row being checked: collects its problems with the right row/column."""

    def __init__(self, table: Table, number: int, cells: list[object]) -> None:
        self.table, self.number, self.cells = table, number, cells
        self.problems: list[ImportProblem] = []

    def column(self, name: str) -> str:
        col = self.table.columns.get(name)
        return col.header if col else HEADER_LABEL.get(name, name)

    def raw(self, name: str) -> object:
        col = self.table.columns.get(name)
        if col is None or col.index >= len(self.cells):
            return None
        return self.cells[col.index]

    def problem(self, name: str, code: str, vi: str, en: str) -> None:
        self.problems.append(
            ImportProblem(self.number, self.column(name), code, vi, en, self.table.sheet)
        )

    def text(self, name: str) -> str | None:
        """The cell as clean text, or None; wrong types and formula-like text are reported."""
        value = self.raw(name)
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            if name in ("full_name", "email"):
                self._wrong_type(name, value)
                return None
            digits = str(value)
            # Excel drops leading zeros of numbers typed as numbers: VN mobiles have 10 digits,
            # CCCD 12, CMND 9, and all start with 0 when one digit short.
            if name == "phone" and len(digits) == 9:
                digits = "0" + digits
            if name == "national_id" and len(digits) in (8, 11):
                digits = "0" + digits
            return digits
        if not isinstance(value, str):
            self._wrong_type(name, value)
            return None
        text = _clean(value)
        if not text:
            return None
        if text_problem(text) is not None:  # unstorable: never reaches the log (decision 17)
            self.problem(
                name,
                "bad_characters",
                "Ô chứa ký tự không được phép (ký tự điều khiển hoặc ký tự hỏng): hãy gõ lại.",
                "Cell holds a character that is not allowed (a control character or a broken "
                "one): type it again.",
            )
            return None
        if text.startswith(FORMULA_START) and not (name == "phone" and PHONE_RE.match(text)):
            self.problem(
                name,
                "formula_injection",
                f"Ô bắt đầu bằng «{text[0]}» (có thể là công thức): hãy xóa ký tự đó.",
                f"Cell starts with '{text[0]}' (possible formula injection): remove it.",
            )
            return None
        if len(text) > MAX_TEXT:
            self.problem(
                name,
                "too_long",
                f"Nội dung dài quá {MAX_TEXT} ký tự.",
                f"Value longer than {MAX_TEXT} characters.",
            )
            return None
        return text

    def _wrong_type(self, name: str, value: object) -> None:
        kind = type(value).__name__
        self.problem(
            name,
            "unexpected_type",
            f"Ô chứa giá trị kiểu {kind} ({value!s:.40}); cần nhập dạng văn bản.",
            f"Cell holds a {kind} ({value!s:.40}); text was expected.",
        )

    def flag(self, name: str) -> bool:
        value = self.raw(name)
        if value is None or isinstance(value, bool):
            return bool(value)
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        text = self.text(name) if isinstance(value, str) else None
        if isinstance(value, str) and text is None:
            return False  # empty, or already reported (formula)
        word = fold(text or str(value))
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        self.problem(
            name,
            "bad_flag",
            f"Giá trị «{value!s:.40}» không hiểu được; dùng x, 1, có hoặc để trống.",
            f"Value '{value!s:.40}' not understood; use x, 1, yes or leave empty.",
        )
        return False


# --- campaign lookups ----------------------------------------------------------------------
class _Lookup:
    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        self.units: dict[str, Unit] = {}
        for u in campaign.units:  # names first, codes win on a clash
            for name in (u.name, u.name_en):
                if name:
                    self.units.setdefault(_clean(name).casefold(), u)
        for u in campaign.units:
            self.units[u.code.casefold()] = u
        self.forms = {f.code.casefold(): f for f in campaign.forms}

    def unit(self, text: str) -> Unit | None:
        return self.units.get(_clean(text).casefold())

    def form(self, text: str) -> Form | None:
        """'03', '3', 'Phiếu số 03/CCHC23-CCVC(SN)' all mean form 03."""
        exact = self.forms.get(text.casefold())
        if exact is not None:
            return exact
        folded = fold(text)
        m = re.match(r"^(?:(?:phieu|mau|so|form|nhom)\s+)*0*(\d+)\b", folded)
        if m is None:
            # A "Nhóm" column may name the group instead: "provincial_delegate", "Đại biểu
            # HĐND tỉnh". Staff groups need the unit, so those are left to the role columns.
            for group, code in (
                (PROVINCIAL_GROUP, PROVINCIAL_CODE),
                (DISTRICT_GROUP, DISTRICT_CODE),
            ):
                if folded in HEADERS[group]:
                    return self.group_form(group, code)
            return next((f for f in self.campaign.forms if fold(f.group) == folded), None)
        n = int(m.group(1))
        return next((f for f in self.campaign.forms if f.code.isdigit() and int(f.code) == n), None)

    def group_form(self, group: str, code: str) -> Form | None:
        by_group = [f for f in self.campaign.forms if f.group == group]
        return by_group[0] if by_group else self.forms.get(code.casefold())

    def staff_form(self, unit: Unit) -> Form | None:
        """The non-delegate form answered by staff/leaders of this kind of unit."""
        delegate = {
            f.code
            for f in (
                self.group_form(PROVINCIAL_GROUP, PROVINCIAL_CODE),
                self.group_form(DISTRICT_GROUP, DISTRICT_CODE),
            )
            if f is not None
        }
        fits = [
            f
            for f in self.campaign.forms
            if unit.kind in f.respondent_unit_kinds and f.code not in delegate
        ]
        return fits[0] if fits else None


# --- rows ----------------------------------------------------------------------------------
def _check_row(row: _Row, look: _Lookup, unit_column_reported: set[int]) -> list[Candidate]:
    name = row.text("full_name")
    cols = row.table.columns  # an absent column is reported once, at the header
    if name is None and not row.problems and "full_name" in cols:
        row.problem("full_name", "missing_name", "Thiếu họ và tên.", "Full name is missing.")

    email = row.text("email")
    if email is not None:
        email = email.lower()
        if not EMAIL_RE.match(email) or len(email) > 254:
            row.problem(
                "email",
                "bad_email",
                f"Email «{email}» không hợp lệ.",
                f"E-mail '{email}' is not valid.",
            )
            email = None
    elif "email" in cols and not any(p.column == row.column("email") for p in row.problems):
        row.problem("email", "missing_email", "Thiếu email.", "E-mail is missing.")

    phone = row.text("phone")
    if phone is not None:
        phone = re.sub(r"[\s.()-]", "", phone)
        if not PHONE_RE.match(phone):
            row.problem(
                "phone",
                "bad_phone",
                f"Số điện thoại «{phone}» không hợp lệ.",
                f"Phone number '{phone}' is not valid.",
            )
            phone = None
    position = row.text("position")
    if position is not None and len(position) > 200:
        position = position[:200]
    nid = row.text("national_id")
    if nid is not None:
        nid = nid.replace(" ", "")
        if not NATIONAL_ID_RE.match(nid):
            row.problem(
                "national_id",
                "bad_national_id",
                f"Số CCCD «{nid}» phải gồm 12 chữ số (hoặc CMND 9 chữ số).",
                f"National id '{nid}' must have 12 digits (or 9 for an old CMND).",
            )
            nid = None

    roles = [r for r in ROLE_FIELDS if r in row.table.columns and row.flag(r)]
    form_text = row.text("form")
    unit_text = row.text("unit")

    # Which forms: the form cell if filled, else what the role flags say the person is.
    forms: list[Form] = []
    wants_staff = False
    if form_text is not None:
        form = look.form(form_text)
        if form is None:
            row.problem(
                "form",
                "unknown_form",
                f"Phiếu «{form_text}» không có trong đợt khảo sát.",
                f"Form '{form_text}' is not part of this campaign.",
            )
        else:
            forms.append(form)
    elif not any(p.column == row.column("form") for p in row.problems):
        for role, group, code in (
            ("provincial_delegate", PROVINCIAL_GROUP, PROVINCIAL_CODE),
            ("district_delegate", DISTRICT_GROUP, DISTRICT_CODE),
        ):
            if role in roles and (f := look.group_form(group, code)) is not None:
                forms.append(f)
        wants_staff = "staff" in roles or "leader" in roles
        if not roles and ("form" in cols or any(r in cols for r in ROLE_FIELDS)):
            row.problem(
                "form",
                "missing_form",
                "Thiếu phiếu: ghi mã phiếu (vd. 03) hoặc đánh dấu nhóm đối tượng.",
                "Form missing: give the form code (e.g. 03) or mark the respondent's group.",
            )

    unit: Unit | None = None
    if wants_staff or any(f.respondent_unit_kinds for f in forms):
        if "unit" not in row.table.columns:
            if id(row.table) not in unit_column_reported:
                unit_column_reported.add(id(row.table))
                row.problems.append(
                    ImportProblem(
                        row.table.header_row,
                        HEADER_LABEL["unit"],
                        "missing_column",
                        "Thiếu cột bắt buộc «Mã đơn vị» ở dòng tiêu đề.",
                        "Required column 'Mã đơn vị' (unit) is missing from the header row.",
                        row.table.sheet,
                    )
                )
        elif unit_text is None:
            if not any(p.column == row.column("unit") for p in row.problems):
                row.problem("unit", "missing_unit", "Thiếu đơn vị.", "Unit is missing.")
        elif (unit := look.unit(unit_text)) is None:
            row.problem(
                "unit",
                "unknown_unit",
                f"Đơn vị «{unit_text}» không có trong đợt khảo sát (ghi mã hoặc đúng tên đơn vị).",
                f"Unit '{unit_text}' is not in this campaign (use its code or exact name).",
            )
    if unit is not None and wants_staff:
        staff = look.staff_form(unit)
        if staff is None:
            row.problem(
                "unit",
                "no_form_for_unit",
                f"Không có phiếu cán bộ, công chức nào cho đơn vị «{unit.name}».",
                f"No staff form covers unit '{unit.code}'.",
            )
        elif staff not in forms:
            forms.append(staff)
    for f in forms:
        if (
            unit is not None
            and f.respondent_unit_kinds
            and unit.kind not in f.respondent_unit_kinds
        ):
            row.problem(
                "form" if form_text is not None else "unit",
                "form_not_allowed_for_unit",
                f"Phiếu {f.code} không dành cho đơn vị «{unit.name}» ({unit.kind.value}).",
                f"Form {f.code} is not for unit {unit.code} ({unit.kind.value}).",
            )

    if row.problems or name is None or email is None:
        return []
    own_roles = tuple(roles)
    return [
        Candidate(
            row=row.number,
            sheet=row.table.sheet,
            email=email,
            email_column=row.column("email"),
            form_code=f.code,
            unit_code=unit.code if (unit is not None and f.respondent_unit_kinds) else None,
            full_name=name,
            phone=phone,
            national_id=nid,
            roles=own_roles or (f.group,),
            position=position,
        )
        for f in forms
    ]


def parse_import(content: bytes, filename: str, campaign: Campaign) -> ImportPlan:
    """Read, check and deduplicate a respondent list. Never raises for bad input."""
    try:
        tables, problems = read_tables(content, filename)
    except FileRejected as exc:
        return ImportPlan(problems=[exc.problem])
    if not problems and not any(t.rows for t in tables):
        problems.append(
            ImportProblem(
                tables[0].header_row if tables else 1,
                "",
                "empty_file",
                "Tệp không có dòng dữ liệu nào dưới dòng tiêu đề.",
                "The file has no data rows below the header.",
                tables[0].sheet if tables else None,
            )
        )
    look = _Lookup(campaign)
    candidates: list[Candidate] = []
    reported: set[int] = set()
    for table in tables:
        for number, cells in table.rows:
            row = _Row(table, number, cells)
            candidates += _check_row(row, look, reported)
            problems += row.problems
    kept, merges, rule_problems = resolve(candidates, campaign)
    problems += rule_problems
    sheet_order = {t.sheet: i for i, t in enumerate(tables)}
    problems.sort(key=lambda p: (sheet_order.get(p.sheet, 0), p.row))

    registrations = [
        PlannedRespondent(
            respondent_id=respondent_id_for(campaign.id, c.email, c.form_code),
            username=username_for(campaign.id, c.email, c.form_code),
            full_name=c.full_name,
            email=c.email,
            unit_code=c.unit_code,
            form_code=c.form_code,
            roles=list(c.roles),
            phone=c.phone,
            national_id=c.national_id,
            position=c.position,
        )
        for c in kept
    ]
    taken = [r.username for r in registrations]
    if len(set(taken)) != len(taken):  # ~never with 6 hex; lengthen the clashing ones only
        registrations = [
            r
            if taken.count(r.username) == 1
            else replace(r, username=username_for(campaign.id, r.email, r.form_code, 12))
            for r in registrations
        ]
    return ImportPlan(registrations=registrations, problems=problems, merges=merges)


# --- diff ----------------------------------------------------------------------------------
_ABSENT = object()


def _field(obj: object, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, _ABSENT)
    return getattr(obj, name, _ABSENT)


def _same(name: str, old: Any, new: Any) -> bool:
    if name == "roles":
        return sorted(old or []) == sorted(new or [])
    return (old or None) == (new or None)


def diff_against(plan: ImportPlan, existing: Mapping[str, object]) -> ImportDiff:
    """What this plan changes relative to what is registered (respondent_id -> record).

    `existing` values may be PlannedRespondents, RespondentRegistered payloads, ORM rows or
    dicts: fields they do not have (e.g. national_id on the event) are not compared.
    Refuses a plan with problems, so a half-good file can never be imported by accident.
    """
    if not plan.ok:
        raise ValueError(f"import plan has {len(plan.problems)} problem(s); nothing to import")
    diff = ImportDiff()
    for r in plan.registrations:
        old = existing.get(r.respondent_id)
        if old is None:
            diff.new.append(r)
            continue
        changes: dict[str, tuple[Any, Any]] = {}
        for name in COMPARED:
            before = _field(old, name)
            if before is _ABSENT:
                continue
            after = getattr(r, name)
            if not _same(name, before, after):
                changes[name] = (before, after)
        if changes:
            diff.updated.append(UpdatedRespondent(r, changes))
        else:
            diff.unchanged.append(r)
    planned = {r.respondent_id for r in plan.registrations}
    diff.missing = sorted(k for k in existing if k not in planned)
    return diff
