"""English plurals in the catalogs: 1 ballot, 2 ballots (docs/architecture.md, decision 40)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from parindex.web.i18n import PLURAL, catalog, plural

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def test_one_takes_the_singular_and_every_other_count_the_plural() -> None:
    text = "{n} [[n:ballot|ballots]] from {k} [[k:person|people]]"
    assert plural(text, {"n": 1, "k": 2}) == "{n} ballot from {k} people"
    assert plural(text, {"n": 0, "k": "1"}) == "{n} ballots from {k} person"
    assert plural(text, {"n": 1.5, "k": "x"}) == "{n} ballots from {k} people"


@pytest.mark.parametrize(
    ("service", "key", "values", "expected"),
    [
        ("survey", "sv.errors", {"n": 1}, "1 question still needs an answer."),
        ("survey", "sv.errors", {"n": 3}, "3 questions still need an answer."),
        ("survey", "sv.answered", {"done": 1, "total": 1}, "Answered 1 of 1 question"),
        ("identity", "id.reg.count", {"total": 1}, "1 person found."),
        ("identity", "id.reg.count", {"total": 2}, "2 people found."),
        ("notify", "nt.failed_after", {"attempts": 1}, "after 1 attempt."),
        ("scoring", "rp.forms_intro", {"n": 6}, "uses 6 forms;"),
    ],
)
def test_catalog_counts_read_right(service: str, key: str, values: dict, expected: str) -> None:
    text = catalog(ROOT / "services" / service / "text").t("en", key, **values)
    assert expected in text and "[[" not in text


def test_plural_marks_name_a_placeholder_of_their_text_and_vietnamese_has_none() -> None:
    for folder in [ROOT / "parindex/web/text", *(ROOT / "services").glob("*/text")]:
        for lang in ("vi", "en"):
            for line in (folder / f"{lang}.yaml").read_text(encoding="utf-8").splitlines():
                for m in PLURAL.finditer(line):
                    assert lang == "en", line
                    assert "{" + m.group(1) + "}" in line, line
                assert not re.search(r"\[\[(?!\w+:[^|\]]*\|[^\]]*\]\])", line), line
