"""Every event type has one channel, and the subjects the services publish on are those
channels (docs/architecture.md, decision 47): the check the projections make on every event."""

from __future__ import annotations

import pytest

from contracts import subjects
from contracts.events import PAYLOADS

pytestmark = pytest.mark.unit

C = "soctrang-2023"
# The subject each publisher uses (services/*: publish_event calls), per type.
PUBLISHED_ON = {
    "CampaignDefined": subjects.campaign(C),
    "CampaignClosed": subjects.campaign(C),
    "RespondentRegistered": subjects.respondent(C, "r1"),
    "RespondentUpdated": subjects.respondent(C, "r1"),
    "RespondentWithdrawn": subjects.respondent(C, "r1"),
    "CredentialsIssued": subjects.respondent(C, "r1"),
    "ReminderRequested": subjects.respondent_reminder(C, "r1"),
    "StaffAccountCreated": subjects.staff_account("Ng.Văn A"),
    "StaffAccountDisabled": subjects.staff_account("admin"),
    "StaffPasswordReset": subjects.staff_account("admin"),
    "WaveOpened": subjects.wave(C, "w1"),
    "BallotSubmitted": subjects.ballot(C, "0f" * 16),
    "DeadlineReached": subjects.deadline(C),
    "InvitationSent": subjects.delivery(C, "r1"),
    "ReminderSent": subjects.delivery(C, "r1"),
    "NoticeSent": subjects.delivery(C, "r1"),
    "DeliveryFailed": subjects.delivery(C, "r1"),
    "ResultsPublished": subjects.results(C),
    "ResultsReleased": subjects.release(C),
}


def test_every_event_type_has_exactly_one_channel() -> None:
    assert set(PUBLISHED_ON) == set(PAYLOADS)
    homes = [t for _, types in subjects.CHANNELS.values() for t in types]
    assert sorted(homes) == sorted(PAYLOADS)


def _channel(event_type: str) -> str:
    return next(a for a, (_, types) in subjects.CHANNELS.items() if event_type in types)


@pytest.mark.parametrize("event_type", sorted(PUBLISHED_ON))
def test_each_type_is_read_from_its_own_subject_only(event_type: str) -> None:
    campaign = subjects.STAFF_CAMPAIGN if event_type.startswith("Staff") else C
    assert subjects.misplaced(PUBLISHED_ON[event_type], event_type, campaign) is None
    for other_type, subject in PUBLISHED_ON.items():
        if _channel(other_type) != _channel(event_type):  # another service's or kind's subject
            assert subjects.misplaced(subject, event_type, campaign), (event_type, subject)


@pytest.mark.parametrize(
    ("subject", "event_type", "campaign", "says"),
    [
        ("par.evt.c1.ballot.p1", "BallotSubmitted", "c2", "another campaign's subject"),
        ("par.evt.c1.ballot", "BallotSubmitted", "c1", "travels only on"),
        ("par.evt.c1.ballot.p1.x", "BallotSubmitted", "c1", "travels only on"),
        ("par.evt.c1.respondent.r1", "ReminderRequested", "c1", "travels only on"),
        ("par.evt.c1.account.admin", "StaffAccountDisabled", "c1", "travels only on"),
        ("par.evt.staff.account.admin", "StaffAccountDisabled", "c1", "another campaign"),
        ("par.dlq.scoring", "DeadlineReached", "c1", "travels only on"),
    ],
)
def test_forgeries_are_named(subject: str, event_type: str, campaign: str, says: str) -> None:
    assert says in (subjects.misplaced(subject, event_type, campaign) or "")


def test_a_type_without_a_channel_is_left_to_the_decoder() -> None:
    assert subjects.misplaced("par.evt.c1.anything", "NoSuchEvent", "c1") is None
