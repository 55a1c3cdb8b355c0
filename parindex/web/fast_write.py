"""A hot JSON write answered without FastAPI's per-request machinery when the request is ordinary.

A ballot spent about a fifth of survey's CPU in FastAPI's routing, dependency solving and
two-step body validation (issue #18). `FastJsonWrite` answers one route's ordinary requests
itself, with the same checks the route's dependencies make, through the same functions: the
session (`deps.principal`, verified once per request), the role, the campaign scope (a scoped
principal is never taken here) and the JSON write header of `csrf.json_csrf`; the body is
validated in one pass by the route's own model. Every other request — no session, another role,
a scoped account, a missing header, another content type, a body that does not validate — goes
on to the FastAPI route itself with the body replayed, so each refusal and its words are that
route's. Whatever the handler raises reaches the app's exception handlers as the route's would
(docs/architecture.md, decision 46).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from fastapi import FastAPI, Request
from pydantic import BaseModel, ValidationError
from starlette.responses import Response
from starlette.routing import Match, Route

from parindex.web.auth import Principal
from parindex.web.csrf import JSON_HEADER, JSON_HEADER_VALUE, routes
from parindex.web.deps import principal
from parindex.web.edge import Message, Receive, Scope, Send
from parindex.web.scope import scoped_to

M = TypeVar("M", bound=BaseModel)
DECLINED = "parindex.fast_write_declined"  # scope key: route this request the ordinary way


class _FastRoute(Route):
    """Matches its path and method unless the request was handed back to the ordinary routes."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get(DECLINED):
            return Match.NONE, {}
        return super().matches(scope)


class FastJsonWrite(Generic[M]):
    """POST `path` with a `model` body from a principal of `role`, answered by `handle`."""

    def __init__(
        self,
        path: str,
        model: type[M],
        role: str,
        handle: Callable[[Request, Principal, M], Awaitable[Response]],
    ) -> None:
        self.path = path
        self.model = model
        self.role = role
        self.handle = handle

    def mount(self, app: FastAPI) -> None:
        """In front of the app's own routes; the FastAPI route for the same path must exist."""
        if not any(
            getattr(r, "path", None) == self.path and "POST" in (getattr(r, "methods", None) or ())
            for r in routes(app)
        ):
            raise RuntimeError(f"no FastAPI route POST {self.path} to hand requests back to")
        answer = _Answer(self, app)
        app.router.routes.insert(0, _FastRoute(self.path, endpoint=answer, methods=["POST"]))

    async def ordinary(self, request: Request, body: bytes) -> tuple[Principal, M] | None:
        """The principal and the body when every check the route makes would pass; else None."""
        headers = request.headers
        if headers.get("content-type") != "application/json":
            return None
        if headers.get(JSON_HEADER, "").lower() != JSON_HEADER_VALUE:
            return None  # json_csrf's other way (the session's token) is left to the route
        p = await principal(request)
        if p is None or p.role != self.role or scoped_to(p) is not None:
            return None
        try:
            return p, self.model.model_validate_json(body)
        except ValidationError:
            return None


class _Answer(Generic[M]):
    """The ASGI endpoint of one FastJsonWrite in one app."""

    def __init__(self, write: FastJsonWrite[M], app: FastAPI) -> None:
        self.write = write
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        body = await request.body()
        found = await self.write.ordinary(request, body)
        if found is None:
            await self._hand_back(scope, receive, send, body)
            return
        p, value = found
        response = await self.write.handle(request, p, value)
        await response(scope, receive, send)

    async def _hand_back(self, scope: Scope, receive: Receive, send: Send, body: bytes) -> None:
        """The ordinary routes answer, reading the body this route already read."""
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        scope[DECLINED] = True
        await self.app.router(scope, replay, send)
