"""The published contract matches the code; old versions stay readable; bad bytes are refused."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import events
from contracts.export import HERE, render_all

pytestmark = pytest.mark.unit


def test_committed_contract_files_match_the_code() -> None:
    stale = [
        str(rel)
        for rel, content in render_all().items()
        if not (HERE / rel).exists() or (HERE / rel).read_text() != content
    ]
    assert not stale, f"regenerate with `parindex contracts`: {stale}"


def test_every_event_type_has_a_schema_and_an_asyncapi_message() -> None:
    doc = json.loads((HERE / "asyncapi.json").read_text())
    assert doc["asyncapi"].startswith("3.")
    for name, version in events.CURRENT_VERSION.items():
        assert (HERE / "schemas" / f"{name}.v{version}.json").exists()
        assert name in doc["components"]["messages"]


def test_an_encoded_event_validates_against_its_published_schema() -> None:
    env = events.make(
        events.BallotSubmitted(
            ballot_id="b1",
            form_code="03",
            unit_code="SNV",
            submitted_on=date(2023, 9, 30),
            answers=[events.Answer(unit_code="SNV", question_id="q1", option_code="a")],
        ),
        campaign_id="soctrang-2023",
        producer="survey",
    )
    schema = json.loads((HERE / "schemas" / "BallotSubmitted.v1.json").read_text())
    jsonschema.validate(json.loads(events.encode(env)), schema)
    bad = json.loads(events.encode(env))
    bad["data"]["respondent_id"] = "r-1"  # a ballot must never name its respondent
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_round_trip_keeps_every_field() -> None:
    env = events.make(events.CampaignClosed(reason="x"), campaign_id="c1", producer="survey")
    decoded, payload = events.decode(events.encode(env))
    assert decoded == env
    assert payload == events.CampaignClosed(reason="x")


def test_v1_respondent_registered_is_read_as_v2() -> None:
    old = {
        "event_id": "e1",
        "type": "RespondentRegistered",
        "schema_version": 1,
        "occurred_at": "2023-09-01T00:00:00Z",
        "campaign_id": "c1",
        "producer": "identity",
        "data": {
            "respondent_id": "r-1",
            "username": "an.nguyen",
            "name": "Nguyễn Văn An",
            "email": "an@example.vn",
            "unit_code": "SNV",
            "group": "03",
        },
    }
    env, payload = events.decode(json.dumps(old).encode())
    assert isinstance(payload, events.RespondentRegistered)
    assert payload.full_name == "Nguyễn Văn An" and payload.form_code == "03"
    assert env.schema_version == 2


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"not json", "invalid envelope"),
        (b'{"type": "Nope"}', "invalid envelope"),
        (
            b'{"event_id":"e","type":"Nope","occurred_at":"2023-01-01T00:00:00Z",'
            b'"campaign_id":"c","producer":"p","data":{}}',
            "unknown event type",
        ),
        (
            b'{"event_id":"e","type":"WaveOpened","schema_version":9,'
            b'"occurred_at":"2023-01-01T00:00:00Z","campaign_id":"c","producer":"p","data":{}}',
            "newer than this reader",
        ),
        (
            b'{"event_id":"e","type":"WaveOpened","occurred_at":"2023-01-01T00:00:00Z",'
            b'"campaign_id":"c","producer":"p","data":{"wave_id":1}}',
            "invalid WaveOpened",
        ),
    ],
)
def test_bad_events_say_why(raw: bytes, reason: str) -> None:
    with pytest.raises(events.EventError, match=reason):
        events.decode(raw)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.dictionaries(st.text(max_size=10), st.text(max_size=10)).map(
            lambda d: json.dumps(d).encode()
        ),
    )
)
def test_decoder_raises_only_event_error(raw: bytes) -> None:
    try:
        events.decode(raw)
    except events.EventError:
        pass


def test_contract_dir_is_where_export_writes() -> None:
    assert HERE == Path(events.__file__).parent
