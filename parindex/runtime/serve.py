"""Run one service process with uvicorn: `python -m services.<name> --port N`."""

from __future__ import annotations

import argparse
import importlib
import logging
from typing import Any

import uvicorn
from fastapi import FastAPI

from parindex.settings import Settings, get_settings
from parindex.web.service import create_app

SERVICES = ("identity", "survey", "scoring", "notify")


def build(name: str) -> FastAPI:
    spec = importlib.import_module(f"services.{name}.service").SERVICE
    return create_app(spec)


def main(name: str) -> None:
    parser = argparse.ArgumentParser(prog=f"parindex-{name}")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {name} %(levelname)s %(message)s")
    uvicorn.run(
        build(name),
        host=args.host,
        port=args.port,
        log_level="info",
        access_log=False,
        **uvicorn_options(get_settings()),
    )


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Proxy trust and shutdown bounds for every service process."""
    trusted = settings.trusted_proxies.strip()
    return {
        # X-Forwarded-For only from configured proxies (docs/architecture.md, decision 19);
        # uvicorn's default trusts 127.0.0.1, i.e. every local process.
        "proxy_headers": bool(trusted),
        "forwarded_allow_ips": trusted or "",
        # Open HTTP connections get a bounded grace too (decision 14).
        "timeout_graceful_shutdown": 10,
    }
