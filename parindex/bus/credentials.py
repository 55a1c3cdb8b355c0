"""NATS passwords of `parindex up`'s locked-down bus, kept in <state-dir>/secrets.

`parindex up` generates one per user (mode 600) and gives each service only its own; the CLI
reads the one its command needs from the same directory (docs/architecture.md, decision 18).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from parindex.runtime import endpoints
from parindex.settings import Settings, get_settings


def secret_path(state_dir: Path, name: str) -> Path:
    return state_dir / "secrets" / name


def new_nats_password() -> str:
    """Letters and digits, starting with a letter: nats-server parses a substituted $VARIABLE
    as a config value, and a value like 2023-... or 12e4 would not be a string."""
    return "p" + secrets.token_hex(24)


def ensure_secret(
    state_dir: Path, name: str, new: Callable[[], str] = lambda: secrets.token_urlsafe(32)
) -> str:
    """Secrets live in files under state_dir/secrets (mode 600), never in the log or database."""
    path = secret_path(state_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(new())
    return path.read_text().strip()


def nats_secret_name(user: str) -> str:
    return f"nats_{user}"


def settings_as(user: str, base: Settings | None = None) -> Settings:
    """Settings that connect as `user` when the state dir holds its password (`parindex up`).

    Otherwise (compose, an external open server) the environment's settings stay as they are.
    The state dir's endpoints.json also gives the NATS URL unless PARINDEX_NATS_URL is set.
    """
    base = base or get_settings()
    path = secret_path(base.state_dir, nats_secret_name(user))
    if not path.exists():
        return base
    settings = dataclasses.replace(base, nats_user=user, nats_password=path.read_text().strip())
    url = endpoints.value(base.state_dir, "nats_url")
    if not os.environ.get("PARINDEX_NATS_URL") and url:
        settings = dataclasses.replace(settings, nats_url=url)
    return settings
