"""Checking a ballot against its form, and building the BallotSubmitted event.

Pure functions, so the rules can be tested without a server. A respondent must be able to fix
every problem in one go: all problems are returned, each naming the question and unit.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from contracts.campaign import Campaign
from contracts.events import Answer, BallotSubmitted, Envelope, make

# uuid5 namespace for ids derived from (pseudonym, client_submission_id): a retried request is
# the same event, so JetStream's Msg-Id dedupe and the ballot subject recognise it.
BALLOT_NS = uuid.UUID("6f1d3c1e-6a47-4b5e-9d43-2b7f0f3e5a10")


def problems(
    campaign: Campaign, form_code: str, unit_code: str | None, answers: list[Answer]
) -> list[dict[str, str | None]]:
    """Everything wrong with these answers, as {unit_code, question_id, message}."""
    form = campaign.form(form_code)
    rated = campaign.units_rated_by(form_code, unit_code)
    questions = {q.id: q for q in form.questions()}
    out: list[dict[str, str | None]] = []

    def add(unit: str | None, qid: str | None, message: str) -> None:
        out.append({"unit_code": unit, "question_id": qid, "message": message})

    if not rated:
        add(None, None, f"form {form_code} rates your own unit, but you have no unit")
    seen: set[tuple[str, str]] = set()
    for a in answers:
        if a.unit_code not in rated:
            add(a.unit_code, a.question_id, f"unit {a.unit_code} is not rated on form {form_code}")
            continue
        q = questions.get(a.question_id)
        if q is None:
            add(a.unit_code, a.question_id, f"question {a.question_id} is not on form {form_code}")
            continue
        if (a.unit_code, a.question_id) in seen:
            add(
                a.unit_code,
                a.question_id,
                f"question {a.question_id} is answered twice for unit {a.unit_code}",
            )
            continue
        seen.add((a.unit_code, a.question_id))
        valid = [o.code for o in q.options]
        if a.option_code not in valid:
            add(
                a.unit_code,
                a.question_id,
                f"question {a.question_id}: option {a.option_code!r} is not one of "
                + ", ".join(valid),
            )
    for unit in rated:
        for q in questions.values():
            if q.required and (unit, q.id) not in seen:
                add(unit, q.id, f"question {q.id} is required for unit {unit} and not answered")
    return out


def in_form_order(
    campaign: Campaign, form_code: str, unit_code: str | None, answers: list[Answer]
) -> list[Answer]:
    """The answers in the form's order (rated units, then questions), whatever order they came in.

    The order a client sends is not part of a vote; kept on the log, a permutation chosen by a
    vote buyer would mark the ballot for anyone reading it (docs/architecture.md, decision 45).
    """
    units = {u: i for i, u in enumerate(campaign.units_rated_by(form_code, unit_code))}
    questions = {q.id: i for i, q in enumerate(campaign.form(form_code).questions())}
    last_unit, last_question = len(units), len(questions)
    return sorted(
        answers,
        key=lambda a: (
            units.get(a.unit_code, last_unit),
            questions.get(a.question_id, last_question),
            a.unit_code,
            a.question_id,
            a.option_code,
        ),
    )


def local_day(campaign: Campaign, now: datetime) -> date:
    return now.astimezone(ZoneInfo(campaign.timezone)).date()


def ballot_envelope(
    campaign: Campaign,
    *,
    pseudonym: str,
    form_code: str,
    unit_code: str | None,
    answers: list[Answer],
    now: datetime,
    client_submission_id: str | None = None,
) -> Envelope:
    """The event: no respondent, no time finer than the day (docs/architecture.md, decision 7)."""
    if client_submission_id:
        event_id = str(uuid.uuid5(BALLOT_NS, f"event|{pseudonym}|{client_submission_id}"))
        ballot_id = str(uuid.uuid5(BALLOT_NS, f"ballot|{pseudonym}|{client_submission_id}"))
    else:
        event_id, ballot_id = str(uuid.uuid4()), str(uuid.uuid4())
    day = local_day(campaign, now)
    form = campaign.form(form_code)
    payload = BallotSubmitted(
        ballot_id=ballot_id,
        form_code=form_code,
        unit_code=unit_code if form.rates == "own_unit" else None,
        submitted_on=day,
        answers=in_form_order(campaign, form_code, unit_code, answers),
    )
    return make(
        payload,
        campaign_id=campaign.id,
        producer="survey",
        event_id=event_id,
        occurred_at=datetime.combine(day, time(0), UTC),
    )
