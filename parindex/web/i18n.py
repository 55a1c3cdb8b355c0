"""Vietnamese first, English on a switch: one catalog format, one `t(key)`, Vietnamese numbers.

Every text a person reads comes from a YAML catalog per language: the kit's shared one
(parindex/web/text/<lang>.yaml) and the service's own (services/<name>/text/<lang>.yaml).
Templates call `t('key', **values)`; code calls `Catalog.t(lang, key, **values)`. A test checks
that both languages hold the same keys with non-empty text and that every key used exists
(docs/architecture.md, decision 25).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from fastapi import Request
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, pass_context, select_autoescape

LANGS = ("vi", "en")
LANG_COOKIE = "parindex_lang"  # one choice for every service on the host
VN = ZoneInfo("Asia/Ho_Chi_Minh")
SHARED = Path(__file__).parent / "templates"
SHARED_TEXT = Path(__file__).parent / "text"


def language(request: Request) -> str:
    """?lang= wins (and the page sets the cookie), then the cookie, then Vietnamese."""
    lang = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE) or "vi"
    return lang if lang in LANGS else "vi"


def read_catalog(folder: Path, lang: str) -> dict[str, str]:
    """One catalog file: a flat mapping of key to text (nested mappings join with '.')."""
    path = folder / f"{lang}.yaml"
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out: dict[str, str] = {}

    def walk(prefix: str, node: dict) -> None:
        for k, v in node.items():
            if isinstance(v, dict):
                walk(f"{prefix}{k}.", v)
            else:
                out[f"{prefix}{k}"] = "" if v is None else str(v)

    walk("", data)
    return out


class Catalog:
    """The shared keys plus one service's; a key defined twice is a mistake, refused on load."""

    def __init__(self, *folders: Path) -> None:
        self.folders = folders
        self.texts: dict[str, dict[str, str]] = {lang: {} for lang in LANGS}
        for folder in folders:
            for lang in LANGS:
                own = read_catalog(folder, lang)
                twice = own.keys() & self.texts[lang].keys()
                if twice:
                    raise ValueError(f"{folder}: keys already in the shared catalog: {twice}")
                self.texts[lang].update(own)

    def t(self, lang: str, key: str, **values: object) -> str:
        """The text in `lang` (Vietnamese if missing there); an unknown key shows as itself."""
        text = self.texts.get(lang, {}).get(key) or self.texts["vi"].get(key) or key
        return plural(text, values).format(**values) if values else text


# English counts need a plural, Vietnamese never does: "{n} [[n:ballot|ballots]]" picks the
# first word when n is 1, else the second (docs/architecture.md, decision 40).
PLURAL = re.compile(r"\[\[(\w+):([^|\]]*)\|([^\]]*)\]\]")


def plural(text: str, values: dict[str, object]) -> str:
    def pick(m: re.Match[str]) -> str:
        count = values.get(m.group(1))
        try:
            one = count is not None and Decimal(str(count)) == 1
        except ArithmeticError:
            one = False
        return m.group(2) if one else m.group(3)

    return PLURAL.sub(pick, text)


@cache
def catalog(service_text: Path | None = None) -> Catalog:
    return Catalog(SHARED_TEXT, service_text) if service_text else Catalog(SHARED_TEXT)


def plain_number(value: Decimal, places: int | None = None, lang: str = "en") -> str:
    """`value` with `places` decimals, thousands grouped; Vietnamese 1.234,5, English 1,234.5.

    A value that rounds to zero is written without a sign: never "-0,00"
    (docs/architecture.md, decision 40).
    """
    if places is not None:
        # the rounding `format` itself would do (half-even), done first so its sign is seen
        value = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    if value == 0:
        value = abs(value)
    text = f"{value:,.{places}f}" if places is not None else f"{value:,f}"
    if lang == "vi":
        text = text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")
    return text


def vi_number(value: object, places: int | None = None) -> str:
    """1234567.5 → '1.234.567,5' (dot groups thousands, comma marks decimals)."""
    if value is None or value == "":
        return "–"
    return plain_number(Decimal(str(value)), places, "vi")


def en_number(value: object, places: int | None = None) -> str:
    if value is None or value == "":
        return "–"
    return plain_number(Decimal(str(value)), places, "en")


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


def templates(template_dir: Path, text: Catalog) -> Jinja2Templates:
    """A service's own templates first, then the shared layout; `t('key')` in every template."""
    env = Environment(
        loader=ChoiceLoader([FileSystemLoader(template_dir), FileSystemLoader(SHARED)]),
        autoescape=select_autoescape(["html", "j2"]),
    )

    @pass_context
    def t(ctx: Any, key: str, **values: object) -> str:
        return text.t(ctx.get("lang", "vi"), key, **values)

    env.filters["vi_number"] = vi_number
    env.filters["en_number"] = en_number
    env.filters["vi_date"] = vi_date
    env.globals["percent"] = percent
    env.globals["t"] = t
    return Jinja2Templates(env=env)
