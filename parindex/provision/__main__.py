"""`python -m parindex.provision`: the one-shot compose service nats-provision."""

from __future__ import annotations

import asyncio
import logging
import sys

from parindex.provision import provision
from parindex.settings import get_settings


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(provision(get_settings(), timeout=300))
    print("parindex: streams provisioned", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
