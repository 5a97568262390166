"""KV configs: how load and prediction settings travel on the wire.

A config is a list of ``{key, value}`` fields with full dotted keys
(``llm.prediction.temperature``); a stack is a list of named layers, and the server
collapses it key by key, **later layers winning** (PROTOCOL.md 4.6). The SDKs send one
``apiOverride`` layer, plus ``completeModeFormatting`` after it for Python-style completion.

Values are free-form JSON. Settings that can be switched off (``maxPredictedTokens``,
``topPSampling``, ``seed``...) use the checkbox encoding ``{"checked": bool, "value": x}``,
built with :class:`Checkbox`; a :class:`Checkbox` (or any wire class) given as a value is
encoded by the converter, while values read from the wire stay plain JSON.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import attrs

from ..errors import LocalProtocolError
from ._unset import UNSET
from .codec import structure, unstructure

__all__ = [
    "LAYER_NAMES",
    "Checkbox",
    "KVConfig",
    "KVConfigField",
    "KVConfigLayer",
    "KVConfigStack",
    "LayerName",
    "collapse",
    "kv_config_from_dict",
    "kv_config_to_dict",
]

LayerName = Literal[
    "currentlyEditing",
    "currentlyLoaded",
    "apiOverride",
    "conversationSpecific",
    "conversationGlobal",
    "preset",
    "serverSession",
    "httpServerRequestOverride",
    "completeModeFormatting",
    "instance",
    "userModelDefault",
    "virtualModel",
    "modelDefault",
    "hardware",
]
"""The closed set of layer names: the server drops a whole request with an unknown one."""

LAYER_NAMES: tuple[str, ...] = typing.get_args(LayerName)


@attrs.frozen
class KVConfigField:
    """One setting. ``value`` may be left out (``UNSET``), which still overrides lower layers."""

    key: str
    value: Any = UNSET


@attrs.frozen
class KVConfig:
    """A list of settings, ``{"fields": [...]}``."""

    fields: list[KVConfigField] = attrs.Factory(list)

    def to_dict(self) -> dict[str, Any]:
        """The settings as ``{key: value}``; a repeated key keeps its last value."""
        return kv_config_to_dict(self)


def _check_layer_name(_: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if value not in LAYER_NAMES:
        raise LocalProtocolError(
            f"unknown KV config layer name {value!r}; the server rejects the whole request. "
            f"Use one of: {', '.join(LAYER_NAMES)}"
        )


@attrs.frozen
class KVConfigLayer:
    """A named layer of a stack."""

    layer_name: LayerName = attrs.field(validator=_check_layer_name)
    config: KVConfig


@attrs.frozen
class KVConfigStack:
    """Layers in order; the last layer wins."""

    layers: list[KVConfigLayer] = attrs.Factory(list)


def kv_config_from_dict(settings: Mapping[str, Any]) -> KVConfig:
    """Build a config from ``{key: value}`` (keys are full dotted names)."""
    return KVConfig([KVConfigField(key, value) for key, value in settings.items()])


def kv_config_to_dict(config: KVConfig) -> dict[str, Any]:
    """``{key: value}`` of a config; a repeated key keeps its last value."""
    return {field.key: field.value for field in config.fields}


def collapse(stack: KVConfigStack | Iterable[KVConfig]) -> dict[str, Any]:
    """Merge a stack (or configs in order) into ``{key: value}``, later layers winning.

    This is what the server does with a stack. A field without a value still overrides:
    its key maps to ``UNSET``, as the reference implementation keeps the key with no value.
    """
    configs = (
        [layer.config for layer in stack.layers] if isinstance(stack, KVConfigStack) else stack
    )
    merged: dict[str, Any] = {}
    for config in configs:
        merged.update(kv_config_to_dict(config))
    return merged


@attrs.frozen
class Checkbox:
    """A setting that can be switched off: ``{"checked": bool, "value": x}`` on the wire.

    ``checked=False`` disables the setting (``maxPredictedTokens`` unchecked means
    "unlimited"); ``value`` is then only a placeholder the server ignores.
    """

    checked: bool
    value: Any

    @classmethod
    def from_setting(cls, setting: Any, *, placeholder: Any) -> Checkbox:
        """SDK-level value -> checkbox: ``False`` disables, any other value enables it.

        ``placeholder`` is sent as the value of a disabled checkbox (the JS SDK sends 1).
        """
        if setting is False:
            return cls(False, placeholder)
        if setting is True or setting is None or setting is UNSET:
            raise LocalProtocolError(
                f"a checkbox setting takes a value to enable it or False to disable it, "
                f"not {setting!r}"
            )
        return cls(True, setting)

    def to_setting(self) -> Any:
        """The SDK-level value: ``value`` when checked, ``False`` when disabled."""
        return self.value if self.checked else False

    @classmethod
    def from_json(cls, value: Any) -> Checkbox:
        """Read a ``{checked, value}`` JSON value (``RemoteProtocolError`` if it is not one)."""
        return structure(value, cls, what="checkbox KV value")

    def to_json(self) -> dict[str, Any]:
        """The ``{checked, value}`` JSON object."""
        encoded: dict[str, Any] = unstructure(self, what="checkbox KV value")
        return encoded
