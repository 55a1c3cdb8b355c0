"""`python -m parindex.gateway --port 8000 --upstream identity=http://127.0.0.1:8101 …`.

Also `--write-caddyfile`: regenerate deploy/caddy/Caddyfile's route block from the table.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import uvicorn

from parindex.gateway.proxy import build
from parindex.gateway.routes import write_caddyfile

CADDYFILE = Path(__file__).resolve().parents[2] / "deploy" / "caddy" / "Caddyfile"


UVICORN_OPTIONS: dict[str, Any] = {
    "access_log": False,
    # The door is the edge: nobody in front of it is trusted, so a client's X-Forwarded-For
    # never becomes its address (docs/architecture.md, decision 19).
    "proxy_headers": False,
    # Date and Server come from the service that answered.
    "server_header": False,
    "date_header": False,
    "timeout_graceful_shutdown": 5,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="parindex-gateway")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--upstream", action="append", default=[], metavar="NAME=URL",
        help="a service (or 'mail') and its base URL; repeat for each",
    )  # fmt: skip
    parser.add_argument("--source", help="local address to connect to the services from")
    parser.add_argument("--write-caddyfile", action="store_true")
    args = parser.parse_args(argv)
    if args.write_caddyfile:
        changed = write_caddyfile(CADDYFILE)
        print(f"{CADDYFILE}: {'updated' if changed else 'up to date'}")
        return 0
    upstreams = dict(item.split("=", 1) for item in args.upstream)
    if not upstreams:
        parser.error("no --upstream given")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s gateway %(levelname)s %(message)s")
    # No access log: request times of ballots are not kept (docs/architecture.md, decision 15).
    uvicorn.run(
        build(upstreams, args.source),
        host=args.host,
        port=args.port,
        log_level="warning",
        **UVICORN_OPTIONS,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
