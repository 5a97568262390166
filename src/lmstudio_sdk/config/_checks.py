"""Value checks for config options: each raises ``ValueError`` saying what is allowed."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import LMStudioProtocolError
from ..protocol._unset import UNSET
from ..protocol.codec import unstructure
from ..protocol.kv import KVConfig
from ..protocol.naming import to_camel

# --- value checks: each raises ValueError saying what is allowed ----------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _range_text(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f" from {low} to {high}"
    if low is not None:
        return f" >= {low}"
    if high is not None:
        return f" <= {high}"
    return ""


Check = Callable[[str, Any], object]
"""Raises ValueError for a bad value; what it returns is ignored."""


def _in_range(
    kind: str, is_kind: Callable[[Any], bool], low: float | None, high: float | None
) -> Check:
    def check(name: str, value: Any) -> None:
        if (
            not is_kind(value)
            or (low is not None and value < low)
            or (high is not None and value > high)
        ):
            raise ValueError(f"{name} must be {kind}{_range_text(low, high)}, got {value!r}")

    return check


def _number(low: float | None = None, high: float | None = None) -> Check:
    return _in_range("a number", _is_number, low, high)


def _integer(low: int | None = None, high: int | None = None) -> Check:
    return _in_range("an integer", _is_int, low, high)


def _boolean(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def _string(name: str, value: Any) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {value!r}")


def _one_of(*choices: Any) -> Check:
    def check(name: str, value: Any) -> None:
        if value not in choices or not isinstance(value, str):
            allowed = ", ".join(repr(c) for c in choices)
            raise ValueError(f"{name} must be one of {allowed}; got {value!r}")

    return check


def _or_false(check: Check, *, also: tuple[Any, ...] = ()) -> Check:
    """A checkbox option: ``False`` (or a value in ``also``) disables it."""

    def check_or_false(name: str, value: Any) -> None:
        if value is False or (value in also and not isinstance(value, bool)):
            return
        try:
            check(name, value)
        except ValueError as exc:
            off = " or ".join(["False", *(repr(v) for v in also)])
            raise ValueError(f"{exc} (or {off} to switch it off)") from None

    return check_or_false


def _json_value(name: str, value: Any) -> Any:
    """``value`` as plain JSON (wire classes are unstructured); ValueError if it is not JSON."""
    try:
        plain = unstructure(value, what=name)
        return json.loads(json.dumps(plain, allow_nan=False))
    except (TypeError, ValueError, LMStudioProtocolError) as exc:
        raise ValueError(f"{name} must be JSON-serialisable: {exc}") from None


def _camelize(value: Any) -> Any:
    """Nested dict keys to camelCase (for settings objects whose keys are all known)."""
    if isinstance(value, Mapping):
        return {to_camel(str(k)): _camelize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_camelize(v) for v in value]
    return value


def _shape(
    what: str,
    value: Any,
    required: Mapping[str, Check],
    optional: Mapping[str, Check] | None = None,
) -> dict[str, Any]:
    """Check a settings object (camelCase keys) and return it as a plain dict."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} must be a dict, got {value!r}")
    obj: dict[str, Any] = _camelize(value)
    optional = optional or {}
    for key in obj:
        if key not in required and key not in optional:
            known = ", ".join(repr(k) for k in [*required, *optional])
            raise ValueError(f"{what} has an unknown key {key!r}; allowed: {known}")
    for key, check in required.items():
        if key not in obj:
            raise ValueError(f"{what} needs the key {key!r}")
        check(f"{what}[{key!r}]", obj[key])
    for key, check in optional.items():
        if key in obj:
            check(f"{what}[{key!r}]", obj[key])
    return obj


def _string_list(name: str, value: Any) -> None:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"{name} must be a list of strings, got {value!r}")
    for item in value:
        if not isinstance(item, str) or not item:
            raise ValueError(f"{name} must hold non-empty strings, got {item!r}")


def _raw_dict(value: Mapping[str, Any] | KVConfig | None) -> dict[str, Any]:
    """``raw`` as ``{full key: plain JSON value}``; ValueError for anything else."""
    if value is None:
        return {}
    items: dict[Any, Any]
    if isinstance(value, KVConfig):
        items = value.to_dict()
    elif isinstance(value, Mapping) and isinstance(value.get("fields"), list):
        # A KVConfig in its JSON form, as the JS SDK's ``raw`` takes it.
        items = {
            f.get("key"): f.get("value", UNSET) for f in value["fields"] if isinstance(f, Mapping)
        }
    elif isinstance(value, Mapping):
        items = dict(value)
    else:
        raise ValueError(f"raw must be a dict of full KV keys to values, got {value!r}")
    for key, item in items.items():
        if not isinstance(key, str) or "." not in key:
            raise ValueError(
                f"raw keys are full KV keys such as 'llm.prediction.temperature', got {key!r}"
            )
        # UNSET (a field without a value) is valid on the wire: it still overrides.
        if item is not UNSET:
            items[key] = _json_value(f"raw[{key!r}]", item)
    return items


def _one_of_numbers(*choices: int) -> Check:
    def check(name: str, value: Any) -> None:
        if not _is_number(value) or value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")

    return check


def _check_ratio(name: str, value: Any) -> None:
    if value in ("max", "off") and isinstance(value, str):
        return
    if not _is_number(value) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number from 0 to 1, 'max' or 'off'; got {value!r}")


def _check_gpu_list(name: str, value: Any) -> None:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"{name} must be a list of GPU indices, got {value!r}")
    for item in value:
        _integer(0)(f"{name} item", item)
