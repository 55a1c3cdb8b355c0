"""The identity service: its spec (HTTP routers, consumers) for parindex.web.service."""

from __future__ import annotations

import hashlib
from pathlib import Path

from parindex.bus.projection import ProjectionRunner
from parindex.clock import clock_from_settings
from parindex.web.auth import PublicKeyCache, load_or_create_private_key, public_pem
from parindex.web.service import Runtime, ServiceSpec
from services.identity import focal_web, hashing, registry_web, rpc, staff_web
from services.identity.projection import IdentityProjection
from services.identity.stock import CredentialStock, configured_cap
from services.identity.web import router


def key_path(state_dir: Path) -> Path:
    return Path(state_dir) / "secrets" / "identity_ed25519.pem"


async def start(rt: Runtime) -> None:
    """Signing key, the argon2 pool, the registry projection, then the RPC responders."""
    key = load_or_create_private_key(key_path(rt.settings.state_dir))
    rt.extras["private_key"] = key
    # Keys the digest of account names in the login-attempts table (decision 19).
    rt.extras["attempts_key"] = hashlib.blake2b(
        b"parindex login attempts", key=key.private_bytes_raw()
    ).digest()
    cache = PublicKeyCache(rt.nc)  # identity verifies its own cookies without asking itself
    cache.pem = public_pem(key)
    rt.extras["public_key"] = cache
    runner = ProjectionRunner(rt.nc, rt.sessions, IdentityProjection())
    rt.extras["projection"] = runner
    rt.stopping.append(runner.stop)
    rt.spawn(runner.run(), "projection")
    # argon2id in worker processes, one per core (docs/architecture.md, decision 29). Its stop
    # hook comes after the responders' unsubscribes, so no credential request is cut off.
    await hashing.acquire()
    try:
        await rpc.start(rt)
    except BaseException:
        await hashing.release()
        raise
    rt.stopping.append(hashing.release)
    stock = CredentialStock(rt.sessions, configured_cap(), clock_from_settings(rt.settings))
    rt.extras["credential_stock"] = stock
    rt.spawn(stock.run(), "credential-stock")


SERVICE = ServiceSpec(
    name="identity",
    versions_dir=Path(__file__).parent / "storage" / "versions",
    routers=[router, registry_web.router, staff_web.router, focal_web.router],
    start=start,
    title="parindex identity",
)
