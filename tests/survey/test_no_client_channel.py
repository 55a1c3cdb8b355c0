"""A respondent cannot tag their ballot on the log through tracing headers.

W3C `traceparent`/`tracestate` and `baggage` sent by a client used to be continued by the HTTP
span and injected into the ballot event's NATS headers: a trace id or a word chosen by a vote
buyer would mark the ballot for anyone reading the log (docs/architecture.md, decision 45).
"""

from __future__ import annotations

from contracts import subjects
from contracts.events import decode
from services.survey.secrecy import pseudonym
from tests.survey.test_service import (
    KEY,
    Survey,
    full_answers,
    respondent,
    setup_open_campaign,
)

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CLIENT = {
    "traceparent": f"00-{TRACE_ID}-b7ad6b7169203331-01",
    "tracestate": "buyer=alice1234",
    "baggage": "voter=alice1234,lot=7",
}


async def test_a_ballot_carries_no_client_chosen_trace_or_baggage(
    survey: Survey, nc, campaign_id: str
) -> None:
    await setup_open_campaign(survey, nc, campaign_id, [("an", "H-A", "02")])
    headers = survey.as_(respondent(campaign_id, "an")) | CLIENT
    r = await survey.client.post(
        "/api/ballots", json={"answers": full_answers("H-A")}, headers=headers
    )
    assert r.status_code == 201, r.text
    msg = await nc.jetstream().get_last_msg(
        subjects.EVENTS_STREAM, subjects.ballot(campaign_id, pseudonym(KEY, campaign_id, "an"))
    )
    held = dict(msg.headers or {})
    assert "baggage" not in held and "tracestate" not in held, held
    flat = " ".join(f"{k}={v}" for k, v in held.items())
    assert TRACE_ID not in flat and "alice1234" not in flat, held
    # The trace across the hop stays (decision 11), rooted at the service, not the client.
    assert held.get("traceparent", "").startswith("00-"), held


async def test_the_order_of_answers_is_the_forms_not_the_clients(
    survey: Survey, nc, campaign_id: str
) -> None:
    """A permutation of 2 units × 2 questions, or of a real form's hundreds of answers, would be
    a mark a vote buyer could look for on the log."""
    people = [("an", None, "01"), ("binh", None, "01")]
    await setup_open_campaign(survey, nc, campaign_id, people)
    answers = full_answers("H-A") + full_answers("H-B", "no")
    orders = {"an": answers, "binh": [answers[3], answers[0], answers[2], answers[1]]}
    held = []
    for rid, sent in orders.items():
        r = await survey.client.post(
            "/api/ballots",
            json={"answers": sent},
            headers=survey.as_(respondent(campaign_id, rid, None, "01")),
        )
        assert r.status_code == 201, r.text
        msg = await nc.jetstream().get_last_msg(
            subjects.EVENTS_STREAM, subjects.ballot(campaign_id, pseudonym(KEY, campaign_id, rid))
        )
        _, payload = decode(msg.data)
        held.append([(a.unit_code, a.question_id, a.option_code) for a in payload.answers])
    form_order = [
        ("H-A", "Q1", "yes"),
        ("H-A", "Q2", "yes"),
        ("H-B", "Q1", "no"),
        ("H-B", "Q2", "no"),
    ]
    assert held == [form_order, form_order]
