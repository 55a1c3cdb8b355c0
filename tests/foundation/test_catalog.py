"""The translation catalogs: both languages complete, every key used defined.

docs/architecture.md, decision 25: one catalog format (YAML per language), one `t(key)`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from parindex.web.i18n import LANGS, SHARED_TEXT, catalog, read_catalog

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("identity", "survey", "scoring", "notify")
TEMPLATE_KEY = re.compile(r"""\bt\(\s*['"]([\w.]+)['"]""")
CODE_KEY = re.compile(
    r"""(?:\.t|_message)\(\s*(?:request|lang|"[a-z]{2}"),\s*(?:f)?["']([\w.]+)["']"""
)


def _folders() -> list[Path]:
    return [SHARED_TEXT, *(ROOT / "services" / s / "text" for s in SERVICES)]


@pytest.mark.parametrize("folder", _folders(), ids=lambda p: p.parent.name)
def test_both_languages_hold_the_same_keys_with_text(folder: Path) -> None:
    texts = {lang: read_catalog(folder, lang) for lang in LANGS}
    assert texts["vi"], folder
    assert texts["vi"].keys() == texts["en"].keys(), set(texts["vi"]) ^ set(texts["en"])
    for lang, entries in texts.items():
        assert all(v.strip() for v in entries.values()), (lang, folder)
        for key, value in entries.items():  # a {placeholder} is in both or in neither
            other = texts["en" if lang == "vi" else "vi"][key]
            assert set(re.findall(r"{(\w+)}", value)) == set(re.findall(r"{(\w+)}", other)), key


@pytest.mark.parametrize("service", SERVICES)
def test_every_key_used_exists(service: str) -> None:
    here = ROOT / "services" / service
    known = catalog(here / "text").texts["vi"].keys()
    used: set[str] = set()
    for template in [*here.rglob("*.html"), *(ROOT / "parindex/web/templates").glob("*.html")]:
        used |= set(TEMPLATE_KEY.findall(template.read_text(encoding="utf-8")))
    for module in here.glob("*.py"):
        used |= {k for k in CODE_KEY.findall(module.read_text(encoding="utf-8")) if "{" not in k}
    assert used, service
    assert used - known == set()


def test_the_scan_sees_code_and_templates() -> None:
    """The patterns above find what they are meant to: a guard against a silent scan."""
    assert TEMPLATE_KEY.findall("{{ t('sv.receipt') }} {{ t(\"id.login\", n=1) }}") == [
        "sv.receipt",
        "id.login",
    ]
    assert CODE_KEY.findall('PAGES.t(request, "id.email") _message(request, "sv.late", 409)') == [
        "id.email",
        "sv.late",
    ]


def test_keys_built_at_run_time_exist() -> None:
    """Keys the code composes (f"sc.kind.{kind}", f"sv.{error}", f"id.link.{service}")."""
    from contracts.campaign import UnitKind

    def keys(service: str) -> set[str]:
        return set(catalog(ROOT / "services" / service / "text").texts["en"])

    assert {f"sc.kind.{k.value}" for k in UnitKind} <= keys("scoring")
    assert {"sv.missing", "sv.invalid"} <= keys("survey")
    assert {f"id.link.{s}" for s in ("survey", "scoring", "notify", "progress")} <= keys("identity")
