"""Sessions every service verifies without calling identity (docs/architecture.md, decision 5).

Identity signs a short-lived EdDSA (Ed25519) JWT with its private key; the public key is
published over NATS request-reply (contracts.rpc.PUBLIC_KEY) and cached by each
service. The token rides in an HttpOnly, SameSite=Lax cookie, so one login serves every page.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi import Request
from nats.aio.client import Client

from contracts import rpc as rpc_contract
from contracts.rpc import PublicKeyRequest
from parindex.bus import rpc
from parindex.web.revocation import STAFF_ROLES

COOKIE = "parindex_session"
ISSUER = "parindex-identity"
ROLES = ("respondent", "focal_point", "admin", "auditor")


@dataclass(frozen=True)
class Principal:
    subject: str  # respondent_id or user name
    role: str
    campaign_id: str | None = None
    unit_code: str | None = None  # focal point's unit, respondent's unit
    form_code: str | None = None
    name: str = ""
    issued_at: float = 0.0  # seconds, with milliseconds: a session before a reset is revoked
    # A respondent's credential holder: the draft this session reads (decision 48).
    holder: str = ""


def load_or_create_private_key(path: Path) -> Ed25519PrivateKey:
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(key, Ed25519PrivateKey)
        return key
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return key


def public_pem(key: Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def issue_token(key: Ed25519PrivateKey, p: Principal, ttl_s: int = 8 * 3600) -> str:
    now = time.time()
    claims = {
        "iss": ISSUER,
        "sub": p.subject,
        "role": p.role,
        "cmp": p.campaign_id,
        "unit": p.unit_code,
        "form": p.form_code,
        "name": p.name,
        "iat": int(now),
        "iat_ms": int(now * 1000),  # `iat` is whole seconds; a reset must not spare its second
        "exp": int(now) + ttl_s,
    }
    if p.holder:
        claims["hold"] = p.holder
    return jwt.encode(claims, key, algorithm="EdDSA")


def verify_token(public_key_pem: str, token: str) -> Principal:
    """Raises jwt.InvalidTokenError for a forged, expired or malformed token."""
    return _verify(public_key_pem, token)[0]


def _verify(public_key: str | Ed25519PublicKey, token: str) -> tuple[Principal, float]:
    """The principal and the token's expiry (seconds since the epoch)."""
    claims = jwt.decode(
        token, public_key, algorithms=["EdDSA"], issuer=ISSUER, options={"require": ["exp"]}
    )
    if claims.get("role") not in ROLES:
        raise jwt.InvalidTokenError("unknown role")
    try:
        expires = float(claims["exp"])
    except (TypeError, ValueError) as exc:
        raise jwt.InvalidTokenError("bad exp") from exc
    principal = Principal(
        subject=claims["sub"],
        role=claims["role"],
        campaign_id=claims.get("cmp"),
        unit_code=claims.get("unit"),
        form_code=claims.get("form"),
        name=claims.get("name", ""),
        issued_at=_issued_at(claims),
        holder=_holder(claims),
    )
    return principal, expires


def _holder(claims: dict) -> str:
    held = claims.get("hold", "")
    if not isinstance(held, str):
        raise jwt.InvalidTokenError("bad hold")
    return held


def _issued_at(claims: dict) -> float:
    ms = claims.get("iat_ms")
    if isinstance(ms, int) and not isinstance(ms, bool):
        return ms / 1000
    iat = claims.get("iat")
    return float(iat) if isinstance(iat, int | float) and not isinstance(iat, bool) else 0.0


class PublicKeyCache:
    """Fetches identity's public key once over NATS; retried until identity answers.

    Also remembers the tokens it verified, until each one's expiry: an Ed25519 check and
    PyJWT's parsing cost more than the rest of a ballot request together (issue #18), and a
    respondent sends the same token with every page, autosave and ballot. Keyed by a digest of
    the token, so the cache holds no usable session; bounded, oldest first out.
    """

    KEEP = 50_000

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.pem: str | None = None
        self._key: Ed25519PublicKey | None = None  # parsed once, not per token
        self._verified: dict[bytes, tuple[Principal, float]] = {}

    async def get(self) -> str:
        if self.pem is None:
            reply = await rpc.call(self.nc, rpc_contract.PUBLIC_KEY, PublicKeyRequest(), timeout=3)
            self.pem = reply.public_key_pem
        return self.pem

    async def verify(self, token: str) -> Principal:
        """verify_token, remembered until the token expires; raises jwt.InvalidTokenError."""
        key = hashlib.blake2b(token.encode(), digest_size=20).digest()
        known = self._verified.get(key)
        if known is not None and time.time() < known[1]:
            return known[0]
        if self._key is None:
            loaded = serialization.load_pem_public_key((await self.get()).encode())
            if not isinstance(loaded, Ed25519PublicKey):
                raise jwt.InvalidTokenError("identity's public key is not Ed25519")
            self._key = loaded
        principal, expires = _verify(self._key, token)
        if len(self._verified) >= self.KEEP:
            self._verified.pop(next(iter(self._verified)))
        self._verified[key] = (principal, expires)
        return principal


async def current_principal(request: Request) -> Principal | None:
    """The session cookie's principal, verified; routes use parindex.web.deps.principal."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    cache: PublicKeyCache = request.app.state.rt.extras.setdefault(
        "public_key", PublicKeyCache(request.app.state.rt.nc)
    )
    try:
        p = await cache.verify(token)
    except jwt.InvalidTokenError:
        return None
    if p.role in STAFF_ROLES:
        # A disabled account or a reset password ends its sessions everywhere (decision 42).
        revocations = request.app.state.rt.revocations
        patience = revocations.patience_until - time.monotonic()
        if not revocations.caught_up.is_set() and patience > 0:
            # Just after a start the watch may still be reading: wait (within the start's
            # grace) rather than send staff to the login page; fail closed after it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(revocations.caught_up.wait(), patience)
        if not revocations.caught_up.is_set() or revocations.revoked(p.subject, p.issued_at):
            return None
    return p
