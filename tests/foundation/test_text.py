"""The one string type of the log, and which apply errors are an event's own fault."""

from __future__ import annotations

import asyncpg
import pytest
from pydantic import ValidationError
from sqlalchemy import exc as sa

from contracts.campaign import Unit
from contracts.events import (
    CampaignClosed,
    EventError,
    RespondentRegistered,
    decode,
    encode,
    make,
)
from contracts.text import text_problem
from parindex.bus.faults import is_event_fault
from tests.scoring.test_method import worked_campaign

pytestmark = pytest.mark.unit

BAD = ["a\x00b", "a\ud800b", "a\udfffb", "a\x1bb", "a\x7fb", "a\x85b", "a\rb"]


@pytest.mark.parametrize("value", BAD)
def test_text_problem_names_the_character(value: str) -> None:
    problem = text_problem(value)
    assert problem is not None and f"U+{ord(value[1]):04X}" in problem


def test_free_text_allows_newline_and_tab_only_where_declared() -> None:
    assert text_problem("Sở Nội vụ, tỉnh Sóc Trăng") is None
    assert text_problem("a\nb") is not None
    assert text_problem("a\nb\tc", multiline=True) is None
    assert text_problem("a\rb", multiline=True) is not None
    assert CampaignClosed(reason="line one\nline two").reason.endswith("two")


@pytest.mark.parametrize("value", BAD + ["x" * 501, "tab\tinside"])
def test_campaign_names_refuse_bad_strings(value: str) -> None:
    with pytest.raises(ValidationError):
        Unit(code="U1", name=value, kind="district")
    with pytest.raises(ValidationError):
        worked_campaign().model_validate({**worked_campaign().model_dump(), "name": value})


def test_payload_and_envelope_fields_are_bounded_and_clean() -> None:
    ok = {
        "respondent_id": "r1",
        "username": "u1",
        "full_name": "Nguyễn Văn A",
        "email": "a@example.vn",
        "unit_code": "U1",
        "form_code": "03",
    }
    RespondentRegistered(**ok)
    for field, value in [("full_name", "A\x00"), ("email", "a@b\ud800"), ("username", "u" * 65)]:
        with pytest.raises(ValidationError):
            RespondentRegistered(**{**ok, field: value})
    with pytest.raises(ValidationError):
        make(CampaignClosed(), campaign_id="c1", producer="te\x00st")


@pytest.mark.parametrize(
    "raw",
    [
        b'"reason": "x\\u0000"',
        b'"reason": "x\\ud800"',
        b'"reason": "x\xed\xa0\x80"',
        b'"reason": "x\\u0007"',
    ],
)
def test_decoding_a_bad_string_raises_event_error(raw: bytes) -> None:
    good = encode(make(CampaignClosed(reason="r"), campaign_id="c1", producer="t"))
    bad = good.replace(b'"reason":"r"', raw.replace(b": ", b":"))
    assert bad != good
    with pytest.raises(EventError):
        decode(bad)


def test_decoding_a_bad_envelope_string_raises_event_error() -> None:
    good = encode(make(CampaignClosed(), campaign_id="c1", producer="t"))
    with pytest.raises(EventError):
        decode(good.replace(b'"producer":"t"', b'"producer":"t\\u0000"'))


def _wrapped(orig: BaseException, kind: type[sa.DBAPIError] = sa.DBAPIError) -> sa.DBAPIError:
    try:
        raise orig
    except BaseException as e:
        return kind("INSERT ...", {}, e)


@pytest.mark.parametrize(
    "exc",
    [
        _wrapped(asyncpg.exceptions.CharacterNotInRepertoireError("invalid byte sequence")),
        _wrapped(asyncpg.exceptions.UniqueViolationError("duplicate key"), sa.IntegrityError),
        _wrapped(asyncpg.exceptions.DataError("value out of int32 range"), sa.InterfaceError),
        _wrapped(asyncpg.exceptions.ProgramLimitExceededError("row too big")),
        ValueError("bad"),
        KeyError("missing"),
        TypeError("unhashable"),
        UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
    ],
)
def test_errors_an_event_causes_are_dead_lettered(exc: BaseException) -> None:
    assert is_event_fault(exc)


@pytest.mark.parametrize(
    "exc",
    [
        _wrapped(ConnectionResetError("reset"), sa.OperationalError),
        _wrapped(asyncpg.exceptions.AdminShutdownError("shutting down"), sa.OperationalError),
        _wrapped(asyncpg.exceptions.SerializationError("could not serialize")),
        _wrapped(asyncpg.exceptions.ConnectionDoesNotExistError("closed"), sa.InterfaceError),
        sa.InterfaceError("cannot connect", {}, Exception("down")),
        TimeoutError(),
        OSError("network unreachable"),
        RuntimeError("killed mid-run"),
    ],
)
def test_transient_errors_are_retried(exc: BaseException) -> None:
    assert not is_event_fault(exc)


@pytest.mark.parametrize("value", ["Khảo sát\x00", "Khảo sát\ud800", "Khảo\x1bsát"])
def test_campaign_file_loader_names_the_field(value: str) -> None:
    from services.survey.campaign_file import CampaignFileError, parse_campaign

    doc = worked_campaign().model_dump(mode="json")
    with pytest.raises(CampaignFileError) as refused:
        parse_campaign({**doc, "name": value})
    assert any(path == "name" for path, _ in refused.value.errors)
