"""``listLoaded`` results decoded in one step to public ``ModelInstanceInfo`` views.

``results.instance_infos`` builds the views straight from the JSON when every field has
exactly its JSON type, and otherwise goes through the wire classes. Whatever the server
sends, the outcome must be the wire classes' own: the same views, or the same
``RemoteProtocolError`` naming the field.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lmstudio_sdk import ModelInstanceInfo, PredictionStats
from lmstudio_sdk.errors import RemoteProtocolError
from lmstudio_sdk.protocol.endpoints import embedding, llm, shared
from lmstudio_sdk.protocol.wire import decode_payload
from lmstudio_sdk.results import Quantization, instance_infos

SPECS = {"llm": llm.LIST_LOADED, "embedding": embedding.LIST_LOADED}

FULL: dict[str, Any] = {
    "type": "llm",
    "modelKey": "smollm2-135m-instruct",
    "format": "gguf",
    "displayName": "SmolLM2 135M Instruct",
    "path": "HuggingFaceTB/smollm2/model.gguf",
    "sizeBytes": 105_000_000,
    "publisher": "HuggingFaceTB",
    "indexedModelIdentifier": "HuggingFaceTB/smollm2",
    "deviceIdentifier": None,
    "paramsString": "135M",
    "architecture": "llama",
    "quantization": {"name": "Q8_0", "bits": 8},
    "variants": ["q8", "q4"],
    "selectedVariant": "q8",
    "vision": False,
    "trainedForToolUse": True,
    "maxContextLength": 8192,
    "identifier": "smollm2",
    "instanceReference": "ref-1",
    "contextLength": 4096,
    "ttlMs": 3_600_000,
    "lastUsedTime": None,
}

JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([2.0, 2.5, -1.0]),
    st.text(max_size=3),
    st.lists(st.one_of(st.text(max_size=2), st.integers(0, 2)), max_size=2),
    st.fixed_dictionaries({"name": st.one_of(st.text(max_size=2), st.none())})
    | st.fixed_dictionaries({"name": st.text(max_size=2), "bits": st.sampled_from([4, 4.0, "4"])}),
)


@st.composite
def entries(draw: st.DrawFn) -> dict[str, Any]:
    """A full entry with up to three keys left out or replaced by any JSON value."""
    entry = dict(FULL)
    for key in draw(st.lists(st.sampled_from(sorted(FULL)), max_size=3)):
        if draw(st.booleans()):
            entry.pop(key, None)
        else:
            entry[key] = draw(JSON_VALUES)
    return entry


def through_wire_classes(raw: Any, namespace: str) -> list[ModelInstanceInfo] | str:
    """What the wire classes make of ``raw``: the views, or the error's message."""
    spec = SPECS[namespace]
    try:
        wire = decode_payload(raw, spec.result, what=f"result of {namespace}.listLoaded")
    except RemoteProtocolError as exc:
        return str(exc)
    return [ModelInstanceInfo.from_wire(entry) for entry in wire]


def one_step(raw: Any, namespace: str) -> list[ModelInstanceInfo] | str:
    try:
        return instance_infos(raw, SPECS[namespace])
    except RemoteProtocolError as exc:
        return str(exc)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries=st.lists(entries(), max_size=3), namespace=st.sampled_from(sorted(SPECS)))
def test_any_entry_decodes_as_the_wire_classes_decode_it(
    entries: list[dict[str, Any]], namespace: str
) -> None:
    # repr: the same values of the same types (``4 == 4.0``, but the views differ).
    assert repr(one_step(entries, namespace)) == repr(through_wire_classes(entries, namespace))


ODD_VALUES: list[Any] = [None, True, 0, 2, 2.0, 2.5, "", "x", [], ["x"], [1], {}, {"bits": 4}]
ODD_VALUES += [{"name": "Q", "bits": 4}, {"name": "Q", "bits": 4.0}, {"name": "Q", "bits": "4"}]


@pytest.mark.parametrize("namespace", sorted(SPECS))
def test_every_field_left_out_or_given_any_type_decodes_as_the_wire_classes_do(
    namespace: str,
) -> None:
    for key in FULL:
        left_out = {k: v for k, v in FULL.items() if k != key}
        variants = [left_out, *({**FULL, key: value} for value in ODD_VALUES)]
        for entry in variants:
            expected = repr(through_wire_classes([entry], namespace))
            assert repr(one_step([entry], namespace)) == expected, entry


@pytest.mark.parametrize("namespace", sorted(SPECS))
def test_a_full_entry_reads_as_its_public_view(namespace: str) -> None:
    [info] = instance_infos([FULL], SPECS[namespace])
    assert info.type == namespace
    assert info.identifier == "smollm2"
    assert info.quantization == Quantization("Q8_0", 8)
    assert info.variants == ("q8", "q4")
    assert info.ttl_ms == 3_600_000.0
    assert isinstance(info.ttl_ms, float)
    assert info.device_identifier is None
    assert info.last_used_time is None
    assert (info.vision, info.trained_for_tool_use) == (
        (False, True) if namespace == "llm" else (None, None)
    )
    assert [info] == through_wire_classes([FULL], namespace)


def test_a_malformed_entry_is_an_error_naming_the_field() -> None:
    with pytest.raises(RemoteProtocolError, match=r"result of llm\.listLoaded.*sizeBytes"):
        instance_infos([FULL, {**FULL, "sizeBytes": "big"}], llm.LIST_LOADED)


def test_a_missing_result_is_an_error() -> None:
    with pytest.raises(RemoteProtocolError, match=r"result of llm\.listLoaded"):
        instance_infos(None, llm.LIST_LOADED)


def test_the_public_views_read_only_fields_their_wire_classes_have() -> None:
    # ``from_wire`` copies the fields of the same name (a field the wire object lacks reads
    # as None), so a renamed wire field must fail here rather than read as None.
    def names(cls: type) -> set[str]:
        return {f.name for f in attrs.fields(cls)}

    assert names(PredictionStats) <= names(shared.LLMPredictionStats)
    assert names(ModelInstanceInfo) <= names(shared.LLMInstanceInfo)
    assert names(ModelInstanceInfo) - names(shared.EmbeddingModelInstanceInfo) == {
        "vision",
        "trained_for_tool_use",
    }
