"""Every event the four services exchange: one envelope, typed payloads, their subjects.

Wire format: the envelope as JSON. `type` + `schema_version` select the payload model; old
versions are upcast on decode (contracts.upcasters) so readers only ever see the newest shape.
Every string is a contracts.text.Text: nothing unstorable reaches the log (docs/architecture.md,
decision 17). Secrets never appear here (decision 6) and no ballot carries who cast it
(decision 7).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model, field_validator
from typing_extensions import TypedDict

from contracts.campaign import Campaign
from contracts.numbers import Count, QuotaCount, Rank, SchemaVersion, Sequence
from contracts.text import FreeText, Id, Name, Text

Code = Annotated[str, Text(32, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")]
RespondentId = Annotated[str, Text(64, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Short = Annotated[str, Text(64)]  # usernames, phones, labels of kinds and purposes
Email = Annotated[str, Text(320)]


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- campaign ----------------------------------------------------------------------------
class CampaignDefined(Payload):
    """A campaign version. Versions before the first wave amend; after it the campaign is frozen."""

    campaign: Campaign


class CampaignClosed(Payload):
    reason: FreeText = "closed by admin"


# --- identity ----------------------------------------------------------------------------
class RespondentRegistered(Payload):
    respondent_id: RespondentId
    username: Short
    full_name: Name
    email: Email
    unit_code: Code | None  # None for provincial delegates (form 01)
    form_code: Code
    roles: list[Short] = Field(default_factory=list, max_length=16)
    phone: Short | None = None
    # "Chức vụ" from the list, shown to the unit's focal point (docs/architecture.md, decision 37)
    position: Name | None = None


class RespondentUpdated(Payload):
    respondent_id: RespondentId
    full_name: Name | None = None
    email: Email | None = None
    unit_code: Code | None = None
    phone: Short | None = None
    position: Name | None = None


class RespondentWithdrawn(Payload):
    respondent_id: RespondentId
    reason: FreeText = ""


class CredentialsIssued(Payload):
    """A credential was (re)issued. Only the fact: the secret itself never enters the log."""

    respondent_id: RespondentId
    username: Short
    purpose: Literal["invitation", "reminder", "reset", "admin"] = "invitation"


# --- survey ------------------------------------------------------------------------------
class ReminderRequested(Payload):
    """An admin or focal point asked for a reminder now; notify sends it (decision 34).

    The day only, never the time (decision 15); at most one per person and day.
    """

    respondent_id: RespondentId
    requested_on: date
    requested_by: Short


class StaffAccountCreated(Payload):
    """A staff account made in the pages; never its password or hash (decision 6, 34)."""

    username: Short
    role: Literal["admin", "focal_point", "auditor"]
    unit_code: Code | None = None
    scope_campaign_id: Code | None = None
    created_by: Short


class StaffAccountDisabled(Payload):
    username: Short
    disabled_by: Short


class StaffPasswordReset(Payload):
    username: Short
    reset_by: Short


class WaveOpened(Payload):
    wave_id: Id
    opens_at: datetime


class Answer(Payload):
    unit_code: Code
    question_id: Code
    option_code: Code


class BallotSubmitted(Payload):
    """One counted ballot. No respondent identity, and only the day it was cast."""

    ballot_id: Id
    form_code: Code
    unit_code: Code | None  # the unit whose quota it counts towards; None for many-unit forms
    submitted_on: date
    answers: list[Answer] = Field(min_length=1, max_length=2000)


class DeadlineReached(Payload):
    deadline: datetime


# --- notify ------------------------------------------------------------------------------
class InvitationSent(Payload):
    respondent_id: RespondentId
    wave_id: Id
    message_id: Id


class ReminderSent(Payload):
    respondent_id: RespondentId
    reminder: Short  # e.g. "d-3"
    message_id: Id


class NoticeSent(Payload):
    """A notice that is not an invitation went out: today only to the old address after an
    admin changed a respondent's address (docs/architecture.md, decision 48). Never a password."""

    respondent_id: RespondentId
    notice: Short  # e.g. "email:<event id of the change>"
    message_id: Id


