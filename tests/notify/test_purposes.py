"""Outbox purposes in words for the deliveries page (docs/architecture.md, decision 40)."""

from __future__ import annotations

import pytest

from services.notify.purposes import purpose_label

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("purpose", "key", "values"),
    [
        ("invitation:w1", "nt.purpose.invitation", {"wave": "1"}),
        ("invitation:wave-3", "nt.purpose.invitation", {"wave": "3"}),
        ("invitation:extra", "nt.purpose.invitation", {"wave": "extra"}),
        ("invitation:email:0b7c", "nt.purpose.new_email", {}),
        ("notice:email:0b7c", "nt.purpose.email_notice", {}),
        ("invitation:resend:2", "nt.purpose.resend", {}),
        ("invitation:reset:1", "nt.purpose.reset", {}),
        ("reminder:d-3", "nt.purpose.reminder_days", {"days": "3"}),
        ("reminder:now-2023-09-25", "nt.purpose.reminder_now", {"day": "25/09/2023"}),
        ("reminder:now-garbage", "nt.purpose.reminder_now", {"day": ""}),
        ("reminder:x", "nt.purpose.reminder", {}),
        ("digest:x", "nt.purpose.other", {}),
    ],
)
def test_every_purpose_has_words(purpose: str, key: str, values: dict[str, str]) -> None:
    assert purpose_label(purpose) == (key, values)


def test_every_label_key_is_in_both_catalogs() -> None:
    from services.notify.web import PAGES

    for purpose in ("invitation:w1", "invitation:email:x", "notice:email:x", "invitation:resend:1",
                    "invitation:reset:1", "reminder:d-1", "reminder:now-2023-01-02",
                    "reminder:x", "x"):  # fmt: skip
        key, values = purpose_label(purpose)
        for lang in ("vi", "en"):
            text = PAGES.t(lang, key, **values)
            assert text and key not in text and ":" not in text.replace("(", "")


def test_notices_to_old_addresses_count_as_one_kind() -> None:
    from services.notify.deliveries import purpose_group

    group = purpose_group("notice:email:0b7c")
    assert group == purpose_group("notice:email:ffff") == "notice:email"
    assert purpose_label(group) == ("nt.purpose.email_notice", {})
