"""The JSON Schema of one audit line, generated from :data:`EVENT_TYPES` (docs/audit.schema.json
is this, committed; a test keeps the two equal)."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from elspeth.audit._events import EVENT_TYPES

_HEX64 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_ENVELOPE: dict[str, Any] = {
    "ts": {"type": "number", "description": "when, in seconds since the epoch"},
    "run": {"type": "string", "description": "the run id"},
    "prev": {**_HEX64, "description": "SHA-256 of the previous line, or the chain's start"},
}


def audit_json_schema() -> dict[str, Any]:
    """One schema for every line: the envelope plus exactly one event's fields."""
    definitions: dict[str, Any] = {}
    branches = []
    for event_type in EVENT_TYPES:
        generated = TypeAdapter(event_type).json_schema(ref_template="#/$defs/{model}")
        definitions.update(generated.pop("$defs", {}))
        properties = {
            **_ENVELOPE,
            "event": {"const": event_type.NAME},
            **generated["properties"],
        }
        definitions[event_type.__name__] = {
            "type": "object",
            "title": event_type.NAME,
            "description": generated.get("description", ""),
            "properties": properties,
            # Every field is always written, a null included: each is required.
            "required": list(properties),
            "additionalProperties": False,
        }
        branches.append({"$ref": f"#/$defs/{event_type.__name__}"})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://elspeth.invalid/audit.schema.json",
        "title": "One line of an Elspeth run's audit log (audit.jsonl)",
        "oneOf": branches,
        "$defs": dict(sorted(definitions.items())),
    }
