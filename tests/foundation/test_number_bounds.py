"""Every number of the contracts has a range (docs/architecture.md, decision 27)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from contracts import events
from contracts.campaign import Campaign
from contracts.numbers import QUOTA_MAX, SAFE_INT_MAX
from tests.identity.conftest import make_campaign

pytestmark = pytest.mark.unit

MODELS: list[type[BaseModel]] = [events.Envelope, Campaign, *events.PAYLOADS.values()]


def unbounded_numbers(node: Any, path: str = "") -> list[str]:
    """Paths of integer/number schemas that lack a lower or an upper bound."""
    found: list[str] = []
    if isinstance(node, dict):
        if node.get("type") in ("integer", "number"):
            low = "minimum" in node or "exclusiveMinimum" in node
            high = "maximum" in node or "exclusiveMaximum" in node
            if not (low and high):
                found.append(path)
        for key, value in node.items():
            found += unbounded_numbers(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += unbounded_numbers(value, f"{path}/{i}")
    return found


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_contract_number_has_both_bounds(model: type[BaseModel]) -> None:
    schema = model.model_json_schema(mode="validation")
    assert unbounded_numbers(schema) == []


def test_the_walk_finds_an_unbounded_int() -> None:
    class Loose(BaseModel):
        n: int

    assert unbounded_numbers(Loose.model_json_schema()) == ["/properties/n"]


def test_sequences_fit_a_javascript_number() -> None:
    assert SAFE_INT_MAX == 2**53 - 1 and float(SAFE_INT_MAX) == SAFE_INT_MAX


def _campaign_with(change: dict[str, Any]) -> dict[str, Any]:
    doc = json.loads(make_campaign().model_dump_json())
    for dotted, value in change.items():
        target: Any = doc
        *parents, last = dotted.split(".")
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        target[int(last) if last.isdigit() else last] = value
    return doc


def _refused(doc: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Campaign.model_validate(doc)
    locs = [".".join(str(p) for p in e["loc"]) for e in caught.value.errors()]
    assert any(field in loc for loc in locs), locs


too_big = st.integers(min_value=QUOTA_MAX + 1, max_value=2**80)
negative = st.integers(max_value=-1, min_value=-(2**80))


@settings(max_examples=30, deadline=None)
@given(value=too_big | negative | st.just(0))
def test_quotas_are_bounded(value: int) -> None:
    doc = _campaign_with({})
    doc["quotas"] = [{"form_code": doc["forms"][0]["code"], "ballots": value}]
    _refused(doc, "ballots")


@settings(max_examples=30, deadline=None)
@given(
    field=st.sampled_from(["min_report_size", "version", "year", "rounding.places"]),
    value=too_big | negative,
)
def test_campaign_integers_are_bounded(field: str, value: int) -> None:
    _refused(_campaign_with({field: value}), field.split(".")[-1])


@settings(max_examples=30, deadline=None)
@given(
    value=st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-0.5", "1.5"])
    | st.decimals(min_value=Decimal("1.0001"), allow_nan=False, allow_infinity=False)
    | st.floats(allow_nan=True, allow_infinity=True).filter(lambda f: not 0 <= f <= 1)
)
def test_weights_are_finite_and_between_zero_and_one(value: Any) -> None:
    doc = _campaign_with({})
    doc["forms"][0]["criteria"][0]["questions"][0]["options"][0]["weight"] = (
        str(value) if isinstance(value, Decimal) else value
    )
    _refused(doc, "weight")


@settings(max_examples=20, deadline=None)
@given(value=st.integers(min_value=SAFE_INT_MAX + 1, max_value=2**128) | negative)
def test_event_sequences_and_counts_are_bounded(value: int) -> None:
    with pytest.raises(ValidationError):
        events.ResultsPublished(digest="d", last_sequence=value, rows=[])
    with pytest.raises(ValidationError):
        events.DeliveryFailed(respondent_id="r", purpose="p", attempts=value, error="e")
    with pytest.raises(ValidationError):
        events.ResultRow(
            unit_code="U", unit_kind="k", form_code=None, received=value, quota=1, raw="1",
            adjusted="1",
        )  # fmt: skip
    raw = events.encode(events.make(events.CampaignClosed(), campaign_id="c1", producer="t"))
    env = json.loads(raw)
    env["schema_version"] = value
    with pytest.raises(events.EventError):
        events.decode(json.dumps(env).encode())


def test_in_range_values_still_pass() -> None:
    doc = _campaign_with({"min_report_size": QUOTA_MAX, "year": 2100})
    doc["quotas"] = [{"form_code": doc["forms"][0]["code"], "ballots": QUOTA_MAX}]
    assert Campaign.model_validate(doc).quotas[0].ballots == QUOTA_MAX
    events.ResultsPublished(digest="d", last_sequence=SAFE_INT_MAX, rows=[])
