"""The environment a test hands a `parindex` child: none of this process's PARINDEX_ settings,
which would point the child at this test's servers, except the test worker's share of ports
(PARINDEX_PORT_RANGE, docs/architecture.md, decision 50)."""

from __future__ import annotations

import os

from parindex.runtime.embedded import PORT_RANGE


def child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PARINDEX_") or k == PORT_RANGE}
