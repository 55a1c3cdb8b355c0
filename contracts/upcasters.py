"""Upcasters: old event versions read as the current one, so old events stay readable forever.

A breaking change to a payload bumps its schema_version in contracts.events.CURRENT_VERSION and
registers here a pure function from version N's data to version N+1's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Data = dict[str, Any]
_UPCASTERS: dict[tuple[str, int], Callable[[Data], Data]] = {}


def upcaster(
    event_type: str, from_version: int
) -> Callable[[Callable[[Data], Data]], Callable[[Data], Data]]:
    def register(fn: Callable[[Data], Data]) -> Callable[[Data], Data]:
        _UPCASTERS[(event_type, from_version)] = fn
        return fn

    return register


def upcast(event_type: str, version: int, data: Data) -> Data:
    """Apply every registered step from `version` to the current one (returns `data` if none)."""
    from contracts.events import CURRENT_VERSION

    while version < CURRENT_VERSION[event_type]:
        step = _UPCASTERS.get((event_type, version))
        if step is None:
            raise ValueError(f"no upcaster for {event_type} v{version}")
        data = step(dict(data))
        version += 1
    return data


@upcaster("RespondentRegistered", 1)
def _respondent_registered_v1_to_v2(data: Data) -> Data:
    """v1 had `name` and `group`; v2 names them `full_name` and `form_code` and adds roles."""
    data["full_name"] = data.pop("name")
    data["form_code"] = data.pop("group")
    data.setdefault("roles", [])
    return data
