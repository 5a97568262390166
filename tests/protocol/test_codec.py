"""The cattrs converter: absent vs null, camelCase, tagged unions, strict inbound types."""

from __future__ import annotations

import json
from typing import Any, Union

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmstudio_sdk.errors import LocalProtocolError, RemoteProtocolError
from lmstudio_sdk.protocol import UNSET, Unknown, UnsetType, codec


@attrs.frozen
class Sample:
    context_length: int
    name: str
    ttl_ms: float | None
    offload_kv_cache_to_gpu: bool | UnsetType = UNSET
    device_identifier: str | UnsetType | None = UNSET
    tags: list[str] | UnsetType = UNSET
    extra: dict[str, Any] | UnsetType = UNSET


@codec.variant("circle")
class Circle:
    radius: float


@codec.variant("square")
class Square:
    side: float


Shape = Union[Circle, Square, Unknown]  # noqa: UP007 - a runtime alias
codec.register_tagged_union(Shape)


@codec.variant("red", tag="kind")
class Red:
    pass


@codec.variant("blue", tag="kind")
class Blue:
    pass


Colour = Union[Red, Blue]  # noqa: UP007 - a runtime alias
codec.register_tagged_union(Colour, tag="kind", unknown=False)


@attrs.frozen
class Drawing:
    shapes: list[Shape]
    colour: Colour | UnsetType = UNSET


def test_unset_fields_are_left_out_and_none_is_null() -> None:
    assert codec.unstructure(Sample(4096, "m", None)) == {
        "contextLength": 4096,
        "name": "m",
        "ttlMs": None,
    }
    raw = codec.unstructure(Sample(1, "m", 5.0, device_identifier=None))
    assert raw["deviceIdentifier"] is None
    assert codec.structure(raw, Sample).device_identifier is None
    assert (
        codec.structure({"contextLength": 1, "name": "m", "ttlMs": 1}, Sample).device_identifier
        is UNSET
    )


def test_field_names_are_camel_case_with_the_exceptions() -> None:
    raw = codec.unstructure(Sample(1, "m", None, offload_kv_cache_to_gpu=True))
    assert raw["offloadKVCacheToGpu"] is True
    assert codec.structure(raw, Sample).offload_kv_cache_to_gpu is True


def test_tagged_unions_dispatch_on_their_tag() -> None:
    drawing = Drawing([Circle(1.5), Square(2)], Blue())
    raw = codec.unstructure(drawing)
    assert raw == {
        "shapes": [{"type": "circle", "radius": 1.5}, {"type": "square", "side": 2}],
        "colour": {"kind": "blue"},
    }
    assert codec.structure(raw, Drawing) == drawing
    # ``variant`` makes the tag the first field: it leads every encoded object.
    assert codec.dumps(raw["shapes"][0]) == '{"type":"circle","radius":1.5}'
    assert codec.tag_of(Circle) == "circle"
    assert codec.tag_of(Red, "kind") == "red"


def test_unknown_tags_keep_the_raw_object() -> None:
    raw = {"type": "hexagon", "sides": 6}
    assert codec.structure(raw, Shape) == Unknown("hexagon", raw)
    assert codec.structure({"radius": 1}, Shape) == Unknown(None, {"radius": 1})
    # Re-encoding gives the object back unchanged.
    assert codec.unstructure(Drawing([Unknown("hexagon", raw)])) == {"shapes": [raw]}


def test_a_closed_union_rejects_unknown_tags_by_name() -> None:
    with pytest.raises(
        RemoteProtocolError, match=r"unknown kind 'green'; expected one of 'red', 'blue'"
    ):
        codec.structure({"kind": "green"}, Colour)


def test_unknown_keys_are_ignored() -> None:
    raw = {"contextLength": 1, "name": "m", "ttlMs": None, "brandNew": {"x": 1}}
    assert codec.structure(raw, Sample) == Sample(1, "m", None)


