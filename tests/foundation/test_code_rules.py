"""Rules of the code base that a reviewer would otherwise have to remember."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    p
    for folder in ("contracts", "parindex", "services", "tests", "bench")
    for p in (ROOT / folder).rglob("*.py")
]


IGNORE = "type" + ": ignore"  # spelt apart so this file does not match itself


def test_every_type_ignore_is_specific_and_says_why() -> None:
    bare = []
    for path in SOURCES:
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            if IGNORE in line and not re.search(IGNORE + r"\[[a-z, -]+\]  # \S", line):
                bare.append(f"{path.relative_to(ROOT)}:{n}")
    assert not bare, f"ignores without an error code and a reason: {bare}"


def test_comments_cite_the_projects_own_record() -> None:
    """Decisions are cited as 'docs/architecture.md, decision N', a file in this repository."""
    stray = [
        str(p.relative_to(ROOT))
        for p in SOURCES
        if re.search(r"(?<!docs/)ARCHITECTURE\.md", p.read_text())
    ]
    assert not stray, stray


def test_cited_decisions_exist() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    numbers = {int(n) for n in re.findall(r"^## (\d+)\.", doc, flags=re.M)}
    cited: set[int] = set()
    for p in SOURCES:
        for group in re.findall(r"decisions? ([\d ,and]+)", p.read_text()):
            cited |= {int(n) for n in re.findall(r"\d+", group)}
    assert cited <= numbers, f"cited but not in docs/architecture.md: {sorted(cited - numbers)}"
