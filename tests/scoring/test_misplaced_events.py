"""An event read from a subject that is not its type's own is dead-lettered, never applied.

The bus lets each service publish only on its own subjects, but a subject does not say what a
message holds (docs/architecture.md, decision 47): identity may publish on respondent subjects,
notify on delivery subjects, scoring on its results subject. Here each of them puts another
service's event on its own subject, and a ballot names another campaign than its subject's.
Scoring's projection counts exactly the genuine ballots and dead-letters each forgery, saying
where that type travels.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from contracts import subjects
from contracts.campaign import Quota
from contracts.events import CampaignDefined, DeadlineReached, encode, make
from parindex.bus.deadletter import dead_letter_count, dead_letters
from parindex.bus.projection import ProjectionRunner
from parindex.bus.publish import publish_event
from parindex.db.engine import prepare, sessionmaker
from parindex.settings import Settings, database_url_for
from services.scoring.audit import audit
from services.scoring.method import digest
from services.scoring.projection import ScoringProjection, load_rows
from services.scoring.service import VERSIONS
from tests.scoring.test_method import WORKED_BALLOTS, WORKED_DIGEST, ballot, worked_campaign


async def _raw(js, subject: str, env) -> None:
    """Straight onto the stream, as a service holding publish rights on `subject` could."""
    await js.publish(subject, encode(env), stream=subjects.EVENTS_STREAM)


async def _forge_and_vote(js, cid: str) -> dict[str, object]:
    """The worked campaign, four forgeries and the worked ballots; the forgeries by subject."""
    camp = worked_campaign().model_copy(update={"id": cid})
    await publish_event(
        js,
        subjects.campaign(cid),
        make(CampaignDefined(campaign=camp), campaign_id=cid, producer="t"),
    )
    forged = {
        # notify: the deadline, before every genuine ballot, would leave them all uncounted
        subjects.delivery(cid, "r1"): make(
            DeadlineReached(deadline=datetime.now(UTC)), campaign_id=cid, producer="notify"
        ),
        # identity: a ballot that would lift S02
        subjects.respondent(cid, "r9"): make(
            ballot("b9", "S02", {"Q1": "T", "Q2": "T", "Q3": "T"}), campaign_id=cid, producer="x"
        ),
        # scoring: a redefinition with another quota would change every adjusted score
        subjects.results(cid): make(
            CampaignDefined(
                campaign=camp.model_copy(
                    update={"version": 2, "quotas": [Quota(form_code="03", ballots=1)]}
                )
            ),
            campaign_id=cid,
            producer="scoring",
        ),
        # survey's own kind of subject, but another campaign's envelope
        subjects.ballot(cid, "p10"): make(
            ballot("b10", "S02", {"Q1": "T", "Q2": "T", "Q3": "T"}),
            campaign_id=f"{cid}-other",
            producer="survey",
        ),
    }
    for subject, env in forged.items():
        await _raw(js, subject, env)
    for b in WORKED_BALLOTS:
        await publish_event(
            js, subjects.ballot(cid, b.ballot_id), make(b, campaign_id=cid, producer="survey")
        )

    return forged


@pytest.mark.timeout(60)
async def test_another_services_event_on_its_own_subject_is_not_applied(
    nc, pg_url: str, campaign_id: str
) -> None:
    js = nc.jetstream()
    cid = campaign_id
    forged = await _forge_and_vote(js, cid)
    engine = await prepare(database_url_for(pg_url, f"t_{uuid.uuid4().hex[:10]}"), VERSIONS, 2)
    try:
        sessions = sessionmaker(engine)
        runner = ProjectionRunner(
            nc, sessions, ScoringProjection(), filter_subject=subjects.all_events(cid)
        )
        await runner.catch_up()
        async with sessions() as session:
            assert digest(await load_rows(session, cid)) == WORKED_DIGEST
    finally:
        await engine.dispose()

    letters = {
        d.subject: d.reason
        for d in await dead_letters(js, limit=50, consumer="scoring")  # the newest
        if d.subject.startswith(f"par.evt.{cid}.")
    }
    assert set(letters) == set(forged), letters
    assert "travels only on par.evt.{campaign}.deadline" in letters[subjects.delivery(cid, "r1")]
    assert (
        "travels only on par.evt.{campaign}.ballot.{pseudonym}"
        in letters[subjects.respondent(cid, "r9")]
    )
    assert "travels only on par.evt.{campaign}.campaign" in letters[subjects.results(cid)]
    assert "another campaign's subject" in letters[subjects.ballot(cid, "p10")]


@pytest.mark.timeout(60)
async def test_the_audit_names_the_refused_events_and_writes_nothing(
    nc, nats_url: str, pg_url: str, campaign_id: str, tmp_path
) -> None:
    """The auditor may only read the log: what scoring dead-letters, the audit lists."""
    js = nc.jetstream()
    forged = await _forge_and_vote(js, campaign_id)
    letters_before = await dead_letter_count(js)
    settings = Settings(nats_url=nats_url, database_url=pg_url, state_dir=tmp_path)
    report = await audit(nc, settings, campaign_id, compare_live=False)
    assert report.digest == WORKED_DIGEST, report.render()
    assert await dead_letter_count(js) == letters_before
    assert len(report.refused) == len(forged), report.refused
    for subject in forged:
        assert any(f" on {subject}: " in r for r in report.refused), (subject, report.refused)
    text = report.render()
    assert f"refused events, not counted (as by scoring): {len(forged)}" in text
    # The results subject holds a forgery where only the frozen results belong: named, FAILED.
    results = subjects.results(campaign_id)
    assert report.differences == [
        f"{results} holds CampaignDefined at sequence {_seq_on(report, results)}, "
        "where only ResultsPublished belongs"
    ]
    assert not report.ok and "FAILED" in text


def _seq_on(report, subject: str) -> str:
    return next(r.split()[1] for r in report.refused if f" on {subject}: " in r)
