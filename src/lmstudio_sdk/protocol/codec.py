"""The one cattrs converter that maps wire classes to JSON and back.

Conventions every wire class follows (see ``docs/architecture.md``):

* frozen, slotted attrs classes with snake_case fields; the converter renames them to
  camelCase (:func:`~lmstudio_sdk.protocol.naming.to_camel`, with its exceptions table);
* optional keys default to :data:`UNSET` and are left out of the JSON when unset;
  ``None`` is an explicit ``null`` and is only used for nullable fields;
* a variant of a tagged union is declared with :func:`variant`, e.g. ``@variant("fragment")``
  instead of ``@attrs.frozen``: its tag becomes a real first field that is not an
  ``__init__`` argument, so it is always written, whatever type the value is unstructured as;
* tagged unions are registered with :func:`register_tagged_union`; an unknown tag
  structures to :class:`Unknown`, which keeps the raw object (forward compatibility);
* unknown keys in inbound objects are ignored, never an error, on both sides.

Decoding errors become :class:`~lmstudio_sdk.errors.RemoteProtocolError` (server broke the
protocol) and encoding errors :class:`~lmstudio_sdk.errors.LocalProtocolError`; never a bare
``KeyError`` or an ``ExceptionGroup``.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, TypeVar, Union

import attrs
import cattrs
from cattrs.cols import homogenous_tuple_structure_factory, is_sequence, list_structure_factory
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from typing_extensions import dataclass_transform

from ..errors import LocalProtocolError, RemoteProtocolError
from ._unset import UNSET, UnsetType
from .naming import to_camel

try:  # orjson is an optional extra; stdlib json is the fallback.
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None  # type: ignore[assignment]

__all__ = [
    "USING_ORJSON",
    "Unknown",
    "converter",
    "dumps",
    "loads",
    "register_tagged_union",
    "structure",
    "tag_of",
    "unstructure",
    "variant",
]

T = TypeVar("T")

USING_ORJSON = _orjson is not None

if _orjson is not None:
    _orjson_dumps = _orjson.dumps
    _orjson_loads = _orjson.loads

    def dumps(value: Any) -> str:
        """Serialise a JSON value to a compact text frame."""
        return _orjson_dumps(value).decode()

    def loads(text: str | bytes) -> Any:
        """Parse one JSON text frame."""
        return _orjson_loads(text)

else:
    _json_dumps = json.JSONEncoder(
        separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode

    def dumps(value: Any) -> str:
        """Serialise a JSON value to a compact text frame."""
        return _json_dumps(value)

    def loads(text: str | bytes) -> Any:
        """Parse one JSON text frame."""
        return stdlib_loads(text)


def stdlib_loads(text: str | bytes) -> Any:
    """Parse one JSON text frame with the stdlib (what :func:`loads` is without orjson)."""
    # The stdlib parser recurses per nesting level, and where it gives up depends on the
    # Python version; orjson stops at 1024 levels with a ValueError. Same limit, same error,
    # same message, whichever decoder and Python: check the depth first, but only walk the
    # text when it has enough brackets to be too deep (counting them is cheap).
    if _bracket_count(text) > MAX_JSON_DEPTH:
        error = _depth_error(text)
        if error is not None:
            raise error
    try:
        return json.loads(text)
    except RecursionError:  # a C stack smaller than the limit needs
        raise _depth_error(text) or ValueError("depth limit exceeded") from None


MAX_JSON_DEPTH = 1024
"""orjson's nesting limit (arrays and objects), also applied to the stdlib decoder."""


def _bracket_count(text: str | bytes) -> int:
    if isinstance(text, str):
        return text.count("[") + text.count("{")
    data = bytes(text)
    return data.count(b"[") + data.count(b"{")


