"""Staff sessions for scoring tests without the identity service: its public key over NATS."""

from __future__ import annotations

import json

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nats.aio.client import Client

from contracts import subjects
from parindex.web.auth import COOKIE, Principal, issue_token, public_pem
from parindex.web.csrf import NONCE_COOKIE, load_key, token_for

NONCE = "csrf-test-nonce"  # the anonymous nonce cookie; a session's token ignores it


async def serve_public_key(nc: Client) -> Ed25519PrivateKey:
    """Answer RPC_IDENTITY_PUBLIC_KEY as identity would, with a fresh key."""
    key = Ed25519PrivateKey.generate()
    body = json.dumps({"public_key_pem": public_pem(key)}).encode()

    async def reply(msg) -> None:
        await msg.respond(body)

    await nc.subscribe(subjects.RPC_IDENTITY_PUBLIC_KEY, cb=reply)
    return key


def client(app, key: Ed25519PrivateKey | None, principal: Principal | None) -> httpx.AsyncClient:
    """An HTTP client of the app, logged in as `principal` (anonymous if None)."""
    cookies = {NONCE_COOKIE: NONCE}
    if key is not None and principal is not None:
        cookies[COOKIE] = issue_token(key, principal)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", cookies=cookies
    )


def csrf_of(http: httpx.AsyncClient) -> str:
    """The form token a page draws for this client's session, or its nonce (decision 25)."""
    app = http._transport.app  # type: ignore[attr-defined]  # the ASGI app under test
    return token_for(
        load_key(app.state.settings),
        session=http.cookies.get(COOKIE),
        nonce=http.cookies.get(NONCE_COOKIE),
    )
