"""The dashboards' counts come from the stored rows, in compute_results' order (decision 31)."""

from __future__ import annotations

import pytest

from services.scoring.method import Tally, compute_results, result_rows
from services.scoring.visible import method_order
from tests.scoring.test_method import ballot, delegates_campaign

pytestmark = pytest.mark.unit


def test_stored_rows_come_back_in_the_methods_order() -> None:
    c = delegates_campaign()
    # Forms in campaign order 03 before 01: not the order of their codes.
    c = c.model_copy(update={"forms": list(reversed(c.forms))})
    t = Tally()
    t.add_ballot(c, ballot("d1", None, [("S01", "Q1", "T"), ("S02", "Q1", "KB")], "01"))
    t.add_ballot(c, ballot("b1", "S01", {"Q1": "T", "Q2": "K", "Q3": "T"}))
    results = compute_results(c, t)
    # As the projection stores and reads them back (projection.py::load_rows): by form code.
    stored = result_rows(results)
    assert [r.form_code for r in stored if r.unit_code == "S01"] == ["01", "03", None]
    # The order GET /api/results always answered its counts in: forms in campaign order.
    expected = [
        (u.unit_code, code)
        for u in results.units
        for code in [*(f.form_code for f in u.forms), None]
    ]
    assert [(r.unit_code, r.form_code) for r in method_order(c, stored)] == expected
    assert [f for u, f in expected if u == "S01"] == ["03", "01", None]