class DeliveryFailed(Payload):
    respondent_id: RespondentId
    purpose: Short
    attempts: Count
    error: FreeText


# --- scoring -----------------------------------------------------------------------------
class ResultRow(Payload):
    unit_code: Code
    unit_kind: Short
    form_code: Code | None  # None: the unit's total row
    received: Count
    quota: QuotaCount | None
    raw: Short  # decimals as strings: exact, and the same digits on every machine
    adjusted: Short
    rank: Rank | None = None


class ResultsPublished(Payload):
    """Results frozen at the deadline, with their digest: NOT a publication to the public.

    The name is historical and kept for compatibility; the results become visible to focal
    points and the public only with ResultsReleased (docs/architecture.md, decision 16).
    """

    digest: Short  # sha256 hex over the canonical serialisation of `rows`
    last_sequence: Sequence  # the DeadlineReached sequence: ballots before it are counted
    method: Short = "parindex-2023.1"
    rows: list[ResultRow]


class ResultsReleased(Payload):
    """A person published the frozen results: decided once per campaign (subjects.release)."""

    digest: Short  # must equal the ResultsPublished digest it releases
    released_by: Id  # the admin's staff username
    released_on: date


PAYLOADS: dict[str, type[Payload]] = {
    cls.__name__: cls
    for cls in (
        CampaignDefined,
        CampaignClosed,
        RespondentRegistered,
        RespondentUpdated,
        RespondentWithdrawn,
        CredentialsIssued,
        ReminderRequested,
        StaffAccountCreated,
        StaffAccountDisabled,
        StaffPasswordReset,
        WaveOpened,
        BallotSubmitted,
        DeadlineReached,
        InvitationSent,
        ReminderSent,
        NoticeSent,
        DeliveryFailed,
        ResultsPublished,
        ResultsReleased,
    )
}
CURRENT_VERSION: dict[str, int] = {name: 1 for name in PAYLOADS}
CURRENT_VERSION["RespondentRegistered"] = 2  # v1 had one `name` field; see contracts.upcasters


