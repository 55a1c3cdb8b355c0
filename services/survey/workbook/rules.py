"""What the workbook looks like and how one cell is read (docs/architecture.md, decision 38).

Every field of contracts.campaign.Campaign has a place here, so a campaign exported and read
back is the same campaign. Enumerations are written as Vietnamese words (data validation lists
in the template) and read back from those words or from the codes themselves.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from contracts.campaign import DedupeRule, UnitKind

# Sheets, in workbook order.
GUIDE = "Hướng dẫn"
SETTINGS = "Cài đặt"
UNITS = "Đơn vị"
FORMS = "Phiếu"
QUESTIONS = "Tiêu chí và câu hỏi"
SCALES = "Phương án trả lời"
QUOTAS = "Chỉ tiêu"
WAVES = "Đợt khảo sát"
DATA_SHEETS = (SETTINGS, UNITS, FORMS, QUESTIONS, SCALES, QUOTAS, WAVES)

# Headers of each table sheet: field -> header, in column order. `REQUIRED` lists the headers
# a sheet cannot do without (the English names are optional).
HEADERS: dict[str, dict[str, str]] = {
    SETTINGS: {"item": "Mục", "value": "Giá trị", "note": "Ghi chú"},
    UNITS: {
        "code": "Mã đơn vị",
        "name": "Tên đơn vị",
        "name_en": "Tên tiếng Anh",
        "kind": "Loại đơn vị",
    },
    FORMS: {
        "code": "Mã phiếu",
        "name": "Tên phiếu",
        "name_en": "Tên tiếng Anh",
        "group": "Nhóm người trả lời",
        "rates": "Đánh giá",
        "respondent_unit_kinds": "Loại đơn vị của người trả lời",
        "rated_units": "Các đơn vị được đánh giá",
    },
    QUESTIONS: {
        "form": "Mã phiếu",
        "criterion": "Mã tiêu chí",
        "criterion_name": "Tên tiêu chí",
        "criterion_name_en": "Tên tiêu chí (tiếng Anh)",
        "criterion_points": "Điểm tối đa của tiêu chí",
        "id": "Mã câu hỏi",
        "text": "Nội dung câu hỏi",
        "text_en": "Nội dung câu hỏi (tiếng Anh)",
        "points": "Điểm tối đa của câu hỏi",
        "required": "Bắt buộc",
        "scale": "Thang trả lời",
    },
    SCALES: {
        "scale": "Thang trả lời",
        "code": "Mã phương án",
        "label": "Phương án",
        "label_en": "Phương án (tiếng Anh)",
        "weight": "Trọng số",
    },
    QUOTAS: {"form": "Mã phiếu", "unit": "Mã đơn vị", "ballots": "Số phiếu"},
    WAVES: {
        "id": "Mã đợt",
        "opens_at": "Thời điểm mở",
        "form": "Mã phiếu",
        "units": "Các đơn vị",
    },
}
OPTIONAL = {"name_en", "criterion_name_en", "text_en", "label_en", "note"}

# The settings sheet: field -> the "Mục" label. Report header fields may stay empty.
SETTING_LABELS: dict[str, str] = {
    "id": "Mã đợt điều tra",
    "version": "Phiên bản",
    "name": "Tên đợt điều tra",
    "province": "Tỉnh",
    "year": "Năm",
    "timezone": "Múi giờ",
    "deadline": "Hạn chót trả lời phiếu",
    "dedupe_rule": "Quy tắc loại trùng",
    "form_priority": "Thứ tự ưu tiên phiếu",
    "reminder_offsets_days": "Nhắc trước hạn chót (số ngày)",
    "min_report_size": "Số phiếu tối thiểu để hiện phân bố",
    "rounding_places": "Số chữ số thập phân khi làm tròn",
    "rounding_mode": "Cách làm tròn",
    "report.parent_agency": "Cơ quan chủ quản (đầu báo cáo)",
    "report.agency": "Cơ quan ban hành báo cáo",
    "report.number_suffix": "Ký hiệu số báo cáo",
    "report.place": "Địa danh ghi ngày tháng",
    "report.signer_title": "Chức danh người ký",
    "report.signer_subtitle": "Chức danh người ký (dòng 2)",
    "report.signer_name": "Họ tên người ký",
}
SETTING_NOTES: dict[str, str] = {
    "id": "Chữ thường không dấu, số, dấu - hoặc _; ví dụ: angiang-2025",
    "version": "Để 1 với đợt mới",
    "timezone": "Thường là Asia/Ho_Chi_Minh",
    "deadline": "Ngày và giờ, ví dụ 06/10/2025 23:59:59",
    "form_priority": "Các mã phiếu, cách nhau bởi dấu phẩy, ưu tiên cao trước",
    "reminder_offsets_days": "Ví dụ: 3, 1 (nhắc 3 ngày và 1 ngày trước hạn)",
    "report.parent_agency": "Có thể để trống",
}
REQUIRED_SETTINGS = ("id", "name", "province", "year", "deadline")

KIND_LABELS: dict[UnitKind, str] = {
    UnitKind.department: "Sở ngành",
    UnitKind.public_service_unit: "Đơn vị sự nghiệp công lập tỉnh",
    UnitKind.central_agency: "Cơ quan Trung ương đặt tại tỉnh",
    UnitKind.district: "UBND cấp huyện",
}
RATES_LABELS = {"own_unit": "Đơn vị của người trả lời", "many_units": "Nhiều đơn vị"}
DEDUPE_LABELS: dict[DedupeRule, str] = {
    DedupeRule.single_by_priority: "Mỗi người một phiếu, theo thứ tự ưu tiên",
    DedupeRule.one_per_group: "Mỗi nhóm một phiếu",
}
DEDUPE_WORDS_EN: dict[DedupeRule, str] = {
    DedupeRule.single_by_priority: "One ballot per person, the highest-priority form",
    DedupeRule.one_per_group: "One ballot for each group the person belongs to",
}
ROUNDING_LABELS = {
    "ROUND_HALF_UP": "Làm tròn lên từ 5 (ROUND_HALF_UP)",
    "ROUND_HALF_EVEN": "Làm tròn về số chẵn (ROUND_HALF_EVEN)",
}
YES, NO = "Có", "Không"
DATETIME_FORMAT = "dd/mm/yyyy hh:mm:ss"
T = TypeVar("T")
MAX_ROWS_PER_SHEET = 5000  # a province's campaign has a few hundred rows at most


@dataclass(frozen=True)
class Problem:
    """One thing to fix, where the person will look for it: sheet, row, column."""

    sheet: str
    row: int  # 1-based; 0 when the whole sheet is concerned
    column: str  # the header, "" for the whole row or sheet
    message_vi: str
    message_en: str

    def to_dict(self) -> dict[str, object]:
        return {
            "sheet": self.sheet,
            "row": self.row,
            "column": self.column,
            "message_vi": self.message_vi,
            "message_en": self.message_en,
        }


class BadCell(ValueError):
    """A cell that cannot be read as the type its column needs; carries both languages."""

    def __init__(self, vi: str, en: str) -> None:
        super().__init__(en)
        self.vi = vi
        self.en = en


def fold(text: str) -> str:
    """Lowercase without diacritics or punctuation, so labels match however they were typed."""
    text = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    text = "".join(c for c in text if unicodedata.category(c) != "Mn").lower()
    return " ".join(re.split(r"[^a-z0-9]+", text)).strip()


def is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def text(value: object) -> str:
    """A cell as text: numbers without a trailing .0 (a code typed as 5 is "5")."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value).strip()


