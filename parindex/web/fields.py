"""Refusing text at the edge that the log or PostgreSQL would refuse later.

Forms and APIs check their string inputs with the contracts' own rule (contracts.text), so a
NUL or a lone surrogate is a clear 4xx naming the field, never a 500 from deep in a query
(docs/architecture.md, decision 17).
"""

from __future__ import annotations

from collections.abc import Mapping

from contracts.text import text_problem


def bad_field(
    values: Mapping[str, object], *, multiline: frozenset[str] = frozenset()
) -> str | None:
    """The name of the first string field holding a refused character, or None."""
    for name, value in values.items():
        if isinstance(value, str) and text_problem(value, multiline=name in multiline):
            return name
    return None


def as_bytes(value: str) -> bytes:
    """A submitted secret as bytes for `hmac.compare_digest`, which raises TypeError on a str
    with non-ASCII characters: a token of "é" or a lone surrogate was a 500
    (docs/architecture.md, decision 27)."""
    return value.encode("utf-8", "surrogatepass")
