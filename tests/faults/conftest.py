"""Fault tests: real processes on loopback, killed and restarted under load."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "faults: kills and restarts real services and servers under load (~2 min)"
    )