def decimal(value: object) -> Decimal:
    """A number cell; text with a decimal comma ("0,5") is read too."""
    if isinstance(value, bool):
        raise BadCell("cần một số", "a number is needed")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    raw = text(value).replace(" ", "")
    if "," in raw and "." not in raw:
        raw = raw.replace(",", ".")
    try:
        number = Decimal(raw)
    except InvalidOperation:
        raise BadCell(
            f"«{text(value)}» không phải là số", f"'{text(value)}' is not a number"
        ) from None
    if not number.is_finite():
        raise BadCell(f"«{text(value)}» không phải là số", f"'{text(value)}' is not a number")
    return number


def integer(value: object) -> int:
    number = decimal(value)
    if number != number.to_integral_value():
        raise BadCell(
            f"«{text(value)}» phải là số nguyên", f"'{text(value)}' must be a whole number"
        )
    return int(number)


def items(value: object) -> list[str]:
    """A list typed in one cell: separated by commas, semicolons or new lines."""
    return [p.strip() for p in re.split(r"[,;\n]", text(value)) if p.strip()]


def yes_no(value: object) -> bool:
    if isinstance(value, bool):
        return value
    folded = fold(text(value))
    if folded in ("co", "x", "yes", "true", "1"):
        return True
    if folded in ("khong", "no", "false", "0"):
        return False
    raise BadCell(f"cần ghi «{YES}» hoặc «{NO}»", f"write '{YES}' or '{NO}'")


def choice(value: object, labels: dict[T, str]) -> T:
    """An enumeration typed as its Vietnamese label or as its code."""
    folded = fold(text(value))
    for key, label in labels.items():
        if folded in (fold(label), fold(str(key))):
            return key
    allowed = "; ".join(f"«{label}»" for label in labels.values())
    raise BadCell(
        f"«{text(value)}» không phải một lựa chọn; chọn một trong: {allowed}",
        f"'{text(value)}' is not one of the choices: {allowed}",
    )


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadCell(
            f"múi giờ «{name}» không tồn tại (ví dụ đúng: Asia/Ho_Chi_Minh)",
            f"unknown time zone '{name}' (e.g. Asia/Ho_Chi_Minh)",
        ) from None


_FORMATS = (
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
)


def moment(value: object, tz: ZoneInfo) -> datetime:
    """A date and time cell, local to the campaign's time zone, as a fixed UTC offset.

    Excel keeps times as fractions of a day, so the value is rounded to the second; text in
    dd/mm/yyyy hh:mm[:ss] or ISO form (with or without an offset) is read too.
    """
    if isinstance(value, datetime):
        local = value
    else:
        raw = text(value)
        local_or_none: datetime | None = None
        for fmt in _FORMATS:
            try:
                local_or_none = datetime.strptime(raw, fmt)
                break
            except ValueError:
                continue
        if local_or_none is None:
            try:
                local_or_none = datetime.fromisoformat(raw)
            except ValueError:
                raise BadCell(
                    f"«{raw}» không phải ngày giờ; ghi theo dạng 21/09/2025 07:00",
                    f"'{raw}' is not a date and time; write it as 21/09/2025 07:00",
                ) from None
        local = local_or_none
    if local.tzinfo is None:
        if local.microsecond:
            local = (local + timedelta(microseconds=500_000)).replace(microsecond=0)
        local = local.replace(tzinfo=tz)
    offset = local.utcoffset() or timedelta(0)
    return local.astimezone(timezone(offset))


def campaign_zone(zone_name: str, fallback: datetime) -> tzinfo:
    """The campaign's zone; a campaign defined with an unknown one (through YAML) falls back
    to its deadline's offset, so its workbook and preview can still be drawn."""
    try:
        return ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        return fallback.tzinfo or UTC


def local_naive(moment_: datetime, tz: tzinfo) -> datetime:
    """The wall-clock time in the campaign's zone, as Excel shows it."""
    return moment_.astimezone(tz).replace(tzinfo=None)
