"""Notify's own knobs (retry policy, loop intervals, clock) without touching shared Settings.

Read from PARINDEX_NOTIFY_* so ops can tune them; tests pass a NotifyConfig to make_service().
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field

from parindex.clock import Clock


def _env(name: str, default: str) -> str:
    return os.environ.get(f"PARINDEX_NOTIFY_{name}", default)


@dataclass(frozen=True)
class NotifyConfig:
    max_attempts: int = field(default_factory=lambda: int(_env("MAX_ATTEMPTS", "5")))
    retry_base_s: float = field(default_factory=lambda: float(_env("RETRY_BASE_S", "30")))
    retry_max_s: float = field(default_factory=lambda: float(_env("RETRY_MAX_S", "3600")))
    workers: int = field(default_factory=lambda: int(_env("WORKERS", "4")))
    poll_s: float = field(default_factory=lambda: float(_env("POLL_S", "1")))
    reminder_interval_s: float = field(default_factory=lambda: float(_env("REMINDER_S", "60")))
    rpc_timeout_s: float = field(default_factory=lambda: float(_env("RPC_TIMEOUT_S", "5")))
    smtp_timeout_s: float = field(default_factory=lambda: float(_env("SMTP_TIMEOUT_S", "30")))
    survey_url: str = field(default_factory=lambda: _env("SURVEY_URL", ""))
    clock: Clock | None = None  # campaign time; None: from settings (parindex/clock.py)


_NS = uuid.UUID("6b1f3c52-8a0e-4f57-9a55-2c1d7c0e9b41")


def delivery_key(campaign_id: str, respondent_id: str, purpose: str) -> uuid.UUID:
    """One stable id per outbox row's natural key: Message-ID and event ids derive from it,
    so a resend or a republished event after a crash is recognisable as the same delivery."""
    return uuid.uuid5(_NS, f"{campaign_id}\x1f{respondent_id}\x1f{purpose}")


def message_id(campaign_id: str, respondent_id: str, purpose: str) -> str:
    return f"<{delivery_key(campaign_id, respondent_id, purpose).hex}@parindex.notify>"


def event_id_for(message_id_: str, outcome: str) -> str:
    return str(uuid.uuid5(_NS, f"{message_id_}\x1f{outcome}"))
