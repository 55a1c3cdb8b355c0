"""The least a FastAPI service can do with a ballot: parse the same body, answer 201.

bench/ballots.py puts it behind the same front door and drives it with the same requests, so
the figure is the ceiling of the stack itself (uvicorn, FastAPI, pydantic, the door, loopback)
on this machine, before any of the ballot's own work: token, read, pseudonym, publish.

`logged` adds the one thing no ballot can skip: the durable publish-and-wait on the ballot's
own subject with `Nats-Expected-Last-Subject-Sequence: 0` (one ballot per person, decided by
the log, docs/architecture.md, decision 15). Its figure is the ceiling of any survey service
on this machine that keeps that rule, whatever else it does or skips.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import nats
from fastapi import FastAPI
from nats.js import JetStreamContext
from pydantic import BaseModel

from contracts import subjects
from contracts.events import Answer

app = FastAPI(openapi_url=None)


class Body(BaseModel):
    answers: list[Answer]


@app.post("/api/ballots", status_code=201)
async def ballot(body: Body) -> dict[str, str]:
    return {"receipt": "0" * 43, "submitted_on": "2023-09-25"}


_js: list[JetStreamContext] = []


@asynccontextmanager
async def _bus(_: FastAPI) -> AsyncIterator[None]:
    nc = await nats.connect(os.environ["PARINDEX_NATS_URL"])
    _js.append(nc.jetstream())
    try:
        yield
    finally:
        await nc.drain()


logged = FastAPI(openapi_url=None, lifespan=_bus)


@logged.post("/api/ballots", status_code=201)
async def logged_ballot(body: Body) -> dict[str, str]:
    event_id = uuid.uuid4().hex
    ack = await _js[0].publish(
        subjects.ballot("floor", event_id),
        body.model_dump_json().encode(),
        stream=subjects.EVENTS_STREAM,
        headers={"Nats-Msg-Id": event_id, "Nats-Expected-Last-Subject-Sequence": "0"},
    )
    return {"receipt": "0" * 43, "submitted_on": str(ack.seq)}
