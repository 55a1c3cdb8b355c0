"""Request-reply written once (parindex/bus/rpc.py): typed calls, one error format, discovery."""

from __future__ import annotations

import json
import uuid

import pytest

from contracts.rpc import CREDENTIAL, Endpoint, Message
from parindex.bus import rpc


class Ask(Message):
    n: int
    note: str | None = None


class Answer(Message):
    double: int
    note: str | None = None


def _endpoint() -> Endpoint[Ask, Answer]:
    service = "t" + uuid.uuid4().hex[:12]
    return Endpoint(f"par.rpc.{service}.double", Ask, Answer, service, "doubles n")


async def _serve(nc, ep: Endpoint[Ask, Answer]):
    async def double(req: Ask) -> Answer:
        if req.n < 0:
            raise rpc.RpcError("negative", "n must not be negative")
        if req.n == 13:
            raise RuntimeError("secret internals")
        return Answer(double=2 * req.n)

    return await rpc.serve(nc, ep.service, [rpc.route(ep, double)])


async def test_typed_call_and_one_error_format(nc) -> None:
    ep = _endpoint()
    svc = await _serve(nc, ep)
    try:
        assert await rpc.call(nc, ep, Ask(n=21)) == Answer(double=42)
        raw = await nc.request(ep.subject, b'{"n": 2}', timeout=5)
        assert json.loads(raw.data) == {"double": 4}  # unset fields are not sent

        with pytest.raises(rpc.RpcError) as refused:
            await rpc.call(nc, ep, Ask(n=-1))
        assert (refused.value.code, refused.value.message) == ("negative", "n must not be negative")

        with pytest.raises(rpc.RpcError) as crashed:
            await rpc.call(nc, ep, Ask(n=13))
        assert crashed.value.code == "internal" and "secret" not in str(crashed.value)

        bad = await nc.request(ep.subject, b'{"n": "x", "extra": 1}', timeout=5)
        body = json.loads(bad.data)
        assert body["error"]["code"] == "bad_request" and set(body) == {"error"}
        assert "x" not in body["error"]["message"].split(": ", 1)[1]  # the value is not echoed
        assert bad.headers["Nats-Service-Error-Code"] == "bad_request"
        hostile = await nc.request(ep.subject, b'{"n": 1, "a\\r\\nX-Evil: 1\\u0000": 2}', timeout=5)
        assert json.loads(hostile.data)["error"]["code"] == "bad_request"
        assert "X-Evil" not in (hostile.headers or {})
        assert "\r" not in hostile.headers["Nats-Service-Error"]
        not_json = json.loads((await nc.request(ep.subject, b"{", timeout=5)).data)
        assert not_json["error"]["code"] == "bad_request"
    finally:
        await svc.stop()


async def test_nobody_answering_is_unavailable(nc) -> None:
    with pytest.raises(rpc.RpcUnavailable) as gone:
        await rpc.call(nc, _endpoint(), Ask(n=1), timeout=1)
    assert gone.value.code == "unavailable"


async def test_services_are_discoverable_and_share_a_queue_group(nc) -> None:
    ep = _endpoint()
    first, second = await _serve(nc, ep), await _serve(nc, ep)
    try:
        ping = json.loads((await nc.request(f"$SRV.PING.{ep.service}", b"", timeout=5)).data)
        assert ping["name"] == ep.service
        info = json.loads((await nc.request(f"$SRV.INFO.{ep.service}", b"", timeout=5)).data)
        assert [e["subject"] for e in info["endpoints"]] == [ep.subject]
        assert info["endpoints"][0]["queue_group"] == ep.service
        for n in range(6):  # a queue group: each request is answered once
            sub = await nc.subscribe(nc.new_inbox())
            await nc.publish(ep.subject, json.dumps({"n": n}).encode(), reply=sub.subject)
            assert json.loads((await sub.next_msg(timeout=5)).data) == {"double": 2 * n}
            with pytest.raises(Exception):  # noqa: B017 - nats' TimeoutError, no second answer
                await sub.next_msg(timeout=0.3)
            await sub.unsubscribe()
    finally:
        await first.stop()
        await second.stop()


async def test_an_endpoint_is_served_only_by_its_service(nc) -> None:
    with pytest.raises(ValueError, match="served by identity"):
        await rpc.serve(nc, "notify", [rpc.route(CREDENTIAL, lambda req: None)])  # type: ignore[arg-type, return-value]  # never called
