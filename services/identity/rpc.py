"""Identity's request-reply adapter: credentials, the token key, respondent lists.

Served through parindex/bus/rpc.py as the nats.micro service "identity" (docs/architecture.md,
decision 28); only translates between the contract models (contracts/rpc.py) and the use cases.
The credential reply carries the plaintext password and goes to the requester's inbox alone
(docs/architecture.md, decisions 6 and 18).
"""

from __future__ import annotations

from typing import Any

from contracts.rpc import (
    CREDENTIAL,
    PUBLIC_KEY,
    RESPONDENTS,
    CredentialReply,
    CredentialRequest,
    FormUnits,
    PublicKeyReply,
    PublicKeyRequest,
    PublicRespondent,
    RespondentsReply,
    RespondentsRequest,
)
from parindex.bus import rpc
from parindex.web.auth import public_pem
from parindex.web.service import Runtime
from services.identity import projection
from services.identity.credentials import AddressChanged, issue_credential
from services.identity.imports import public_respondent

# A wave's credential requests each wait for a hash, a commit and a publish; served one after
# another they capped invitations at a few per second (docs/architecture.md, decision 29).
CREDENTIALS_IN_FLIGHT = 32


def in_wave(r: dict[str, Any], members: list[FormUnits]) -> bool:
    """Whether a respondent belongs to one of a wave's (form, units) members."""
    return any(
        m.form_code == r["form_code"] and (m.unit_codes is None or r["unit_code"] in m.unit_codes)
        for m in members
    )


async def start(rt: Runtime) -> None:
    pem = public_pem(rt.extras["private_key"])

    async def credential(req: CredentialRequest) -> CredentialReply:
        try:
            issued = await issue_credential(
                rt, req.campaign_id, req.respondent_id, req.purpose, req.email
            )
        except AddressChanged as exc:  # the requester retries once both have the address
            raise rpc.RpcError("address_changed", str(exc)) from exc
        if issued is None:
            raise rpc.RpcError("unknown_respondent", "unknown respondent")
        return CredentialReply(**issued)

    async def public_key(_: PublicKeyRequest) -> PublicKeyReply:
        return PublicKeyReply(public_key_pem=pem)

    async def respondents(req: RespondentsRequest) -> RespondentsReply:
        async with rt.sessions() as s:
            rows = await projection.respondents(s, req.campaign_id, unit_code=req.unit_code)
        if req.wave_form_units is not None:
            rows = [r for r in rows if in_wave(r, req.wave_form_units)]
        return RespondentsReply(
            respondents=[PublicRespondent(**public_respondent(r)) for r in rows]
        )

    credentials = rpc.route(CREDENTIAL, credential, concurrency=CREDENTIALS_IN_FLIGHT)
    svc = await rpc.serve(
        rt.nc,
        "identity",
        [credentials, rpc.route(PUBLIC_KEY, public_key), rpc.route(RESPONDENTS, respondents)],
    )
    rt.stopping.append(svc.stop)
    rt.stopping.append(credentials.finish)  # after the stop, before the hash pool stops
