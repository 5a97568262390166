"""Structured output: turn a user's ``response_format`` into a wire setting and a parser.

Accepted forms (see :func:`response_format`):

* a JSON-schema ``dict`` (the reply parses to plain JSON values, validated against the
  schema when ``jsonschema`` is installed);
* a pydantic v2 model class (``model_json_schema()`` / ``model_validate_json()``; pydantic
  is optional and never imported here);
* an attrs class or a dataclass: the JSON schema is built from its type hints and the reply
  is structured with a strict cattrs converter of this module (not the wire converter: user
  classes follow their own names, and nothing is coerced);
* a ready setting ``{"type": "json", "jsonSchema": {...}}``, ``{"type": "gbnf",
  "gbnfGrammar": "..."}`` or ``{"type": "none"}``.

The server constrains generation; the reply is ordinary text fragments, parsed on the
client once the prediction has finished.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import importlib
import json
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Union

import attrs
import cattrs
from cattrs.errors import IterableValidationError, IterableValidationNote
from cattrs.gen import make_dict_structure_fn
from cattrs.v import format_exception

from .errors import StructuredOutputError

__all__ = ["Parser", "ResponseFormat", "json_schema_for_class", "response_format"]

Parser = Callable[[str], Any]
"""Turns the model's reply text into the requested value; raises ``StructuredOutputError``."""

_SETTING_TYPES = ("none", "json", "gbnf")
_SETTING_KEYS = {
    "type": "type",
    "jsonSchema": "jsonSchema",
    "json_schema": "jsonSchema",
    "gbnfGrammar": "gbnfGrammar",
    "gbnf_grammar": "gbnfGrammar",
}


class ResponseFormat(NamedTuple):
    """A resolved ``response_format``.

    ``setting`` is the JSON value of the ``llm.prediction.structured`` KV key; ``parser``
    turns the reply text into the requested value, or is ``None`` when there is nothing to
    parse (``{"type": "none"}`` and GBNF grammars, whose output need not be JSON).
    """

    setting: dict[str, Any]
    parser: Parser | None


def response_format(spec: Any) -> ResponseFormat:
    """Resolve a ``response_format``/``structured`` option (see the module docstring).

    Raises ``ValueError`` saying what is accepted when ``spec`` is none of the forms.
    """
    if isinstance(spec, Mapping):
        if spec.get("type") in _SETTING_TYPES:
            return _from_setting(spec)
        schema = _checked_schema(spec, "the JSON schema")
        return ResponseFormat({"type": "json", "jsonSchema": schema}, _json_parser(schema))
    if isinstance(spec, type):
        if _is_pydantic_model(spec):
            model: Any = spec
            schema = _checked_schema(
                model.model_json_schema(), f"{spec.__name__}.model_json_schema()"
            )
            return ResponseFormat({"type": "json", "jsonSchema": schema}, _pydantic_parser(spec))
        if attrs.has(spec) or dataclasses.is_dataclass(spec):
            schema = json_schema_for_class(spec)
            return ResponseFormat({"type": "json", "jsonSchema": schema}, _class_parser(spec))
    elif attrs.has(type(spec)) or dataclasses.is_dataclass(spec) or _is_pydantic_model(type(spec)):
        raise ValueError(
            f"response_format takes a class, not an instance: pass {type(spec).__name__}, "
            f"not {spec!r}"
        )
    raise ValueError(
        "response_format must be a JSON schema dict, a pydantic model class, an attrs class, "
        "a dataclass, or a setting {'type': 'json'|'gbnf'|'none', ...}; "
        f"got {spec!r} ({type(spec).__name__})"
    )


def _is_pydantic_model(cls: type) -> bool:
    return callable(getattr(cls, "model_json_schema", None)) and callable(
        getattr(cls, "model_validate_json", None)
    )


def _from_setting(spec: Mapping[str, Any]) -> ResponseFormat:
    setting: dict[str, Any] = {}
    for key, value in spec.items():
        wire_key = _SETTING_KEYS.get(key)
        if wire_key is None:
            raise ValueError(
                f"unknown key {key!r} in the structured output setting; "
                "allowed: 'type', 'jsonSchema', 'gbnfGrammar'"
            )
        setting[wire_key] = value
    kind = setting["type"]
    if kind == "json":
        schema = setting.get("jsonSchema")
        if schema is None:
            setting.pop("jsonSchema", None)
            return ResponseFormat(setting, _json_parser(None))
        if not isinstance(schema, Mapping):
            raise ValueError(f"jsonSchema must be a JSON schema dict, got {type(schema).__name__}")
        setting["jsonSchema"] = _checked_schema(schema, "jsonSchema")
        return ResponseFormat(setting, _json_parser(setting["jsonSchema"]))
    if kind == "gbnf":
        grammar = setting.get("gbnfGrammar")
        if not isinstance(grammar, str) or not grammar.strip():
            raise ValueError("a 'gbnf' setting needs 'gbnfGrammar': the grammar text")
        return ResponseFormat(setting, None)
    return ResponseFormat({"type": "none"}, None)


