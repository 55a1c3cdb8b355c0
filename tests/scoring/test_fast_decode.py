"""The rebuild's fast ballot decode accepts and refuses exactly what decode() does. No servers.

ScoringProjection.decode reads every ballot on the live path, the rebuild and the audit's replay
through contracts.events.decode_ballot (docs/architecture.md, decision 43): whatever it accepts
must be what the full models accept, with the same values, and each refusal must reach the
dead-letter subject with decode()'s reason, word for word.
"""

from __future__ import annotations

import copy
import json
from datetime import date
from typing import Any

import pytest

from contracts.events import (
    Answer,
    BallotFields,
    BallotSubmitted,
    EventError,
    decode,
    decode_ballot,
    encode,
    make,
)
from services.scoring.projection import ScoringProjection
from tests.scoring.test_method import INVALID_BALLOTS, WORKED_BALLOTS, delegates_campaign

pytestmark = pytest.mark.unit

HINT = "BallotSubmitted"


def _valid() -> dict[str, Any]:
    ballot = BallotSubmitted(
        ballot_id="b-1",
        form_code="02",
        unit_code="H01",
        submitted_on=date(2026, 5, 4),
        answers=[
            Answer(unit_code="H01", question_id="Q1", option_code="yes"),
            Answer(unit_code="H01", question_id="Q2", option_code="dk"),
        ],
    )
    env = make(ballot, campaign_id="c-1", producer="survey", correlation_id="corr-1")
    return json.loads(encode(env))


def _with(path: tuple[Any, ...], value: Any = None, *, drop: bool = False) -> bytes:
    doc = copy.deepcopy(_valid())
    target = doc
    for key in path[:-1]:
        target = target[key]
    if drop:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(doc).encode()


A0 = ("data", "answers", 0)
HOSTILE: list[tuple[str, bytes]] = [
    ("valid", json.dumps(_valid()).encode()),
    ("unit_code null", _with(("data", "unit_code"), None)),
    ("unknown option code", _with((*A0, "option_code"), "zz")),
    ("option code with NUL", _with((*A0, "option_code"), "ye\x00s")),
    ("ballot id with NUL", _with(("data", "ballot_id"), "b\x00")),
    ("ballot id with C1 control", _with(("data", "ballot_id"), "b\x85")),
    ("ballot id with tab", _with(("data", "ballot_id"), "b\t1")),
    ("ballot id lone surrogate", json.dumps(_valid()).encode().replace(b'"b-1"', b'"b\\ud800"')),
    ("ballot id non-ASCII", _with(("data", "ballot_id"), "phiếu-1")),
    ("producer with NUL", _with(("producer",), "sur\x00vey")),
    ("campaign id with NUL", _with(("campaign_id",), "c\x00")),
    ("campaign id upper case", _with(("campaign_id",), "C-1")),
    ("huge ballot id", _with(("data", "ballot_id"), "x" * 129)),
    ("ballot id at its bound", _with(("data", "ballot_id"), "x" * 128)),
    ("huge option code", _with((*A0, "option_code"), "a" * 33)),
    ("huge string", _with(("data", "ballot_id"), "x" * 5_000_000)),
    ("code bad first char", _with((*A0, "question_id"), "-Q1")),
    ("code with space", _with((*A0, "unit_code"), "H 01")),
    ("ballot id int", _with(("data", "ballot_id"), 7)),
    ("option code int", _with((*A0, "option_code"), 1)),
    ("option code null", _with((*A0, "option_code"), None)),
    ("answers not a list", _with(("data", "answers"), {"unit_code": "H01"})),
    ("answer not an object", _with(A0, "H01/Q1/yes")),
    ("answers empty", _with(("data", "answers"), [])),
    ("answers too many", _with(("data", "answers"), [_valid()["data"]["answers"][0]] * 2001)),
    ("answers at the bound", _with(("data", "answers"), [_valid()["data"]["answers"][0]] * 2000)),
    ("submitted_on not a date", _with(("data", "submitted_on"), "yesterday")),
    ("submitted_on a datetime", _with(("data", "submitted_on"), "2026-05-04T00:00:00Z")),
    ("submitted_on an int", _with(("data", "submitted_on"), 1_777_000_000)),
    ("schema_version 2", _with(("schema_version",), 2)),
    ("schema_version as text", _with(("schema_version",), "1")),
    ("schema_version 0", _with(("schema_version",), 0)),
    ("another type", _with(("type",), "RespondentWithdrawn")),
    ("unknown type", _with(("type",), "BallotStuffed")),
    ("naive occurred_at", _with(("occurred_at",), "2026-05-04T10:00:00")),
    ("offset occurred_at", _with(("occurred_at",), "2026-05-04T10:00:00+07:00")),
    ("extra envelope field", _with(("respondent_id",), "r-1")),
    ("extra data field", _with(("data", "respondent_id"), "r-1")),
    ("extra answer field", _with((*A0, "weight"), "1")),
    ("data null", _with(("data",), None)),
    ("not JSON", b"{not json"),
    ("truncated", json.dumps(_valid()).encode()[:-3]),
    ("JSON array", b"[]"),
    ("empty", b""),
    ("duplicate key", json.dumps(_valid()).encode().replace(b'"b-1"', b'"b-1", "ballot_id": 5')),
]
for field in ("ballot_id", "form_code", "unit_code", "submitted_on", "answers"):
    HOSTILE.append((f"missing data.{field}", _with(("data", field), drop=True)))
