"""Credentials made ahead: fresh (password, argon2id hash) pairs hashed while the pool is idle.

Every invitation needs a fresh password and its argon2id hash at OWASP cost, tens of
milliseconds of a core each: made on demand, a wave of 790 invitations on two cores cannot go
faster than the hashing (~30-60/s here). So identity keeps a stock of pairs that belong to
nobody yet, as many as respondents still without a credential (capped), made one at a time
while no login or credential request is waiting for the pool, and `issue_credential` takes
one; when the stock is empty it hashes on demand as before (docs/architecture.md, decision 29).

What it costs in secrecy: up to `cap` passwords that are nobody's credential yet sit in
identity's memory (never on disk, in a log or an event; lost on restart, which only means
hashing on demand again). Whoever can read identity's memory already holds its token-signing
key and every password as it is issued, so this adds nothing they could not do. Each pair is
handed out once (popped) and its hash has its own salt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque

from prometheus_client import Gauge
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker

from parindex.clock import Clock
from services.identity import hashing

log = logging.getLogger(__name__)


STOCK = Gauge("parindex_credential_stock", "Credentials hashed ahead, not yet handed out")
DEMAND_EVERY_S = 10.0


def configured_cap() -> int:
    """At most PARINDEX_CREDENTIAL_STOCK pairs (default 2000; 0 turns the stock off)."""
    raw = os.environ.get("PARINDEX_CREDENTIAL_STOCK", "2000").strip()
    return int(raw) if raw.isdigit() else 2000


# Who will need a credential soon: registered in a campaign whose deadline is ahead, not
# withdrawn, none issued yet (their invitation is still to come). "Ahead" by campaign time
# (the service's clock), not the database's: under the demo's clock a 2023 deadline is ahead.
DEMAND = text(
    "SELECT count(*) FROM identity_respondents r "
    "JOIN identity_campaigns k ON k.id = r.campaign "
    "WHERE NOT r.withdrawn AND (k.definition->>'deadline')::timestamptz > :now "
    "AND NOT EXISTS (SELECT 1 FROM identity_credentials c WHERE c.campaign = r.campaign "
    "AND c.respondent_id = r.respondent_id)"
)


class CredentialStock:
    """As many pairs as respondents still without a credential, at most `cap`.

    Sized by demand, not by a constant: an idle service with nobody to invite spends no CPU.
    """

    def __init__(self, sessions: async_sessionmaker, cap: int, clock: Clock | None = None) -> None:
        self.sessions = sessions
        self.cap = cap
        self.clock = clock or Clock()
        self.target = 0
        self.pairs: deque[tuple[str, str]] = deque()
        self.served = 0  # pairs handed out since start
        self._taken = asyncio.Event()

    def take(self) -> tuple[str, str] | None:
        """A (password, hash) pair nobody else will get, or None when the stock is empty."""
        if not self.pairs:
            return None
        self.served += 1
        self._taken.set()
        pair = self.pairs.popleft()
        STOCK.set(len(self.pairs))
        return pair

    async def _demand(self) -> int:
        async with self.sessions() as s:
            return min(self.cap, int(await s.scalar(DEMAND, {"now": self.clock.now()}) or 0))

    async def run(self) -> None:
        """Keep the stock at demand, one hash at a time, only while no request waits."""
        from services.identity.credentials import generate_password

        while self.cap > 0:
            try:
                self.target = await self._demand()
            except Exception:  # the database restarting: try again later
                log.warning("credential stock: could not read the demand", exc_info=True)
                self.target = len(self.pairs)
            if len(self.pairs) >= self.target:
                self._taken.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._taken.wait(), DEMAND_EVERY_S)
                continue
            pool = hashing.current()
            if pool is None:  # only while the service starts or stops
                await asyncio.sleep(1)
                continue
            for _ in range(min(50, self.target - len(self.pairs))):  # re-read demand now and then
                await pool.idle.wait()
                password = generate_password()
                hashed = await pool.run(hashing.hash_now, password, background=True)
                self.pairs.append((password, hashed))
                STOCK.set(len(self.pairs))