def _checked_schema(schema: Mapping[str, Any], what: str) -> dict[str, Any]:
    """A JSON-serialisable copy of ``schema``; checked against the metaschema if we can."""
    try:
        # A JSON round trip both checks and deep-copies (the caller may mutate their dict).
        copy: dict[str, Any] = json.loads(json.dumps(schema, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not JSON-serialisable: {exc}") from None
    jsonschema = _jsonschema()
    if jsonschema is None:  # pragma: no cover - jsonschema is optional
        return copy
    try:
        jsonschema.validators.validator_for(copy).check_schema(copy)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise ValueError(f"{what} is not a valid JSON schema at {where}: {exc.message}") from None
    return copy


def _jsonschema() -> Any:
    """The ``jsonschema`` module, or ``None``: it is optional, and imported only when used."""
    try:
        return importlib.import_module("jsonschema")
    except ImportError:  # pragma: no cover - depends on the environment
        return None


# --- parsers -----------------------------------------------------------------------------


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise StructuredOutputError(
            f"the model's reply is not valid JSON: {exc.msg} at line {exc.lineno} "
            f"column {exc.colno}",
            text,
        ) from None


def _json_parser(schema: dict[str, Any] | None) -> Parser:
    validator: Any = None

    def parse_json(text: str) -> Any:
        nonlocal validator
        value = _loads(text)
        if schema is None:
            return value
        if validator is None:
            jsonschema = _jsonschema()
            if jsonschema is None:  # pragma: no cover - jsonschema is optional
                return value
            validator = jsonschema.validators.validator_for(schema)(schema)
        error = _best_error(validator, value)
        if error is not None:
            raise StructuredOutputError(
                f"the model's reply does not match the JSON schema: {error}", text
            )
        return value

    return parse_json


def _best_error(validator: Any, value: Any) -> str | None:
    error = _jsonschema().exceptions.best_match(validator.iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"at {where}: {error.message}"


def _pydantic_parser(model: Any) -> Parser:
    def parse_pydantic(text: str) -> Any:
        try:
            return model.model_validate_json(text)
        except ValueError as exc:  # pydantic.ValidationError is a ValueError
            raise StructuredOutputError(
                f"the model's reply does not validate as {model.__name__}: "
                f"{_pydantic_problems(exc)}",
                text,
            ) from None

    return parse_pydantic


def _pydantic_problems(exc: ValueError) -> str:
    """One line per problem, ``loc: msg``, from a pydantic ``ValidationError``."""
    errors: Any = getattr(exc, "errors", None)
    try:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in errors()
        ]
    except Exception:  # not a pydantic ValidationError after all
        return str(exc)
    return "; ".join(problems) or str(exc)


def _class_parser(cls: type) -> Parser:
    def parse_class(text: str) -> Any:
        value = _loads(text)
        try:
            return _user_converter.structure(value, cls)
        except Exception as exc:
            raise StructuredOutputError(
                f"the model's reply does not fit {cls.__name__}: {_describe(exc)}", text
            ) from None

    return parse_class


def _describe(exc: Exception) -> str:
    if isinstance(exc, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(exc, format_exception=_format_exception))
    return _format_exception(exc, None)


def _format_exception(exc: BaseException, tp: Any) -> str:
    # Our hooks raise TypeError/ValueError with a useful message; cattrs' own wording is
    # better for missing and extra keys.
    if isinstance(exc, (TypeError, ValueError)) and not isinstance(exc, KeyError) and exc.args:
        return str(exc)
    return format_exception(exc, tp)


# --- the strict converter for user classes ------------------------------------------------

_user_converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)


def _strict(kind: type, label: str) -> Callable[[Any, Any], Any]:
    def structure_strict(value: Any, _: Any) -> Any:
        if isinstance(value, bool) and kind is not bool:
            raise TypeError(f"expected {label}, got a boolean")
        if not isinstance(value, kind):
            raise TypeError(f"expected {label}, got {type(value).__name__}")
        return value

    return structure_strict


def _structure_int(value: Any, _: Any) -> int:
    # JSON has one number type: an integral float (3.0) is an integer.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    result: int = _strict(int, "an integer")(value, int)
    return result


def _structure_float(value: Any, _: Any) -> float:
    return float(_strict((int, float), "a number")(value, float))  # type: ignore[arg-type]


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _structure_union(value: Any, tp: Any) -> Any:
    # Try each member in order; members are strict, so "5" never becomes 5.
    args = typing.get_args(tp)
    if value is None and type(None) in args:
        return None
    problems = []
    for member in args:
        if member is type(None):
            continue
        try:
            return _user_converter.structure(value, member)
        except Exception as exc:
            problems.append(f"{_type_name(member)}: {_describe(exc)}")
    raise ValueError(f"{value!r} matches none of {_type_name(tp)} ({'; '.join(problems)})")


def _is_array(tp: Any) -> bool:
    origin = typing.get_origin(tp) or tp
    return origin in (list, tuple, set, frozenset) or _is_abc(
        origin, "Sequence", "MutableSequence", "Set", "MutableSet"
    )


def _is_abc(origin: Any, *names: str) -> bool:
    return any(origin is getattr(collections.abc, name) for name in names)


def _structure_items(value: Any, items: list[tuple[Any, Any, Any]], tp: Any) -> list[Any]:
    """Structure ``(index or key, value, type)`` items, collecting every failure with its
    position so that the error message names e.g. ``$.authors[1].name``."""
    errors: list[Exception] = []
    out: list[Any] = []
    for index, item, item_type in items:
        try:
            out.append(_user_converter.structure(item, item_type))
        except Exception as exc:
            note = IterableValidationNote(f"Structuring {tp} @ {index!r}", index, item_type)
            exc.__notes__ = [*getattr(exc, "__notes__", []), note]  # type: ignore[attr-defined]
            errors.append(exc)
    if errors:
        raise IterableValidationError(f"While structuring {tp!r}", errors, tp)
    return out


def _array_factory(tp: Any) -> Callable[[Any, Any], Any]:
    origin = typing.get_origin(tp) or tp
    args = typing.get_args(tp)
    fixed = origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis)
    item_type = args[0] if args else Any
    make: Callable[[Any], Any]
    if origin in (set, frozenset) or _is_abc(origin, "Set", "MutableSet"):
        make = frozenset if origin is frozenset else set
    elif origin is tuple:
        make = tuple
    else:
        make = list

    def structure_array(value: Any, _: Any) -> Any:
        # cattrs would iterate any iterable ("abc" -> ["a", "b", "c"]); JSON arrays only.
        if not isinstance(value, list):
            raise TypeError(f"expected a JSON array, got {type(value).__name__}")
        if fixed:
            if len(value) != len(args):
                raise ValueError(f"expected a JSON array of {len(args)} items, got {len(value)}")
            items = [(i, v, args[i]) for i, v in enumerate(value)]
        else:
            items = [(i, v, item_type) for i, v in enumerate(value)]
        return make(_structure_items(value, items, tp))

    return structure_array


