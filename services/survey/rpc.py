"""NATS request-reply for other services (notify's reminders, dashboards), queue group "survey".

RPC_SURVEY_NONRESPONDENTS {"campaign_id", "unit_code"?} -> {"respondent_ids": [...]}: registered,
not withdrawn, no counted ballot. Ids only, never answers (participation is derived from the
log when asked, never stored: docs/architecture.md, decision 15).
RPC_SURVEY_PROGRESS {"campaign_id", "unit_code"?} -> what GET /api/progress answers.
A bad request gets {"error": ...}; every request gets a reply so callers never wait out a timeout.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import HTTPException
from nats.aio.msg import Msg
from sqlalchemy import text

from contracts import subjects
from parindex.web.service import Runtime
from services.survey import participation
from services.survey.api import progress

log = logging.getLogger(__name__)
QUEUE = "survey"


async def nonrespondents(rt: Runtime, campaign_id: str, unit_code: str | None) -> list[str]:
    sql = "SELECT respondent_id FROM survey_respondents WHERE campaign = :c AND NOT withdrawn"
    params: dict[str, Any] = {"c": campaign_id}
    if unit_code is not None:
        sql += " AND unit_code = :u"
        params["u"] = unit_code
    async with rt.sessions() as s:
        people = [r for (r,) in await s.execute(text(sql + " ORDER BY respondent_id"), params)]
    done = await participation.voted(rt.js, rt.settings.ballot_key, campaign_id, people)
    return [r for r in people if r not in done]


def _request(data: bytes) -> tuple[str, str | None]:
    body = json.loads(data or b"{}")
    if not isinstance(body, dict):
        raise ValueError("request must be a JSON object")
    campaign_id, unit_code = body.get("campaign_id"), body.get("unit_code")
    if not isinstance(campaign_id, str) or not campaign_id:
        raise ValueError("campaign_id is required")
    if unit_code is not None and not isinstance(unit_code, str):
        raise ValueError("unit_code must be a string")
    return campaign_id, unit_code


Handler = Callable[[Runtime, str, str | None], Awaitable[dict[str, Any]]]


async def _nonrespondents(rt: Runtime, campaign_id: str, unit: str | None) -> dict[str, Any]:
    return {"respondent_ids": await nonrespondents(rt, campaign_id, unit)}


async def _progress(rt: Runtime, campaign_id: str, unit: str | None) -> dict[str, Any]:
    return await progress(rt, campaign_id, unit)


def _responder(rt: Runtime, handler: Handler) -> Callable[[Msg], Awaitable[None]]:
    async def respond(msg: Msg) -> None:
        try:
            campaign_id, unit = _request(msg.data)
            reply: dict[str, Any] = await handler(rt, campaign_id, unit)
        except ValueError as exc:
            reply = {"error": "bad_request", "message": str(exc)}
        except HTTPException as exc:
            detail = exc.detail if isinstance(exc.detail, dict) else {"message": exc.detail}
            reply = {"error": "failed", **detail}
        except Exception:
            log.exception("survey rpc %s failed", msg.subject)
            reply = {"error": "internal"}
        if msg.reply:
            await msg.respond(json.dumps(reply, default=str).encode())

    return respond


async def start(rt: Runtime) -> None:
    subs = [
        await rt.nc.subscribe(
            subjects.RPC_SURVEY_NONRESPONDENTS, queue=QUEUE, cb=_responder(rt, _nonrespondents)
        ),
        await rt.nc.subscribe(
            subjects.RPC_SURVEY_PROGRESS, queue=QUEUE, cb=_responder(rt, _progress)
        ),
    ]

    async def stop() -> None:
        for sub in subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    rt.stopping.append(stop)
