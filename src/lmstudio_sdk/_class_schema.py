"""JSON schemas built from the type hints of attrs classes and dataclasses."""

from __future__ import annotations

import dataclasses
import enum
import typing
from typing import Any

import attrs

from ._strict_converter import _is_array, _is_mapping, _is_union, _type_name

__all__ = ["json_schema_for_class"]


def json_schema_for_class(cls: type) -> dict[str, Any]:
    """The JSON schema of an attrs class or a dataclass, from its type hints.

    Supported: ``str``, ``int``, ``float``, ``bool``, ``None``, ``Any``, ``list``/``tuple``/
    ``set``, ``dict[str, ...]``, ``Optional``/unions, ``Literal``, ``Enum`` and nested attrs
    classes or dataclasses (as ``$defs``). Fields without a default are ``required``; extra
    keys are not allowed. Raises ``ValueError`` naming the field of an unsupported type.
    """
    builder = _SchemaBuilder(cls)
    schema = builder.object_schema(cls)
    if builder.defs:
        schema["$defs"] = builder.defs
    return schema


def _fields(cls: type) -> list[tuple[str, bool]]:
    """``(name, required)`` of the fields the class is built from."""
    if attrs.has(cls):
        return [(a.name, a.default is attrs.NOTHING) for a in attrs.fields(cls) if a.init]
    return [
        (
            f.name,
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
        )
        for f in dataclasses.fields(cls)
        if f.init
    ]


class _SchemaBuilder:
    def __init__(self, root: type) -> None:
        self.root = root
        self.defs: dict[str, Any] = {}
        self.names: dict[type, str] = {}

    def object_schema(self, cls: type) -> dict[str, Any]:
        try:
            hints = typing.get_type_hints(cls)
        except Exception as exc:
            raise ValueError(f"cannot read the type hints of {cls.__name__}: {exc}") from None
        properties: dict[str, Any] = {}
        required: list[str] = []
        for name, is_required in _fields(cls):
            tp = hints.get(name, Any)
            try:
                properties[name] = self.schema(tp)
            except ValueError as exc:
                raise ValueError(f"field {cls.__name__}.{name}: {exc}") from None
            if is_required:
                required.append(name)
        schema: dict[str, Any] = {
            "type": "object",
            "title": cls.__name__,
            "properties": properties,
        }
        if required:
            schema["required"] = required
        schema["additionalProperties"] = False
        return schema

    def ref(self, cls: type) -> dict[str, Any]:
        if cls is self.root:
            return {"$ref": "#"}
        name = self.names.get(cls)
        if name is None:
            name = cls.__name__
            while name in self.defs:
                name += "_"
            self.names[cls] = name
            self.defs[name] = {}  # reserve the name; a recursive reference finds it
            self.defs[name] = self.object_schema(cls)
        return {"$ref": f"#/$defs/{name}"}

    def schema(self, tp: Any) -> dict[str, Any]:
        if tp is Any or tp is object:
            return {}
        if tp is type(None) or tp is None:
            return {"type": "null"}
        if tp is bool:
            return {"type": "boolean"}
        if tp is int:
            return {"type": "integer"}
        if tp is float:
            return {"type": "number"}
        if tp is str:
            return {"type": "string"}
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            values = [member.value for member in tp]
            _check_json_scalars(values, tp.__name__)
            return {"enum": values}
        if isinstance(tp, type) and (attrs.has(tp) or dataclasses.is_dataclass(tp)):
            return self.ref(tp)
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin is typing.Annotated:
            return self.schema(args[0])
        if origin is typing.Literal:
            _check_json_scalars(list(args), str(tp))
            return {"enum": list(args)}
        if _is_union(tp):
            return {"anyOf": [self.schema(a) for a in args]}
        if _is_mapping(tp):
            if args and args[0] is not str:
                raise ValueError(
                    f"JSON object keys are strings, so {_type_name(tp)} is not supported"
                )
            return {"type": "object", "additionalProperties": self.schema(args[1]) if args else {}}
        if _is_array(tp):
            if (origin or tp) is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
                return {
                    "type": "array",
                    "prefixItems": [self.schema(a) for a in args],
                    "minItems": len(args),
                    "maxItems": len(args),
                }
            return {"type": "array", "items": self.schema(args[0]) if args else {}}
        raise ValueError(f"type {_type_name(tp)} has no JSON schema mapping")


def _check_json_scalars(values: list[Any], what: str) -> None:
    for value in values:
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise ValueError(f"{what}: {value!r} is not a JSON string, number, boolean or null")
