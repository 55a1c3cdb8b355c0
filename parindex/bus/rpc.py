"""Request-reply, written once: serve endpoints with nats.micro, call them with one typed client.

Every `par.rpc.*` endpoint is declared in contracts/rpc.py with its request and reply models.
`serve` registers a service's handlers as a nats.micro service (queue group = the service, so
instances share the load; `$SRV.PING|INFO|STATS` for discovery by operators); a handler takes
the request model and returns the reply model, and signals a refusal by raising `RpcError`.
Anything else it raises is logged and answered `internal`. `call` sends a request model and
returns the reply model or raises `RpcError` (`RpcUnavailable` when nobody answered in time).
Errors travel in one format, `{"error": {"code", "message"}}`, with the same code and message in
nats.micro's Nats-Service-Error-Code / Nats-Service-Error headers (docs/architecture.md,
decision 28). A reply goes only to the requester's reply subject (decision 18).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from nats import micro
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.micro.request import ERROR_CODE_HEADER, ERROR_HEADER
from pydantic import ValidationError

from contracts.rpc import Endpoint, ErrorBody, ErrorReply, Message

log = logging.getLogger(__name__)

BAD_REQUEST = "bad_request"
BAD_REPLY = "bad_reply"
INTERNAL = "internal"
UNAVAILABLE = "unavailable"
VERSION = "1.0.0"
Req = TypeVar("Req", bound=Message)
Rep = TypeVar("Rep", bound=Message)


class RpcError(Exception):
    """A request-reply refusal: a stable code for programs, a short English message."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message

    def reply(self) -> ErrorReply:
        return ErrorReply(error=ErrorBody(code=self.code, message=_printable(self.message, 1000)))


class RpcUnavailable(RpcError):
    """Nobody answered (no responder, or not within the timeout): worth trying again later."""


def _printable(text: str, limit: int) -> str:
    """One line of printable ASCII: messages go into a NATS header and a bounded JSON field."""
    return re.sub(r"[^\x20-\x7e]", "?", text)[:limit]


def _problem(exc: ValidationError) -> str:
    """The first validation problem, by field, without echoing the value sent."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "request"
    return _printable(f"{where}: {first.get('msg', 'invalid')}", 300)


@dataclass(frozen=True)
class Route(Generic[Req, Rep]):
    endpoint: Endpoint[Req, Rep]
    handler: Callable[[Req], Awaitable[Rep]]


def route(
    endpoint: Endpoint[Req, Rep], handler: Callable[[Req], Awaitable[Rep]]
) -> Route[Any, Any]:
    """Pair an endpoint with its handler, type-checked together."""
    return Route(endpoint, handler)


def _wrap(r: Route[Any, Any]) -> Callable[[micro.Request], Awaitable[None]]:
    ep = r.endpoint

    async def handle(req: micro.Request) -> None:
        error: RpcError
        try:
            request = ep.request.model_validate_json(req.data or b"{}")
        except ValidationError as exc:
            error = RpcError(BAD_REQUEST, _problem(exc))
        else:
            try:
                answer: Message = await r.handler(request)
            except RpcError as exc:
                error = exc
            except Exception:
                log.exception("request-reply %s failed", ep.subject)
                error = RpcError(INTERNAL, "internal error")
            else:
                # Fields the handler left unset are not sent (the model's default on arrival).
                if req._msg.reply:  # a plain publish (no reply wanted) is served all the same
                    await req.respond(answer.model_dump_json(exclude_unset=True).encode())
                return
        if req._msg.reply:
            body = error.reply().model_dump_json().encode()
            header = _printable(error.message or error.code, 300)
            await req.respond_error(error.code, header, data=body)

    return handle


async def serve(nc: Client, service: str, routes: list[Route[Any, Any]]) -> micro.Service:
    """Serve `routes` as the nats.micro service `service`; stop it with `await svc.stop()`."""
    for r in routes:
        if r.endpoint.service != service:
            raise ValueError(f"{r.endpoint.subject} is served by {r.endpoint.service}")
    svc = await micro.add_service(
        nc,
        name=service,
        version=VERSION,
        description=f"parindex {service} request-reply",
        queue_group=service,
    )
    for r in routes:
        await svc.add_endpoint(
            name=r.endpoint.name,
            subject=r.endpoint.subject,
            handler=_wrap(r),
            metadata={"description": r.endpoint.description},
        )
    return svc


async def call(
    nc: Client, endpoint: Endpoint[Req, Rep], request: Req, *, timeout: float = 5.0
) -> Rep:
    """Ask `endpoint` and return its typed reply; RpcError (RpcUnavailable) otherwise."""
    try:
        msg = await nc.request(
            endpoint.subject, request.model_dump_json().encode(), timeout=timeout
        )
    except (NoRespondersError, NatsTimeout, TimeoutError) as exc:
        raise RpcUnavailable(UNAVAILABLE, f"{endpoint.subject}: {type(exc).__name__}") from exc
    headers = msg.headers or {}
    if ERROR_CODE_HEADER in headers:
        try:
            body = ErrorReply.model_validate_json(msg.data).error
        except ValidationError:
            body = ErrorBody(code=INTERNAL, message=headers.get(ERROR_HEADER, "")[:1000])
        raise RpcError(body.code, body.message)
    try:
        return endpoint.reply.model_validate_json(msg.data)
    except ValidationError as exc:
        try:
            body = ErrorReply.model_validate_json(msg.data).error
        except ValidationError:
            raise RpcError(BAD_REPLY, f"{endpoint.subject}: {_problem(exc)}") from exc
        raise RpcError(body.code, body.message) from None