def _is_mapping(tp: Any) -> bool:
    origin = typing.get_origin(tp) or tp
    return origin is dict or _is_abc(origin, "Mapping", "MutableMapping")


def _mapping_factory(tp: Any) -> Callable[[Any, Any], Any]:
    args = typing.get_args(tp)
    value_type = args[1] if len(args) == 2 else Any

    def structure_mapping(value: Any, _: Any) -> Any:
        if not isinstance(value, dict):
            raise TypeError(f"expected a JSON object, got {type(value).__name__}")
        items = [(k, v, value_type) for k, v in value.items()]
        return dict(zip(value, _structure_items(value, items, tp), strict=True))

    return structure_mapping


def _is_record_class(tp: Any) -> bool:
    return isinstance(tp, type) and (attrs.has(tp) or dataclasses.is_dataclass(tp))


def _record_factory(cls: Any) -> Callable[[Any, Any], Any]:
    inner = make_dict_structure_fn(cls, _user_converter)

    def structure_record(value: Any, _: Any) -> Any:
        if not isinstance(value, dict):
            raise TypeError(
                f"expected a JSON object for {cls.__name__}, got {type(value).__name__}"
            )
        return inner(value, cls)

    return structure_record


def _is_literal(tp: Any) -> bool:
    return typing.get_origin(tp) is typing.Literal


def _structure_literal(value: Any, tp: Any) -> Any:
    for allowed in typing.get_args(tp):
        # Compare types too: in Python True == 1, in JSON they differ.
        if value == allowed and type(value) is type(allowed):
            return value
    choices = ", ".join(repr(a) for a in typing.get_args(tp))
    raise ValueError(f"expected one of {choices}, got {value!r}")


_user_converter.register_structure_hook_factory(_is_record_class, _record_factory)
_user_converter.register_structure_hook_func(_is_literal, _structure_literal)
_user_converter.register_structure_hook(str, _strict(str, "a string"))
_user_converter.register_structure_hook(bool, _strict(bool, "a boolean"))
_user_converter.register_structure_hook(int, _structure_int)
_user_converter.register_structure_hook(float, _structure_float)
_user_converter.register_structure_hook_func(_is_union, _structure_union)
_user_converter.register_structure_hook_factory(_is_array, _array_factory)
_user_converter.register_structure_hook_factory(_is_mapping, _mapping_factory)


# --- JSON schema from type hints ----------------------------------------------------------


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


def _type_name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")


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
