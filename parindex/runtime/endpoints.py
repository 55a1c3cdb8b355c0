"""Service discovery for one `parindex up`: <state-dir>/endpoints.json, written and read here only.

`parindex up` writes where each service, the NATS server and the mail catcher listen once they
have started; services and the CLI read it when they need another's public address or the NATS
URL (docs/architecture.md, decision 28). Compose and other deployments have no such file:
every reader then gets nothing and falls back to its own configuration.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FILE = "endpoints.json"


def write(state_dir: Path, endpoints: dict[str, Any]) -> None:
    (Path(state_dir) / FILE).write_text(json.dumps(endpoints, indent=2))


def read(state_dir: Path | str) -> dict[str, Any]:
    """The whole file, or {} when there is none or it cannot be read (being written, say)."""
    try:
        found = json.loads((Path(state_dir) / FILE).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def services(state_dir: Path | str) -> dict[str, str]:
    """Public base URL of each service by name."""
    found = read(state_dir).get("services")
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def value(state_dir: Path | str, key: str) -> str | None:
    """One top-level address: "nats_url", "database_url", "nats_monitor", "open" (where people
    log in), "mail"."""
    found = read(state_dir).get(key)
    return str(found) if found else None
