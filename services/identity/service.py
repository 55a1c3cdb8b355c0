"""The identity service: its spec (HTTP routers, consumers) for parindex.web.service."""

from __future__ import annotations

from pathlib import Path

from parindex.web.service import ServiceSpec

SERVICE = ServiceSpec(
    name="identity",
    versions_dir=Path(__file__).parent / "storage" / "versions",
    title="parindex identity",
)
