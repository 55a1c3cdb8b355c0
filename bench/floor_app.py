"""The least a FastAPI service can do with a ballot: parse the same body, answer 201.

bench/ballots.py puts it behind the same front door and drives it with the same requests, so
the figure is the ceiling of the stack itself (uvicorn, FastAPI, pydantic, the door, loopback)
on this machine, before any of the ballot's own work: token, read, pseudonym, publish.
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel

from contracts.events import Answer

app = FastAPI(openapi_url=None)


class Body(BaseModel):
    answers: list[Answer]


@app.post("/api/ballots", status_code=201)
async def ballot(body: Body) -> dict[str, str]:
    return {"receipt": "0" * 43, "submitted_on": "2023-09-25"}
