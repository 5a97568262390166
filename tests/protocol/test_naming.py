"""snake_case attribute names -> camelCase wire keys, including the protocol's exceptions."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from lmstudio_sdk.protocol.naming import CAMEL_EXCEPTIONS, to_camel

SCHEMAS = Path(__file__).parents[1] / "schemas"


@pytest.mark.parametrize(
    ("name", "wire"),
    [
        ("type", "type"),
        ("call_id", "callId"),
        ("creation_parameter", "creationParameter"),
        ("max_predicted_tokens", "maxPredictedTokens"),
        ("top_k_sampling", "topKSampling"),
        ("fp16x_value", "fp16xValue"),  # a digit does not upper-case what follows it
        ("gpu_2_index", "gpu2Index"),
        ("type_", "type"),  # a trailing underscore (for keywords) is dropped
        ("offload_kv_cache_to_gpu", "offloadKVCacheToGpu"),
        ("use_fp16_for_kv_cache", "useFp16ForKVCache"),
        ("try_direct_io", "tryDirectIO"),
    ],
)
def test_to_camel(name: str, wire: str) -> None:
    assert to_camel(name) == wire


def test_exactly_three_exceptions() -> None:
    assert CAMEL_EXCEPTIONS == {
        "offload_kv_cache_to_gpu": "offloadKVCacheToGpu",
        "use_fp16_for_kv_cache": "useFp16ForKVCache",
        "try_direct_io": "tryDirectIO",
    }


def _property_names(node: Any, found: set[str]) -> set[str]:
    if isinstance(node, dict):
        properties = node.get("properties")
        if isinstance(properties, dict):
            found.update(properties)
        for value in node.values():
            _property_names(value, found)
    elif isinstance(node, list):
        for value in node:
            _property_names(value, found)
    return found


# A word is a run of capitals (an acronym such as "KV" or "IO"), or an optional capital
# followed by lower-case letters and digits ("Cache", "Fp16").
_WORD = re.compile(r"[A-Z]+(?![a-z0-9])|[A-Z]?[a-z0-9]+|[A-Z]+(?=[A-Z][a-z])")


def _natural_snake(wire: str) -> str:
    """The snake_case name a person would write for a wire key ("KVCache" -> "kv_cache")."""
    return "_".join(word.lower() for word in _WORD.findall(wire))


def test_natural_snake_names_give_every_wire_key_of_the_protocol() -> None:
    names: set[str] = set()
    for schema in ("js-head-lms.json", "js-head-envelope.json", "python-sdk-schema-lms.json"):
        _property_names(json.loads((SCHEMAS / schema).read_text()), names)
    wire_keys = {name for name in names if re.fullmatch(r"[a-z][a-zA-Z0-9]*", name)}
    assert len(wire_keys) > 500
    assert _natural_snake("offloadKVCacheToGpu") == "offload_kv_cache_to_gpu"
    mismatches = {
        key: to_camel(_natural_snake(key))
        for key in wire_keys
        if to_camel(_natural_snake(key)) != key
    }
    assert mismatches == {}