def _depth_error(text: str | bytes) -> ValueError | None:
    """orjson's error for ``text`` if it nests deeper than :data:`MAX_JSON_DEPTH`."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text).decode("utf-8", errors="replace")
    depth, in_string, escaped, line, line_start, index = 0, False, False, 1, 0, 0
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                break
        elif char in "]}":
            depth -= 1
        elif char == "\n":
            line, line_start = line + 1, index + 1
    else:
        return None
    column = index - line_start + 2
    return ValueError(f"depth limit exceeded: line {line} column {column} (char {index + 1})")


@attrs.frozen
class Unknown:
    """A tagged object whose tag this version of the SDK does not know.

    ``raw`` is the whole JSON object as received; re-encoding it gives it back unchanged.
    """

    type: str | None
    raw: dict[str, Any]


converter = cattrs.Converter(detailed_validation=True)


def _is_unset_union(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    return origin in (Union, types.UnionType) and UnsetType in typing.get_args(tp)


def _strip_unset(tp: Any) -> Any:
    args = tuple(a for a in typing.get_args(tp) if a is not UnsetType)
    return args[0] if len(args) == 1 else Union[args]  # noqa: UP007 - runtime construction


def _unset_union_structure_factory(tp: Any) -> Callable[[Any, Any], Any]:
    inner = _strip_unset(tp)
    hook = converter.get_structure_hook(inner)

    def structure_maybe_unset(value: Any, _: Any) -> Any:
        return hook(value, inner)

    return structure_maybe_unset


def _unset_union_unstructure_factory(tp: Any) -> Callable[[Any], Any]:
    inner = _strip_unset(tp)
    unstructure_inner = converter.get_unstructure_hook(inner)
    return unstructure_inner


def _field_overrides(cls: type, *, for_unstructure: bool) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for field in attrs.fields(cls):
        camel = to_camel(field.name)
        omit = for_unstructure and field.default is UNSET
        if camel != field.name or omit:
            overrides[field.name] = override(rename=camel, omit_if_default=omit or None)
    return overrides


def _attrs_structure_factory(cls: type) -> Callable[[Any, Any], Any]:
    return make_dict_structure_fn(cls, converter, **_field_overrides(cls, for_unstructure=False))


def _attrs_unstructure_factory(cls: type) -> Callable[[Any], Any]:
    return make_dict_unstructure_fn(
        cls,
        converter,
        _cattrs_omit_if_default=False,
        _cattrs_include_init_false=True,  # union tags are init=False fields
        **_field_overrides(cls, for_unstructure=True),
    )


converter.register_structure_hook_factory(_is_unset_union, _unset_union_structure_factory)
converter.register_unstructure_hook_factory(_is_unset_union, _unset_union_unstructure_factory)
converter.register_structure_hook_factory(attrs.has, _attrs_structure_factory)
converter.register_unstructure_hook_factory(attrs.has, _attrs_unstructure_factory)
converter.register_unstructure_hook(Unknown, lambda value: value.raw)
converter.register_structure_hook(
    Unknown, lambda value, _: Unknown(type=_tag_or_none(value, "type"), raw=_as_object(value))
)
# ``dict[str, Any]`` JSON objects pass through untouched, but must be objects.
converter.register_structure_hook_func(
    lambda tp: tp == dict[str, Any], lambda value, _: _as_object(value)
)


def _structure_str(value: Any, _: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _structure_int(value: Any, _: Any) -> int:
    # JSON has one number type; an integral float (``3.0``) is accepted as an int.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"expected an integer, got {value!r}")
        return int(value)
    return value


def _structure_float(value: Any, _: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value) if isinstance(value, int) else value


def _structure_bool(value: Any, _: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected a boolean, got {type(value).__name__}")
    return value


# Inbound values are checked, not coerced: cattrs would otherwise turn 5 into "5".
converter.register_structure_hook(str, _structure_str)
converter.register_structure_hook(int, _structure_int)
converter.register_structure_hook(float, _structure_float)
converter.register_structure_hook(bool, _structure_bool)


def _sequence_structure_factory(tp: Any) -> Callable[[Any, Any], Any]:
    # cattrs iterates whatever it is given, so "abc" would become ["a", "b", "c"] and an
    # object would become the list of its keys; a JSON array is required instead.
    is_tuple = typing.get_origin(tp) is tuple
    make = homogenous_tuple_structure_factory if is_tuple else list_structure_factory
    inner = make(tp, converter)

    def structure_array(value: Any, _: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"expected a JSON array, got {type(value).__name__}")
        return inner(value, tp)

    return structure_array


converter.register_structure_hook_factory(is_sequence, _sequence_structure_factory)


def _as_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _tag_or_none(value: Any, tag: str) -> str | None:
    found = value.get(tag) if isinstance(value, dict) else None
    return found if isinstance(found, str) else None


@dataclass_transform(frozen_default=True, field_specifiers=(attrs.field,))
def variant(
    value: str, *, tag: str = "type", kw_only: bool = False
) -> Callable[[type[T]], type[T]]:
    """``attrs.frozen`` for a variant of a tagged union whose ``tag`` key is ``value``.

    The tag becomes the class's first own field, ``tag: Literal[value] = value``, left out
    of ``__init__`` (so it is always written); the JSON object therefore starts with it.
    """

    def define(cls: type[T]) -> type[T]:
        own = inspect.get_annotations(cls)
        cls.__annotations__ = {tag: Literal[value], **own}
        setattr(cls, tag, attrs.field(default=value, init=False))
        return attrs.frozen(cls, kw_only=kw_only)

    return define


def tag_of(cls: type, tag: str = "type") -> Any:
    """The tag value a union variant carries (the default of its ``tag`` field)."""
    return attrs.fields_dict(cls)[tag].default


def register_tagged_union(union: Any, *, tag: str = "type", unknown: bool = True) -> None:
    """Teach the converter to structure ``union`` by the value of its ``tag`` key.

    Member hooks are looked up on first use, not at registration, so unions may be
    registered in any order. With ``unknown=True`` (the default) an unrecognised tag
    becomes :class:`Unknown`; otherwise it is a ``ValueError`` naming the known tags.
    """
    members = [m for m in typing.get_args(union) if m is not Unknown]
    by_tag: dict[Any, type] = {tag_of(m, tag): m for m in members}
    hooks: dict[type, Callable[[Any, Any], Any]] = {}
    known = ", ".join(repr(t) for t in by_tag)

    def structure_tagged(value: Any, _: Any) -> Any:
        if not isinstance(value, dict):
            raise TypeError(
                f"expected a JSON object with a {tag!r} key, got {type(value).__name__}"
            )
        member = by_tag.get(value.get(tag))
        if member is None:
            if unknown:
                return Unknown(type=_tag_or_none(value, tag), raw=value)
            raise ValueError(f"unknown {tag} {value.get(tag)!r}; expected one of {known}")
        hook = hooks.get(member)
        if hook is None:
            hook = hooks[member] = converter.get_structure_hook(member)
        return hook(value, member)

    converter.register_structure_hook(union, structure_tagged)
    converter.register_unstructure_hook(
        union, lambda value: converter.unstructure(value, type(value))
    )


_PATH_ATTRIBUTE = re.compile(r"\.([a-z_][a-z0-9_]*)")


def _wire_path(message: str) -> str:
    # cattrs paths use attribute names ("@ $.call_id"); the peer only knows the wire keys.
    head, sep, path = message.rpartition(" @ ")
    if not sep:
        return message
    return head + sep + _PATH_ATTRIBUTE.sub(lambda m: "." + to_camel(m.group(1)), path)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, cattrs.BaseValidationError):
        messages = (_wire_path(m) for m in cattrs.transform_error(exc))
        return "; ".join(messages).replace(" | lmstudio_sdk.protocol._unset.UnsetType", "")
    return f"{type(exc).__name__}: {exc}"


def structure(value: Any, cls: type[T] | Any, *, what: str = "message") -> T:
    """Structure an inbound JSON value; a mismatch is a ``RemoteProtocolError``."""
    try:
        return typing.cast(T, converter.structure(value, cls))
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise RemoteProtocolError(f"malformed {what}: {_describe(exc)}") from None


def unstructure(value: Any, cls: Any = None, *, what: str = "message") -> Any:
    """Unstructure an outbound value; a failure is a ``LocalProtocolError``."""
    try:
        return (
            converter.unstructure(value, cls) if cls is not None else converter.unstructure(value)
        )
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise LocalProtocolError(f"cannot encode {what}: {_describe(exc)}") from None
