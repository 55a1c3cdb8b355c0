"""One trace from the HTTP edge to every projection that applies the event.

Survey and scoring run in-process on real NATS and PostgreSQL; an in-memory exporter is added
to the process's one tracer provider (it can be set only once, so setup_tracing adds to it).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from parindex.settings import Settings
from parindex.telemetry.tracing import setup_tracing
from parindex.web.service import create_app
from services.scoring.service import SERVICE as SCORING
from tests.survey.test_service import (
    full_answers,
    respondent,
    running,
    setup_open_campaign,
)
from tests.waiting import eventually


@pytest.fixture
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    setup_tracing("parindex-tests", exporter=exporter, simple=True)
    yield exporter
    exporter.shutdown()  # the processor stays on the provider but exports nothing more


@contextlib.asynccontextmanager
async def scoring_app(nats_url: str, pg_url: str, state_dir: Path) -> AsyncIterator:
    app = create_app(SCORING, Settings(nats_url=nats_url, database_url=pg_url, state_dir=state_dir))
    async with app.router.lifespan_context(app):
        yield app


def _named(finished: tuple[ReadableSpan, ...], name: str, event_id: str) -> list[ReadableSpan]:
    return [
        s
        for s in finished
        if s.name == name and (s.attributes or {}).get("parindex.event_id") == event_id
    ]


def _ancestry(span: ReadableSpan, finished: tuple[ReadableSpan, ...]) -> list[ReadableSpan]:
    """span, its parent, its parent's parent, ... as far as the finished spans reach."""
    by_id = {s.context.span_id: s for s in finished}
    chain = [span]
    while chain[-1].parent is not None and chain[-1].parent.span_id in by_id:
        chain.append(by_id[chain[-1].parent.span_id])
    return chain


async def test_ballot_trace_runs_from_http_to_both_projections(
    spans, nats_url, pg_url, signing_key, identity_stub, nc, campaign_id, tmp_path
) -> None:
    async with (
        running(nats_url, pg_url, signing_key) as survey,
        scoring_app(nats_url, pg_url, tmp_path) as scoring,
    ):
        await setup_open_campaign(survey, nc, campaign_id, [("an", "H-A", "02")])
        an = survey.as_(respondent(campaign_id, "an"))
        spans.clear()
        r = await survey.client.post(
            "/api/ballots",
            json={"answers": full_answers("H-A"), "client_submission_id": "trace-1"},
            headers=an,
        )
        assert r.status_code == 201, r.text

        def publish_span() -> ReadableSpan | None:
            found = [
                s
                for s in spans.get_finished_spans()
                if s.name == "publish BallotSubmitted"
                and (s.attributes or {})
                .get("messaging.destination.name", "")
                .startswith(f"par.evt.{campaign_id}.ballot.")
            ]
            return found[0] if found else None

        publish = await eventually(publish_span)
        event_id = publish.attributes["parindex.event_id"]

        def consumers() -> dict[str, ReadableSpan] | None:
            got = {
                name: _named(spans.get_finished_spans(), f"{name} apply BallotSubmitted", event_id)
                for name in ("survey", "scoring")
            }
            return {k: v[0] for k, v in got.items()} if all(got.values()) else None

        applied = await eventually(consumers, timeout=30)
        assert scoring.state.rt.extras["runner"].applied_seq > 0

    finished = spans.get_finished_spans()
    http = [
        s
        for s in finished
        if s.name == "POST /api/ballots" and s.context.trace_id == publish.context.trace_id
    ]
    assert len(http) == 1, [s.name for s in finished]
    server = http[0]
    assert server.kind == SpanKind.SERVER and server.parent is None
    assert server.attributes["http.response.status_code"] == 201

    trace_id = server.context.trace_id
    assert publish.kind == SpanKind.PRODUCER
    assert publish.context.trace_id == trace_id
    # Publish descends from the server span; FastAPI's own in-process spans (fastapi.endpoint,
    # INTERNAL) may sit between them, nothing else.
    chain = _ancestry(publish, finished)
    assert chain[-1] is server, [s.name for s in chain]
    for between in chain[1:-1]:
        assert between.kind == SpanKind.INTERNAL and between.context.trace_id == trace_id
        assert not between.parent.is_remote

    for name, span in applied.items():
        assert span.kind == SpanKind.CONSUMER, name
        assert span.context.trace_id == trace_id, name
        assert span.parent is not None and span.parent.span_id == publish.context.span_id, name
        assert span.parent.is_remote, name  # continued from the NATS headers, not in-process
        assert (
            span.attributes["messaging.nats.stream_sequence"]
            == publish.attributes["messaging.nats.stream_sequence"]
        ), name
    # One span per projection for this event: no re-application after the commit.
    assert len(_named(finished, "survey apply BallotSubmitted", event_id)) == 1
    assert len(_named(finished, "scoring apply BallotSubmitted", event_id)) == 1