for field in ("unit_code", "question_id", "option_code"):
    HOSTILE.append((f"missing answer {field}", _with((*A0, field), drop=True)))
for field in ("type", "campaign_id", "producer", "data", "correlation_id", "schema_version"):
    HOSTILE.append((f"missing envelope {field}", _with((field,), drop=True)))


def _outcome(decoder: Any, raw: bytes) -> tuple[str, Any]:
    """("ok", envelope fields, payload fields) or ("refused", the dead-letter reason)."""
    try:
        env, payload = decoder(raw, HINT)
    except EventError as exc:
        return "refused", str(exc)
    if isinstance(payload, BallotFields):
        fields = (payload.ballot_id, payload.form_code, payload.unit_code, payload.answers)
        full = BallotSubmitted.model_validate(env.data)  # the values decode() would hold
    else:
        fields = (
            payload.ballot_id,
            payload.form_code,
            payload.unit_code,
            [a.__dict__ for a in payload.answers],
        )
        full = payload
    return "ok", (env.model_dump(exclude={"data"}), fields, full)


@pytest.mark.parametrize("raw", [raw for _, raw in HOSTILE], ids=[name for name, _ in HOSTILE])
def test_fast_decode_accepts_and_refuses_what_decode_does(raw: bytes) -> None:
    fast = _outcome(ScoringProjection().decode, raw)
    assert fast == _outcome(decode, raw)
    if decode_ballot(raw) is not None:  # what the fast schema accepts, the models accept
        assert fast[0] == "ok"


def test_fast_decode_takes_the_fast_path_for_a_valid_ballot() -> None:
    raw = json.dumps(_valid()).encode()
    env, payload = ScoringProjection().decode(raw, HINT)
    assert isinstance(payload, BallotFields)
    assert env.campaign_id == "c-1" and payload.answers[1]["option_code"] == "dk"
    # another header falls back to decode(): its own check of type against header applies
    assert not isinstance(ScoringProjection().decode(raw, None)[1], BallotFields)


@pytest.mark.parametrize("bad", INVALID_BALLOTS)
def test_fast_fields_are_counted_and_refused_as_the_model(bad: BallotSubmitted) -> None:
    """The counter's refusal messages are the same from decoded fields as from the model."""
    from services.scoring.method import BallotCounter, Tally

    c = delegates_campaign()
    raw = encode(make(bad, campaign_id=c.id, producer="survey"))
    fast = decode_ballot(raw)
    assert fast is not None
    fields = fast[1]
    counter = BallotCounter(c)
    for b in WORKED_BALLOTS[:2]:
        counter.add(b)
    with pytest.raises(ValueError) as refused:
        counter.add_fields(fields.ballot_id, fields.form_code, fields.unit_code, fields.answers)
    with pytest.raises(ValueError) as expected:
        Tally.of_ballot(c, bad)
    assert str(refused.value) == str(expected.value)
