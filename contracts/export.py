"""Generate the published contract from the code: a JSON Schema per event version and AsyncAPI.

The files are committed; a test regenerates them and fails on any difference, so downstream
systems always read the contract the code actually speaks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from contracts import subjects
from contracts.events import CURRENT_VERSION, PAYLOADS, Envelope
from contracts.rpc import ENDPOINTS, ErrorReply, Message

HERE = Path(__file__).parent


def _schema_name(event_type: str, version: int) -> str:
    return f"{event_type}.v{version}.json"


def event_schema(event_type: str) -> dict[str, Any]:
    """The envelope with `type`, `schema_version` fixed and `data` typed."""
    payload = PAYLOADS[event_type].model_json_schema(mode="serialization")
    env = Envelope.model_json_schema(mode="serialization")
    defs = payload.pop("$defs", {})
    env["properties"]["type"] = {"const": event_type, "title": "Type"}
    env["properties"]["schema_version"] = {"const": CURRENT_VERSION[event_type]}
    env["properties"]["data"] = payload
    env["title"] = f"{event_type} v{CURRENT_VERSION[event_type]}"
    env["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    env["$id"] = "https://parindex.example/contracts/" + _schema_name(
        event_type, CURRENT_VERSION[event_type]
    )
    if defs:
        env["$defs"] = defs
    return env


def rpc_models() -> dict[str, type[Message]]:
    """Every request-reply model by name (decision 28), the error reply included."""
    models: dict[str, type[Message]] = {}
    for ep in ENDPOINTS:
        models[ep.request.__name__] = ep.request
        models[ep.reply.__name__] = ep.reply
    models[ErrorReply.__name__] = ErrorReply
    return models


def rpc_schema(model: type[Message]) -> dict[str, Any]:
    schema = model.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://parindex.example/contracts/rpc/{model.__name__}.json"
    return schema


def _rpc_message(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "title": name,
        "contentType": "application/json",
        "payload": {"$ref": f"schemas/rpc/{name}.json"},
    }


def _rpc(channels: dict[str, Any], operations: dict[str, Any], messages: dict[str, Any]) -> None:
    """Request-reply endpoints: core NATS, not stored; the reply goes to the requester's inbox."""
    for name in rpc_models():
        messages[name] = _rpc_message(name)
    for ep in ENDPOINTS:
        cid = ep.subject.replace("par.", "").replace(".", "_")
        req, rep, err = ep.request.__name__, ep.reply.__name__, ErrorReply.__name__
        channels[cid] = {
            "address": ep.subject,
            "description": f"{ep.description} Served by {ep.service} (request-reply).",
            "messages": {
                f"{cid}_{m}": {"$ref": f"#/components/messages/{m}"} for m in (req, rep, err)
            },
        }
        operations[f"request_{cid}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{cid}"},
            "messages": [{"$ref": f"#/channels/{cid}/messages/{cid}_{req}"}],
            "reply": {
                "messages": [{"$ref": f"#/channels/{cid}/messages/{cid}_{m}"} for m in (rep, err)],
            },
        }


def asyncapi() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for address, (description, types) in subjects.CHANNELS.items():
        cid = address.replace("par.evt.", "").replace(".", "_").replace("{", "").replace("}", "")
        params = {
            p.strip("{}"): {"description": p.strip("{}")}
            for p in address.split(".")
            if p.startswith("{")
        }
        channels[cid] = {
            "address": address,
            "description": description,
            "parameters": params,
            "messages": {t: {"$ref": f"#/components/messages/{t}"} for t in types},
        }
        operations[f"receive_{cid}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{cid}"},
        }
    for t in PAYLOADS:
        v = CURRENT_VERSION[t]
        messages[t] = {
            "name": t,
            "title": f"{t} v{v}",
            "contentType": "application/json",
            "headers": {
                "type": "object",
                "properties": {
                    "Nats-Msg-Id": {"type": "string", "description": "= event_id (dedupe)"},
                    "Parindex-Type": {"type": "string", "const": t},
                },
            },
            "payload": {"$ref": f"schemas/{_schema_name(t, v)}"},
        }
    _rpc(channels, operations, messages)
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "parindex events",
            "version": "1.0.0",
            "description": (
                f"Every event is a JSON envelope on JetStream stream {subjects.EVENTS_STREAM} "
                f"(subjects {', '.join(subjects.EVENTS_SUBJECTS)}), in one total order. "
                "Read it with any NATS client from sequence 1. Undecodable messages a consumer "
                f"met are copied to {subjects.DLQ_STREAM} ({', '.join(subjects.DLQ_SUBJECTS)}). "
                "Services ask each other by request-reply on par.rpc.* (core NATS, not stored); "
                'every error reply is {"error": {"code", "message"}}.'
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "embedded": {"host": "127.0.0.1:4222", "protocol": "nats"},
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def render_all() -> dict[Path, str]:
    files: dict[Path, str] = {}
    for t in PAYLOADS:
        files[Path("schemas") / _schema_name(t, CURRENT_VERSION[t])] = _dump(event_schema(t))
    for name, model in rpc_models().items():
        files[Path("schemas") / "rpc" / f"{name}.json"] = _dump(rpc_schema(model))
    files[Path("asyncapi.json")] = _dump(asyncapi())
    return files


def _dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write_all(out: Path | None = None) -> list[Path]:
    out = out or HERE
    changed = []
    for rel, content in render_all().items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != content:
            path.write_text(content)
            changed.append(path)
    return changed