@pytest.mark.parametrize(
    ("raw", "field", "expected"),
    [
        ({"contextLength": "4096", "name": "m", "ttlMs": None}, "$.contextLength", "int"),
        ({"contextLength": True, "name": "m", "ttlMs": None}, "$.contextLength", "int"),
        ({"contextLength": 1.5, "name": "m", "ttlMs": None}, "$.contextLength", "int"),
        ({"contextLength": 1, "name": 5, "ttlMs": None}, "$.name", "str"),
        ({"contextLength": 1, "name": "m", "ttlMs": "1"}, "$.ttlMs", ""),
        (
            {"contextLength": 1, "name": "m", "ttlMs": None, "offloadKVCacheToGpu": 1},
            "$.offloadKVCacheToGpu",
            "bool",
        ),
        ({"contextLength": 1, "name": "m", "ttlMs": None, "tags": "abc"}, "$.tags", "list"),
        ({"contextLength": 1, "name": "m", "ttlMs": None, "tags": {"a": 1}}, "$.tags", "list"),
        ({"contextLength": 1, "name": "m", "ttlMs": None, "tags": [1]}, "$.tags[0]", "str"),
        ({"contextLength": 1, "name": "m", "ttlMs": None, "extra": [1]}, "$.extra", ""),
        ({"name": "m", "ttlMs": None}, "$.contextLength", "required field missing"),
    ],
)
def test_inbound_values_are_checked_not_coerced(
    raw: dict[str, Any], field: str, expected: str
) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        codec.structure(raw, Sample, what="sample")
    message = str(info.value)
    assert message.startswith("malformed sample: ")
    assert field in message  # the wire name, not the Python attribute name
    assert expected in message
    # Never an ExceptionGroup, and no chained cattrs internals.
    assert type(info.value) is RemoteProtocolError
    assert info.value.__cause__ is None


def test_integral_floats_are_integers() -> None:
    assert codec.structure({"contextLength": 4096.0, "name": "m", "ttlMs": 2}, Sample) == Sample(
        4096, "m", 2.0
    )


def test_nested_errors_name_the_path() -> None:
    with pytest.raises(RemoteProtocolError, match=r"\$\.shapes\[1\]\.radius"):
        codec.structure(
            {"shapes": [{"type": "square", "side": 1}, {"type": "circle", "radius": "big"}]},
            Drawing,
        )


def test_dict_fields_must_be_objects() -> None:
    with pytest.raises(RemoteProtocolError, match="expected a JSON object"):
        codec.structure([1], dict[str, Any])


def test_encoding_failures_are_local_errors() -> None:
    with pytest.raises(LocalProtocolError, match="cannot encode sample"):
        codec.unstructure("not a Sample", Sample, what="sample")


def test_dumps_is_compact_and_loads_reads_it_back() -> None:
    value = {"a": [1, 2.5, None, True], "b": "ü"}
    text = codec.dumps(value)
    assert text == json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert codec.loads(text) == value
    assert codec.loads(text.encode()) == value


names = st.text(max_size=10)
maybe_names = st.just(UNSET) | st.none() | names


@settings(max_examples=100, deadline=None)
@given(
    st.builds(
        Sample,
        context_length=st.integers(-(2**53), 2**53),
        name=names,
        ttl_ms=st.none() | st.floats(allow_nan=False, allow_infinity=False),
        offload_kv_cache_to_gpu=st.just(UNSET) | st.booleans(),
        device_identifier=maybe_names,
        tags=st.just(UNSET) | st.lists(names, max_size=3),
        extra=st.just(UNSET)
        | st.dictionaries(names, st.integers(-(2**53), 2**53) | names, max_size=3),
    )
)
def test_round_trip_through_json(sample: Sample) -> None:
    text = codec.dumps(codec.unstructure(sample))
    assert codec.structure(codec.loads(text), Sample) == sample
