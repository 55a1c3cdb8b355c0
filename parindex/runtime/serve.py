"""Run one service process with uvicorn: `python -m services.<name> --port N`."""

from __future__ import annotations

import argparse
import importlib
import logging

import uvicorn
from fastapi import FastAPI

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
    uvicorn.run(build(name), host=args.host, port=args.port, log_level="info", access_log=False)
