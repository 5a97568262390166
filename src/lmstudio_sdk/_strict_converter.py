"""The strict cattrs converter that structures a model's JSON reply into a user's attrs
class or dataclass (not the wire converter: user classes keep their own names, nothing is
coerced, extra keys are refused), and how its errors read."""

from __future__ import annotations

import collections.abc
import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any, Union

import attrs
import cattrs
from cattrs.errors import IterableValidationError, IterableValidationNote
from cattrs.gen import make_dict_structure_fn
from cattrs.v import format_exception

__all__: list[str] = []  # private: _user_converter, _describe


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


def _type_name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")
