"""Uploaded lists kept between their preview and the admin's confirmation.

The preview publishes nothing; the confirmation imports the very bytes previewed, and only if
the registry still diffs to the same changes (imports.PreviewOutdated otherwise). The bytes
stay in this process's memory for 30 minutes at most, never on disk and never in the log: an
identity restarted (or another instance behind a balancer) in between simply asks for the
file again (docs/architecture.md, decision 39).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

TTL_S = 30 * 60
MAX_KEPT = 16
MAX_BYTES_KEPT = 64 * 1024 * 1024  # files may be 20 MB each (decision 22): bounded memory


@dataclass
class Upload:
    owner: str  # the admin who previewed it; nobody else may confirm it
    campaign_id: str
    filename: str
    content: bytes
    digest: str
    at: float = field(default_factory=time.monotonic)


class Previews:
    def __init__(self) -> None:
        self._kept: dict[str, Upload] = {}

    def keep(self, upload: Upload) -> str:
        self._expire()
        while self._kept and (
            len(self._kept) >= MAX_KEPT
            or sum(len(u.content) for u in self._kept.values()) + len(upload.content)
            > MAX_BYTES_KEPT
        ):
            self._kept.pop(next(iter(self._kept)))  # the oldest goes first
        token = secrets.token_urlsafe(24)
        self._kept[token] = upload
        return token

    def get(self, token: str, owner: str, campaign_id: str) -> Upload | None:
        self._expire()
        up = self._kept.get(token)
        if up is None or up.owner != owner or up.campaign_id != campaign_id:
            return None
        return up

    def drop(self, token: str) -> None:
        self._kept.pop(token, None)

    def _expire(self) -> None:
        now = time.monotonic()
        for token in [t for t, u in self._kept.items() if now - u.at > TTL_S]:
            self._kept.pop(token, None)
