"""KV configs: the checkbox encoding, collapsing a stack, and the dict helpers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from lmstudio_sdk.errors import LocalProtocolError, RemoteProtocolError
from lmstudio_sdk.protocol._unset import UNSET
from lmstudio_sdk.protocol.codec import structure, unstructure
from lmstudio_sdk.protocol.kv import (
    LAYER_NAMES,
    Checkbox,
    KVConfig,
    KVConfigField,
    KVConfigLayer,
    KVConfigStack,
    collapse,
    kv_config_from_dict,
    kv_config_to_dict,
)

KEYS: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parent.parent / "schemas" / "js-head-kv-config-keys.json").read_text(
        encoding="utf-8"
    )
)["keys"]
# Keys whose value is a {checked, value} object (checkboxNumeric and the cache-type ones).
CHECKBOX_KEYS = sorted(
    key
    for key, entry in KEYS.items()
    if isinstance(entry["defaultValue"], dict)
    and set(entry["defaultValue"]) == {"checked", "value"}
)


def _lenient(schema: Any) -> Any:
    """The schema without ``additionalProperties: false`` (an export artifact)."""
    if isinstance(schema, dict):
        return {
            k: _lenient(v)
            for k, v in schema.items()
            if not (k == "additionalProperties" and v is False)
        }
    return schema


def test_the_catalogue_has_checkbox_keys() -> None:
    assert "llm.prediction.maxPredictedTokens" in CHECKBOX_KEYS
    assert "llm.load.llama.kCacheQuantizationType" in CHECKBOX_KEYS  # a checkbox over a string
    assert len(CHECKBOX_KEYS) >= 20


@pytest.mark.parametrize("key", CHECKBOX_KEYS)
def test_checkbox_encodings_follow_the_key_catalogue(key: str) -> None:
    default = KEYS[key]["defaultValue"]
    schema = _lenient(KEYS[key]["valueSchema"])
    enabled = Checkbox.from_setting(default["value"], placeholder=default["value"])
    disabled = Checkbox.from_setting(False, placeholder=default["value"])
    assert enabled.to_json() == {"checked": True, "value": default["value"]}
    assert disabled.to_json() == {"checked": False, "value": default["value"]}
    for box in (enabled, disabled):
        jsonschema.validate(box.to_json(), schema)
    assert Checkbox.from_json(default).to_setting() == (
        default["value"] if default["checked"] else False
    )


def test_checkbox_setting_round_trip() -> None:
    assert Checkbox.from_setting(64, placeholder=1) == Checkbox(True, 64)
    assert Checkbox.from_setting(False, placeholder=1) == Checkbox(False, 1)
    assert Checkbox(True, 64).to_setting() == 64
    assert Checkbox(False, 1).to_setting() is False
    assert Checkbox.from_setting(0, placeholder=1) == Checkbox(True, 0)  # 0 is a value, not off


@pytest.mark.parametrize("setting", [True, None, UNSET])
def test_checkbox_setting_must_be_a_value_or_false(setting: Any) -> None:
    with pytest.raises(LocalProtocolError, match="False to disable"):
        Checkbox.from_setting(setting, placeholder=1)


@pytest.mark.parametrize(
    "raw", [64, {"checked": "yes", "value": 1}, {"value": 1}, {"checked": True}, [True, 1]]
)
def test_checkbox_from_json_rejects_other_shapes(raw: Any) -> None:
    with pytest.raises(RemoteProtocolError, match="checkbox"):
        Checkbox.from_json(raw)


def test_checkbox_values_are_encoded_inside_configs() -> None:
    config = kv_config_from_dict(
        {
            "llm.prediction.maxPredictedTokens": Checkbox(False, 1),
            "llm.prediction.temperature": 0.7,
        }
    )
    assert unstructure(config) == {
        "fields": [
            {"key": "llm.prediction.maxPredictedTokens", "value": {"checked": False, "value": 1}},
            {"key": "llm.prediction.temperature", "value": 0.7},
        ]
    }


def test_stack_encoding_of_protocol_section_10() -> None:
    stack = KVConfigStack([KVConfigLayer("apiOverride", KVConfig())])
    assert unstructure(stack) == {
        "layers": [{"layerName": "apiOverride", "config": {"fields": []}}]
    }
    assert KVConfig() == KVConfig([])
    assert unstructure(KVConfigStack()) == {"layers": []}


def test_collapse_later_layers_win_key_by_key() -> None:
    stack = KVConfigStack(
        [
            KVConfigLayer("apiOverride", kv_config_from_dict({"a": 1, "b": 2, "c": 3})),
            KVConfigLayer("completeModeFormatting", kv_config_from_dict({"b": 20})),
            KVConfigLayer("instance", kv_config_from_dict({"c": 30, "d": 40})),
        ]
    )
    assert collapse(stack) == {"a": 1, "b": 20, "c": 30, "d": 40}
    reversed_stack = KVConfigStack(list(reversed(stack.layers)))
    assert collapse(reversed_stack) == {"a": 1, "b": 2, "c": 3, "d": 40}


def test_collapse_accepts_configs_in_order() -> None:
    assert collapse([kv_config_from_dict({"a": 1}), kv_config_from_dict({"a": 2})]) == {"a": 2}
    assert collapse([]) == {}
    assert collapse(KVConfigStack()) == {}


def test_collapse_field_without_value_still_overrides() -> None:
    # As the reference implementation: the key is kept, with no value.
    stack = KVConfigStack(
        [
            KVConfigLayer("apiOverride", kv_config_from_dict({"llm.prediction.systemPrompt": "x"})),
            KVConfigLayer("instance", KVConfig([KVConfigField("llm.prediction.systemPrompt")])),
        ]
    )
    assert collapse(stack) == {"llm.prediction.systemPrompt": UNSET}


def test_dict_helpers() -> None:
    settings = {"llm.load.contextLength": 4096, "llm.load.llama.tryMmap": False, "x": None}
    config = kv_config_from_dict(settings)
    assert config.fields == [
        KVConfigField("llm.load.contextLength", 4096),
        KVConfigField("llm.load.llama.tryMmap", False),
        KVConfigField("x", None),
    ]
    assert kv_config_to_dict(config) == settings
    assert config.to_dict() == settings
    assert list(config.to_dict()) == list(settings)  # order kept
    duplicated = KVConfig([KVConfigField("k", 1), KVConfigField("k", 2)])
    assert duplicated.to_dict() == {"k": 2}


def test_layer_names() -> None:
    assert "apiOverride" in LAYER_NAMES
    assert "completeModeFormatting" in LAYER_NAMES
    with pytest.raises(
        LocalProtocolError, match=r"unknown KV config layer name 'override'.*apiOverride"
    ):
        KVConfigLayer("override", KVConfig())  # type: ignore[arg-type]


def test_unknown_layer_name_from_the_wire_is_rejected() -> None:
    with pytest.raises(RemoteProtocolError, match="layerName"):
        structure({"layers": [{"layerName": "bogus", "config": {"fields": []}}]}, KVConfigStack)


def test_config_decoding_names_bad_fields() -> None:
    with pytest.raises(RemoteProtocolError, match=r"fields\[0\]\.key"):
        structure({"fields": [{"key": 5, "value": 1}]}, KVConfig)
    with pytest.raises(RemoteProtocolError, match="fields"):
        structure({"fields": {"key": "a"}}, KVConfig)
