"""Retry classification of publish_event without servers (docs/architecture.md, decision 23)."""

from __future__ import annotations

import time
from typing import Any, cast

import pytest
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import APIError, BadRequestError, NoStreamResponseError, ServiceUnavailableError

from contracts.events import WaveOpened, make
from parindex.bus.publish import PublishUnavailable, publish_event

pytestmark = pytest.mark.unit


class FakeJetStream:
    """Answers each publish with the next scripted failure, then acks."""

    def __init__(self, failures: list[Exception], always: Exception | None = None) -> None:
        self.failures = list(failures)
        self.always = always
        self.calls: list[dict[str, str]] = []

    async def publish(self, subject: str, body: bytes, **kw: Any) -> PubAck:
        self.calls.append(dict(kw["headers"]))
        if self.always is not None:
            raise self.always
        if self.failures:
            raise self.failures.pop(0)
        return PubAck(stream="EVENTS", seq=7, duplicate=len(self.calls) > 1)


def _js(fake: FakeJetStream) -> JetStreamContext:
    return cast(JetStreamContext, fake)  # only publish() is called


def _envelope() -> Any:
    from datetime import UTC, datetime

    opens = datetime(2023, 9, 22, tzinfo=UTC)
    return make(WaveOpened(wave_id="w1", opens_at=opens), campaign_id="c1", producer="t")


def _in_process() -> APIError:
    return APIError(code=409, err_code=10158, description="duplicate message id is in process")


@pytest.mark.parametrize(
    "failure",
    [
        NoStreamResponseError(),
        NoRespondersError(),
        _in_process(),
        ServiceUnavailableError(code=503, description="jetstream unavailable"),
        NatsTimeout(),
    ],
    ids=["no-stream-response", "no-responders", "10158-in-process", "503", "timeout"],
)
async def test_transient_failure_then_success_is_success(failure: Exception) -> None:
    js = FakeJetStream([failure])
    env = _envelope()
    published = await publish_event(_js(js), "par.x", env, budget=5)
    assert published.seq == 7
    assert len(js.calls) == 2
    assert {c["Nats-Msg-Id"] for c in js.calls} == {env.event_id}  # the same Msg-Id each time


async def test_always_failing_raises_publish_unavailable_within_the_bound() -> None:
    js = FakeJetStream([], always=NoStreamResponseError())
    t0 = time.monotonic()
    with pytest.raises(PublishUnavailable) as caught:
        await publish_event(_js(js), "par.x", _envelope(), budget=1.0)
    assert time.monotonic() - t0 < 2.5  # the budget, and a busy machine's slack
    assert len(js.calls) >= 3  # it did retry, with backoff
    assert isinstance(caught.value.cause, NoStreamResponseError)


async def test_a_real_refusal_is_not_retried() -> None:
    js = FakeJetStream([BadRequestError(code=400, err_code=10054, description="bad")])
    with pytest.raises(BadRequestError):
        await publish_event(_js(js), "par.x", _envelope(), budget=5)
    assert len(js.calls) == 1
