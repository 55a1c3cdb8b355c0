"""Request-reply between services: every `par.rpc.*` endpoint with its request and reply model.

Core NATS, not stored on the log (docs/architecture.md, decision 5). Each endpoint is served and
called through parindex/bus/rpc.py only, so the wire format is these models and one error
format, `{"error": {"code", "message"}}` (docs/architecture.md, decision 28). The models are
exported to the AsyncAPI document and JSON Schemas with the events (contracts/export.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from contracts import subjects
from contracts.events import Code, Email, RespondentId, Short
from contracts.text import Name, Text

CampaignId = Annotated[str, Text(64, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
ErrorCode = Annotated[str, Text(64, pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class Message(BaseModel):
    """A request or reply: no unknown field, like the event payloads."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorBody(Message):
    code: ErrorCode
    message: Annotated[str, Text(1000)] = ""


class ErrorReply(Message):
    """The one error answer of every endpoint (also in the Nats-Service-Error(-Code) headers)."""

    error: ErrorBody


# --- identity ---------------------------------------------------------------------------------
class CredentialRequest(Message):
    """`email`: the address the requester will mail the credential to. identity refuses
    (`address_changed`) when it holds another, and decides the credential's holder for that
    address (docs/architecture.md, decision 48)."""

    campaign_id: CampaignId
    respondent_id: RespondentId
    purpose: Literal["invitation", "reminder", "reset", "admin"] = "invitation"
    email: Email | None = None


class CredentialReply(Message):
    """The only message that carries a plaintext password; it reaches the requester alone.

    `password` is None when nothing new was issued: a reminder to someone who already holds a
    credential, which keeps working (docs/architecture.md, decision 37). `replaces` says the
    new password will replace a credential the person holds once it is first used.
    """

    username: Short
    password: Short | None = None
    full_name: Name
    email: Email | None = None
    replaces: bool = False


class PublicKeyRequest(Message):
    pass


class PublicKeyReply(Message):
    public_key_pem: Annotated[str, Text(4000, multiline=True)]


class FormUnits(Message):
    """A wave's member: respondents of this form, of these units (None: every unit)."""

    form_code: Code
    unit_codes: list[Code] | None = None


class RespondentsRequest(Message):
    campaign_id: CampaignId
    unit_code: Code | None = None
    wave_form_units: list[FormUnits] | None = None


class PublicRespondent(Message):
    """What may leave identity about a respondent: no credential, no bookkeeping."""

    respondent_id: RespondentId
    username: Short
    full_name: Name
    email: Email | None = None
    unit_code: Code | None  # None for provincial delegates (form 01)
    form_code: Code
    roles: list[Short] = []


class RespondentsReply(Message):
    respondents: list[PublicRespondent]


# --- survey -----------------------------------------------------------------------------------
class UnitRequest(Message):
    """A campaign, or one unit of it."""

    campaign_id: CampaignId
    unit_code: Code | None = None


class NonrespondentsReply(Message):
    """Registered, not withdrawn, no counted ballot: ids only, never answers (decision 15)."""

    respondent_ids: list[RespondentId]


class ProgressRow(Message):
    unit_code: Code
    unit_name: Name
    form_code: Code
    received: int
    quota: int | None
    rate: float | None
    registered: int | None


class NotAnswered(Message):
    full_name: Name
    form_code: Code


class ProgressReply(Message):
    """What GET /api/progress answers; `unit_code` and `not_answered` only for one unit."""

    campaign: CampaignId
    deadline_passed: bool
    units: list[ProgressRow]
    unit_code: Code | None = None
    not_answered: list[NotAnswered] | None = None


# --- notify -----------------------------------------------------------------------------------
class ResetRequest(Message):
    campaign_id: CampaignId
    respondent_id: RespondentId


class ResetReply(Message):
    queued: Short


# Covariant: an endpoint is read, never written, so every endpoint is an Endpoint[Message, Message].
Req = TypeVar("Req", bound=Message, covariant=True)
Rep = TypeVar("Rep", bound=Message, covariant=True)


@dataclass(frozen=True)
class Endpoint(Generic[Req, Rep]):
    subject: str
    request: type[Req]
    reply: type[Rep]
    service: str  # who serves it (NATS permissions: only that service may subscribe)
    description: str

    @property
    def name(self) -> str:
        return self.subject.rsplit(".", 1)[1]


CREDENTIAL = Endpoint(
    subjects.RPC_IDENTITY_CREDENTIAL,
    CredentialRequest,
    CredentialReply,
    "identity",
    "A fresh password for a registered respondent (notify only, at send time); none for a "
    "reminder to someone who already holds one.",
)
PUBLIC_KEY = Endpoint(
    subjects.RPC_IDENTITY_PUBLIC_KEY,
    PublicKeyRequest,
    PublicKeyReply,
    "identity",
    "The EdDSA key that verifies session tokens.",
)
RESPONDENTS = Endpoint(
    subjects.RPC_IDENTITY_RESPONDENTS,
    RespondentsRequest,
    RespondentsReply,
    "identity",
    "Respondents of a campaign, a unit or a wave's members.",
)
NONRESPONDENTS = Endpoint(
    subjects.RPC_SURVEY_NONRESPONDENTS,
    UnitRequest,
    NonrespondentsReply,
    "survey",
    "Who has not answered, derived from the log when asked.",
)
PROGRESS = Endpoint(
    subjects.RPC_SURVEY_PROGRESS,
    UnitRequest,
    ProgressReply,
    "survey",
    "Ballots received against quota per unit and form.",
)
RESET = Endpoint(
    subjects.RPC_NOTIFY_RESET,
    ResetRequest,
    ResetReply,
    "notify",
    "A respondent asked identity for a new credential: notify e-mails one.",
)

ENDPOINTS: list[Endpoint[Message, Message]] = [
    CREDENTIAL,
    PUBLIC_KEY,
    RESPONDENTS,
    NONRESPONDENTS,
    PROGRESS,
    RESET,
]
