"""Subjects and streams: where each event lives on the log.

One stream holds every event of every campaign, so there is one total order: scoring counts
exactly the ballots sequenced before DeadlineReached. Aggregates that must be decided once
(a ballot per pseudonym, a wave, the deadline) have a subject of their own, written with
Nats-Expected-Last-Subject-Sequence.
"""

from __future__ import annotations

EVENTS_STREAM = "PARINDEX"
EVENTS_SUBJECTS = ["par.evt.>"]
DLQ_STREAM = "PARINDEX_DLQ"
DLQ_SUBJECTS = ["par.dlq.>"]
DUPLICATE_WINDOW_S = 24 * 3600  # a retried publish within a day is recognised by its Msg-Id


def all_events(campaign_id: str | None = None) -> str:
    return f"par.evt.{campaign_id}.>" if campaign_id else "par.evt.>"


def campaign(campaign_id: str) -> str:
    return f"par.evt.{campaign_id}.campaign"


def respondent(campaign_id: str, respondent_id: str) -> str:
    return f"par.evt.{campaign_id}.respondent.{respondent_id}"


def respondent_reminder(campaign_id: str, respondent_id: str) -> str:
    """Reminders requested now: beside, not on, the respondent's aggregate subject, so they
    never move the sequence an import or an e-mail correction expects (decision 34)."""
    return f"par.evt.{campaign_id}.respondent.{respondent_id}.reminder"


# Staff accounts belong to no campaign: their events carry this campaign id (decision 34).
STAFF_CAMPAIGN = "staff"


def staff_account(username: str) -> str:
    """One token: a name the CLI accepted may hold dots or other characters NATS would split."""
    token = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "_-") else "_" for ch in username)
    return f"par.evt.{STAFF_CAMPAIGN}.account.{token or '_'}"


def wave(campaign_id: str, wave_id: str) -> str:
    return f"par.evt.{campaign_id}.wave.{wave_id}"


def deadline(campaign_id: str) -> str:
    return f"par.evt.{campaign_id}.deadline"


def ballot(campaign_id: str, pseudonym: str) -> str:
    """The ballot aggregate: a keyed pseudonym, never the respondent id."""
    return f"par.evt.{campaign_id}.ballot.{pseudonym}"


def delivery(campaign_id: str, respondent_id: str) -> str:
    return f"par.evt.{campaign_id}.delivery.{respondent_id}"


def results(campaign_id: str) -> str:
    return f"par.evt.{campaign_id}.results"


def release(campaign_id: str) -> str:
    """The publication of the frozen results by an admin, decided once."""
    return f"par.evt.{campaign_id}.release"


# Where each event lives: channel address → (description, the event types published there).
# The published contract (contracts/asyncapi.json) is made from this table, and readers hold
# every event to it: the bus lets each service publish only on its own subjects (decision 18)
# but cannot see what a message says, so identity could put a BallotSubmitted on a respondent
# subject and have it counted (docs/architecture.md, decision 47).
CHANNELS: dict[str, tuple[str, list[str]]] = {
    # channel address: (description, event types published there)
    "par.evt.{campaign}.campaign": (
        "Campaign definition and closing",
        ["CampaignDefined", "CampaignClosed"],
    ),
    "par.evt.{campaign}.respondent.{respondent}": (
        "A respondent's registration and credentials (never the secret)",
        ["RespondentRegistered", "RespondentUpdated", "RespondentWithdrawn", "CredentialsIssued"],
    ),
    "par.evt.{campaign}.respondent.{respondent}.reminder": (
        "A reminder asked for now, at most one per person and day (decision 34)",
        ["ReminderRequested"],
    ),
    "par.evt.staff.account.{username}": (
        "Staff accounts made, disabled or reset in the pages (never a password)",
        ["StaffAccountCreated", "StaffAccountDisabled", "StaffPasswordReset"],
    ),
    "par.evt.{campaign}.wave.{wave}": ("A wave opening, once", ["WaveOpened"]),
    "par.evt.{campaign}.deadline": ("The deadline, once", ["DeadlineReached"]),
    "par.evt.{campaign}.ballot.{pseudonym}": (
        "One ballot per keyed pseudonym; no respondent identity",
        ["BallotSubmitted"],
    ),
    "par.evt.{campaign}.delivery.{respondent}": (
        "E-mail deliveries (no credential)",
        ["InvitationSent", "ReminderSent", "NoticeSent", "DeliveryFailed"],
    ),
    "par.evt.{campaign}.results": (
        "Results frozen at the deadline with their digest (not yet public)",
        ["ResultsPublished"],
    ),
    "par.evt.{campaign}.release": (
        "The frozen results published by an admin, once",
        ["ResultsReleased"],
    ),
}


def _home() -> dict[str, list[str]]:
    homes: dict[str, list[str]] = {}
    for address, (_, types) in CHANNELS.items():
        for t in types:
            if t in homes:
                raise ValueError(f"{t} has two channels")
            homes[t] = address.split(".")
    return homes


_HOME = _home()


def misplaced(subject: str, event_type: str, campaign_id: str) -> str | None:
    """Why an event of `event_type` for `campaign_id` may not be read from `subject`, or None.

    The subject must be the type's own channel, with the envelope's campaign in the channel's
    `{campaign}` (staff accounts: the literal `staff`, which is their campaign id). A type with
    no channel is the decoder's to refuse.
    """
    home = _HOME.get(event_type)
    if home is None:
        return None
    tokens = subject.split(".")
    fits = len(tokens) == len(home) and all(
        t == h or (h.startswith("{") and t) for t, h in zip(tokens, home, strict=True)
    )
    if not fits:
        return f"{event_type} on {subject}: it travels only on {'.'.join(home)}"
    if tokens[2] != campaign_id:
        return f"{event_type} for campaign {campaign_id} on {subject}: another campaign's subject"
    return None


def dead_letter(consumer: str) -> str:
    return f"par.dlq.{consumer}"


# Request-reply (core NATS, not stored): queries between services.
RPC_IDENTITY_CREDENTIAL = "par.rpc.identity.credential"  # fresh plaintext credential, notify only
RPC_IDENTITY_PUBLIC_KEY = "par.rpc.identity.public_key"  # token verification key
RPC_IDENTITY_RESPONDENTS = "par.rpc.identity.respondents"  # respondents of a unit / wave
RPC_SURVEY_NONRESPONDENTS = "par.rpc.survey.nonrespondents"  # who has not answered (no answers)
RPC_SURVEY_PROGRESS = "par.rpc.survey.progress"
RPC_NOTIFY_RESET = "par.rpc.notify.reset"  # identity: a respondent asked for a new credential