def _now() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel):
    """The one envelope every event travels in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: Id = Field(default_factory=lambda: str(uuid.uuid4()))
    type: Short
    schema_version: SchemaVersion = 1
    occurred_at: datetime = Field(default_factory=_now)
    campaign_id: Annotated[str, Text(64, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    correlation_id: Id | None = None
    causation_id: Id | None = None
    producer: Short
    data: dict[str, Any]

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("occurred_at must carry a UTC offset")
        return v.astimezone(UTC)


class EventError(ValueError):
    """An event that cannot be read: the reason goes to the dead-letter subject."""


_envelope = TypeAdapter(Envelope)


def make(
    payload: Payload,
    *,
    campaign_id: str,
    producer: str,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    occurred_at: datetime | None = None,
    event_id: str | None = None,
) -> Envelope:
    kwargs: dict[str, Any] = {}
    if occurred_at is not None:
        kwargs["occurred_at"] = occurred_at
    if event_id is not None:
        kwargs["event_id"] = event_id
    name = type(payload).__name__
    return Envelope(
        type=name,
        schema_version=CURRENT_VERSION[name],
        campaign_id=campaign_id,
        correlation_id=correlation_id,
        causation_id=causation_id,
        producer=producer,
        data=payload.model_dump(mode="json"),
        **kwargs,
    )


def encode(envelope: Envelope) -> bytes:
    return envelope.model_dump_json().encode()


_typed: dict[str, TypeAdapter[Any]] = {}


def _typed_envelope(event_type: str) -> TypeAdapter[Any]:
    """An envelope whose `data` is the payload model of one type: one pass of pydantic's Rust
    JSON parser instead of a dict built in Python and validated again."""
    adapter = _typed.get(event_type)
    if adapter is None:
        model = create_model(
            f"{event_type}Envelope", __base__=Envelope, data=(PAYLOADS[event_type], ...)
        )
        adapter = _typed[event_type] = TypeAdapter(model)
    return adapter


def decode(raw: bytes, type_hint: str | None = None) -> tuple[Envelope, Payload]:
    """Envelope and typed payload, upcast to the current version; EventError says why not.

    `type_hint` (the Parindex-Type header publish_event sets) selects a one-pass decode for an
    event of the current version; anything else, including any failure, takes the general path,
    which gives the same result or says why not.
    """
    from contracts.upcasters import upcast

    if type_hint in PAYLOADS:
        try:
            typed = _typed_envelope(type_hint).validate_json(raw)
        except ValueError:  # pydantic's ValidationError: the general path says why
            pass
        else:
            if typed.type == type_hint and typed.schema_version == CURRENT_VERSION[type_hint]:
                payload = typed.data
                fields = dict(typed.__dict__)  # every field validated, as the general path does
                fields["data"] = payload.model_dump(mode="json")
                return Envelope.model_construct(**fields), payload

    try:
        env = _envelope.validate_json(raw)
    except Exception as exc:  # pydantic ValidationError or bad JSON
        raise EventError(f"invalid envelope: {_short(exc)}") from exc
    if env.type not in PAYLOADS:
        raise EventError(f"unknown event type {env.type!r}")
    if env.schema_version > CURRENT_VERSION[env.type]:
        raise EventError(f"{env.type} v{env.schema_version} is newer than this reader")
    try:
        data = upcast(env.type, env.schema_version, env.data)
        payload = PAYLOADS[env.type].model_validate(data)
    except Exception as exc:
        raise EventError(f"invalid {env.type} v{env.schema_version}: {_short(exc)}") from exc
    if data is not env.data:
        env = env.model_copy(update={"data": data, "schema_version": CURRENT_VERSION[env.type]})
    return env, payload


def _short(exc: Exception) -> str:
    text = str(exc).replace("\n", " ")
    return text[:500]


# --- the rebuild's fast path for ballots (docs/architecture.md, decision 43) ---------------
class _AnswerFields(TypedDict):
    """Answer's fields and rules as a TypedDict: validated into a dict, no model built."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]  # pydantic's TypedDict config
    unit_code: Code
    question_id: Code
    option_code: Code


class _BallotFields(TypedDict):
    """BallotSubmitted's fields and rules (same annotated types, same bounds, extra forbidden)."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]  # pydantic's TypedDict config
    ballot_id: Id
    form_code: Code
    unit_code: Code | None
    submitted_on: date
    answers: Annotated[list[_AnswerFields], Field(min_length=1, max_length=2000)]


class BallotFields(NamedTuple):
    """A validated BallotSubmitted as plain values: what counting reads, without 2 + n models.

    `answers` are dicts with `unit_code`, `question_id` and `option_code`.
    """

    ballot_id: str
    form_code: str
    unit_code: str | None
    answers: list[dict[str, str]]


_slim_ballot: TypeAdapter[Any] = TypeAdapter(
    create_model("BallotSubmittedFieldsEnvelope", __base__=Envelope, data=(_BallotFields, ...))
)
_BALLOT = "BallotSubmitted"


def decode_ballot(raw: bytes) -> tuple[Envelope, BallotFields] | None:
    """A current-version BallotSubmitted in one pass of pydantic's Rust parser, without models.

    The envelope is Envelope's own fields and validators; the payload schema repeats
    BallotSubmitted's and Answer's annotated types, so anything it accepts `decode` accepts with
    the same values (a unit test holds the two together). None for anything else, including
    every refusal: the caller then calls `decode`, which gives the event or the reason exactly
    as it always has. The envelope's `data` holds the validated fields (`submitted_on` as a date).
    """
    try:
        env = _slim_ballot.validate_json(raw)
    except ValueError:  # pydantic's ValidationError: decode() says why
        return None
    if env.type != _BALLOT or env.schema_version != CURRENT_VERSION[_BALLOT]:
        return None
    d = env.data
    return env, BallotFields(d["ballot_id"], d["form_code"], d["unit_code"], d["answers"])
