"""A JSON request body declared in OpenAPI for a route that reads the body itself.

Routes that parse their body by hand (to answer malformed input with their own 4xx) are
invisible to OpenAPI readers and to the fuzzing in tests/security; `json_body` declares the
model's schema with every `$ref` inlined, since a route's schema cannot carry `$defs`
(docs/architecture.md, decision 27).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a required JSON body of `model` (models without recursion)."""
    schema = model.model_json_schema(mode="validation")
    inlined = _inline(schema, schema.get("$defs", {}))
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": inlined}}}}
