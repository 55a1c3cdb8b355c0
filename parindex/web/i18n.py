"""Vietnamese first, English on a switch; numbers and dates in Vietnamese conventions."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape

LANGS = ("vi", "en")
LANG_COOKIE = "parindex_lang"  # one choice for every service on the host
VN = ZoneInfo("Asia/Ho_Chi_Minh")
SHARED = Path(__file__).parent / "templates"


def language(request: Request) -> str:
    """?lang= wins (and the page sets the cookie), then the cookie, then Vietnamese."""
    lang = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE) or "vi"
    return lang if lang in LANGS else "vi"


def vi_number(value: object, places: int | None = None) -> str:
    """1234567.5 → '1.234.567,5' (dot groups thousands, comma marks decimals)."""
    if value is None or value == "":
        return "–"
    d = Decimal(str(value))
    text = f"{d:,.{places}f}" if places is not None else f"{d:,f}"
    return text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")


def en_number(value: object, places: int | None = None) -> str:
    if value is None or value == "":
        return "–"
    d = Decimal(str(value))
    return f"{d:,.{places}f}" if places is not None else f"{d:,f}"


def vi_date(value: date | datetime | None, with_time: bool = False) -> str:
    if value is None:
        return "–"
    if isinstance(value, datetime):
        value = value.astimezone(VN)
        return value.strftime("%d/%m/%Y %H:%M" if with_time else "%d/%m/%Y")
    return value.strftime("%d/%m/%Y")


def percent(num: object, den: object, lang: str = "vi") -> str:
    if not den:
        return "–"
    value = Decimal(str(num)) * 100 / Decimal(str(den))
    fmt = vi_number if lang == "vi" else en_number
    return f"{fmt(value, 1)}%"


def templates(service_dir: Path) -> Jinja2Templates:
    """A service's own templates first, then the shared base layout."""
    env = Environment(
        loader=ChoiceLoader([FileSystemLoader(service_dir), FileSystemLoader(SHARED)]),
        autoescape=select_autoescape(["html", "j2"]),
    )
    env.filters["vi_number"] = vi_number
    env.filters["en_number"] = en_number
    env.filters["vi_date"] = vi_date
    env.globals["percent"] = percent
    return Jinja2Templates(env=env)


def t(lang: str, vi: str, en: str) -> str:
    return en if lang == "en" else vi
