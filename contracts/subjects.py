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


def dead_letter(consumer: str) -> str:
    return f"par.dlq.{consumer}"


# Request-reply (core NATS, not stored): queries between services.
RPC_IDENTITY_CREDENTIAL = "par.rpc.identity.credential"  # fresh plaintext credential, notify only
RPC_IDENTITY_PUBLIC_KEY = "par.rpc.identity.public_key"  # token verification key
RPC_IDENTITY_RESPONDENTS = "par.rpc.identity.respondents"  # respondents of a unit / wave
RPC_SURVEY_NONRESPONDENTS = "par.rpc.survey.nonrespondents"  # who has not answered (no answers)
RPC_SURVEY_PROGRESS = "par.rpc.survey.progress"
RPC_NOTIFY_RESET = "par.rpc.notify.reset"  # identity: a respondent asked for a new credential
