"""A form in a table is cited by its number (the part of its name before the colon); the
whole title made each progress row ten lines tall on a phone."""

from __future__ import annotations

import pytest

from contracts.campaign import SHORT_NAME_MAX
from services.survey.campaign_file import load_shipped

pytestmark = pytest.mark.unit


def test_the_shipped_forms_are_cited_by_their_numbers() -> None:
    forms = load_shipped().forms
    assert [f.short_name("vi")[:12] for f in forms] == [f"Phiếu số 0{n}/" for n in range(1, 7)]
    assert [f.short_name("en") for f in forms] == [f"Form 0{n}" for n in range(1, 7)]
    for f in forms:
        assert f.name.startswith(f.short_name("vi")) and len(f.short_name("vi")) < len(f.name)


def test_a_name_without_a_short_head_stays_whole() -> None:
    form = load_shipped().forms[0]
    plain = form.model_copy(update={"name": "Phiếu khảo sát công chức", "name_en": None})
    assert plain.short_name("vi") == plain.short_name("en") == "Phiếu khảo sát công chức"
    sentence = "x" * (SHORT_NAME_MAX + 1) + ": y"
    assert form.model_copy(update={"name": sentence}).short_name("vi") == sentence
    assert form.model_copy(update={"name": ": y"}).short_name("vi") == ": y"
