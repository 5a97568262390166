"""Example values that fit a JSON schema: what the scripted engine answers when a request
asks for structured output."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from lmstudio_sdk.server.engines.base import InvalidRequestError

__all__ = ["example_for_schema"]


def example_for_schema(schema: Mapping[str, Any]) -> Any:
    """A JSON value that validates against a simple JSON Schema.

    Covers ``type`` (one or a list), ``properties``/``required`` (all properties are filled),
    ``items``/``minItems``, ``enum``, ``const``, ``minLength``, ``minimum``, ``anyOf``/
    ``oneOf``/``allOf`` (first branch) and local ``$ref`` to ``$defs``/``definitions``.
    Anything else raises :class:`InvalidRequestError`.
    """
    return _example(schema, schema, depth=0)


def _example(schema: Any, root: Mapping[str, Any], depth: int) -> Any:
    if depth > 32:
        raise InvalidRequestError("The JSON schema nests too deeply (recursive $ref?).")
    if schema is True or schema == {}:
        return "example"
    if not isinstance(schema, Mapping):
        raise InvalidRequestError(f"Not a JSON schema: {schema!r}.")
    if "$ref" in schema:
        return _example(_resolve_ref(schema["$ref"], root), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        if not schema["enum"]:
            raise InvalidRequestError("The JSON schema has an empty enum.")
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return _example(schema[key][0], root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: _example(sub, root, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        items = schema.get("items", {})
        return [_example(items, root, depth + 1) for _ in range(count)]
    if kind == "string":
        text = "example"[: int(schema.get("maxLength", 7))]
        return text.ljust(int(schema.get("minLength", 0)), "x")
    if kind in ("integer", "number"):
        value = schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1)
        value = min(value, schema.get("maximum", value))
        return math.ceil(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    raise InvalidRequestError(f"The scripted engine does not support JSON schema type {kind!r}.")


def _resolve_ref(ref: Any, root: Mapping[str, Any]) -> Any:
    if not isinstance(ref, str) or not ref.startswith("#/"):
        raise InvalidRequestError(f"Only local $ref values are supported, got {ref!r}.")
    node: Any = root
    for part in ref[2:].split("/"):
        if not isinstance(node, Mapping) or part not in node:
            raise InvalidRequestError(f"$ref {ref!r} points nowhere in the schema.")
        node = node[part]
    return node
