"""Prometheus: events consumed and consumer lag, as scraped from the scoring app's /metrics."""

from __future__ import annotations

import asyncio
import re

import httpx
from prometheus_client.parser import text_string_to_metric_families

from contracts import subjects
from contracts.events import BallotSubmitted, CampaignDefined, make
from parindex.bus.publish import publish_event
from parindex.settings import Settings
from parindex.telemetry.lag import lag_updater, update_lag
from parindex.web.service import create_app
from services.scoring.service import SERVICE
from tests.scoring.test_method import WORKED_BALLOTS, worked_campaign
from tests.waiting import eventually


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def _publish_events(js, cid: str) -> int:
    camp = worked_campaign().model_copy(update={"id": cid})
    await publish_event(
        js,
        subjects.campaign(cid),
        make(CampaignDefined(campaign=camp), campaign_id=cid, producer="t"),
    )
    last = 0
    for b in WORKED_BALLOTS:
        assert isinstance(b, BallotSubmitted)
        p = await publish_event(
            js, subjects.ballot(cid, b.ballot_id), make(b, campaign_id=cid, producer="survey")
        )
        last = p.seq
    return last


async def test_scoring_metrics_show_consumed_events_and_lag(
    nc, nats_url, pg_url, campaign_id, tmp_path
) -> None:
    js = nc.jetstream()
    last = await _publish_events(js, campaign_id)
    settings = Settings(nats_url=nats_url, database_url=pg_url, state_dir=tmp_path)
    app = create_app(SERVICE, settings)
    async with app.router.lifespan_context(app):
        runner = app.state.rt.extras["runner"]
        await eventually(lambda: runner.applied_seq >= last, timeout=30)
        updater = asyncio.ensure_future(lag_updater(js, [runner], interval=0.1))
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://scoring") as http:

                async def scraped() -> dict | None:
                    text = (await http.get("/metrics")).text
                    s = _samples(text)
                    stream_last = s.get(("parindex_stream_last_sequence", ()), 0)
                    lag = s.get(("parindex_consumer_lag", (("handler", "scoring"),)), stream_last)
                    # the service's own updater may have measured before the catch-up: wait for
                    # a measurement taken after it
                    return s if stream_last >= last and stream_last - lag >= last else None

                s = await eventually(scraped, timeout=15)
        finally:
            updater.cancel()
            await asyncio.gather(updater, return_exceptions=True)
        consumed = s[("parindex_events_consumed_total", (("handler", "scoring"),))]
        assert consumed >= len(WORKED_BALLOTS) + 1  # this test's events at least
        stream_last = s[("parindex_stream_last_sequence", ())]
        lag = s[("parindex_consumer_lag", (("handler", "scoring"),))]
        applied = s[("parindex_applied_sequence", (("handler", "scoring"),))]
        assert 0 <= lag <= stream_last - last + len(WORKED_BALLOTS)
        assert stream_last - lag <= runner.applied_seq  # lag was measured against applied_seq
        assert applied >= last

        # The gauge follows the runner: a runner that applied nothing lags by the whole stream.
        class Stalled:
            class projection:  # noqa: N801 - mimics ProjectionRunner.projection
                name = "stalled-test"

            applied_seq = 0

        measured = await update_lag(js, [Stalled()])
        async with httpx.AsyncClient(transport=transport, base_url="http://scoring") as http:
            text = (await http.get("/metrics")).text
        m = re.search(r'parindex_consumer_lag\{handler="stalled-test"\} (\S+)', text)
        assert m and float(m.group(1)) == measured
