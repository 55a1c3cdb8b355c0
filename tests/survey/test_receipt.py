"""The receipt proves a day in a campaign and nothing else (docs/architecture.md, decision 15)."""

from __future__ import annotations

from datetime import date

import pytest

from services.survey.receipt import issue, verify
from services.survey.secrecy import MissingBallotKey

pytestmark = pytest.mark.unit

DAY = date(2023, 9, 22)


def test_a_receipt_verifies_for_its_campaign_and_day_only() -> None:
    code = issue("k", "c1", DAY)
    assert verify("k", "c1", code) == DAY
    assert verify("k", "c1", code.upper()) == DAY  # read aloud or retyped
    assert verify("k", "c2", code) is None
    assert verify("other-key", "c1", code) is None
    assert verify("k", "c1", code.replace("20230922", "20230923")) is None
    assert verify("k", "c1", code[:-1] + ("0" if code[-1] != "0" else "1")) is None
    for junk in ("", "x", "20230922--", "20231399-aaaaaaaaaaaa-aaaaaaaaaaaaaaaa"):
        assert verify("k", "c1", junk) is None


def test_nonce_is_random_unless_the_client_submission_id_repeats() -> None:
    assert issue("k", "c1", DAY) != issue("k", "c1", DAY)
    assert issue("k", "c1", DAY, "tab-1") == issue("k", "c1", DAY, "tab-1")
    assert issue("k", "c1", DAY, "tab-1") != issue("k", "c1", DAY, "tab-2")


def test_no_key_no_receipt() -> None:
    with pytest.raises(MissingBallotKey):
        issue("", "c1", DAY)
