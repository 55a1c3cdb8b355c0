"""Run one service process with uvicorn: `python -m services.<name> --port N`."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
from typing import Any

import uvicorn
from fastapi import FastAPI

from parindex.runtime.children import die_with_parent
from parindex.settings import Settings, get_settings
from parindex.web.service import create_app

SERVICES = ("identity", "survey", "scoring", "notify")
PARENT = "PARINDEX_WORKERS_PARENT"  # the pid of the uvicorn process whose workers these are


def build(name: str) -> FastAPI:
    spec = importlib.import_module(f"services.{name}.service").SERVICE
    return create_app(spec)


def main(name: str) -> None:
    parser = argparse.ArgumentParser(prog=f"parindex-{name}")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {name} %(levelname)s %(message)s")
    settings = get_settings()
    # Several processes on one socket (docs/architecture.md, decision 44): each runs the whole
    # service, which several instances may do (decisions 8 and 12); uvicorn's parent restarts
    # a worker that dies and stops them all on SIGTERM.
    workers = settings.survey_workers if name == "survey" else 1
    os.environ[PARENT] = str(os.getpid())  # the workers inherit it (`_worker`)
    uvicorn.run(
        f"parindex.runtime.serve:app_{name}" if workers > 1 else build(name),
        factory=workers > 1,
        workers=workers if workers > 1 else None,
        host=args.host,
        port=args.port,
        log_level="info",
        access_log=False,
        **uvicorn_options(settings),
    )


def __getattr__(attr: str) -> Any:
    """`app_<service>`: the factory uvicorn's workers import (an import string, not an app)."""
    name = attr.removeprefix("app_")
    if attr.startswith("app_") and name in SERVICES:
        return lambda: _worker(name)
    raise AttributeError(attr)


def _worker(name: str) -> FastAPI:
    """One of several processes of a service: it ends with the process that started it."""
    parent = os.environ.get(PARENT)
    if parent:
        die_with_parent(int(parent))
    return build(name)


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
