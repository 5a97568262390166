"""The fragment fast path decodes exactly as the converter does, and defers to it otherwise."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmstudio_sdk.protocol import codec
from lmstudio_sdk.protocol.endpoints import diagnostics, llm
from lmstudio_sdk.protocol.hot_packets import packet_hook

UNIONS = [llm.PredictToClientPacket, llm.CompleteRawTextToClientPacket]

JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(-5, 5), st.text(max_size=4)
)


def fragment(**fields: Any) -> dict[str, Any]:
    raw = {
        "content": "tok ",
        "tokensCount": 1,
        "containsDrafted": False,
        "reasoningType": "none",
        "isStructural": False,
    }
    raw.update(fields)
    return {"type": "fragment", "fragment": {k: v for k, v in raw.items() if v is not ...}}


def outcome(decode: Any) -> Any:
    try:
        return decode()
    except Exception as exc:  # both paths must fail alike
        return type(exc)


@pytest.mark.parametrize("union", UNIONS)
@pytest.mark.parametrize(
    "payload",
    [
        fragment(),
        fragment(content="", tokensCount=3, containsDrafted=True, reasoningType="reasoning"),
        fragment(isStructural=...),  # an older server
        fragment(tokensCount=2.0),  # an integral float is an int
        fragment(tokensCount=True),  # a bool is not
        fragment(content=None),
        fragment(extra="a newer server"),
        fragment(tokens=[]),
        {"type": "fragment"},
        {"type": "fragment", "fragment": "text"},
        {"type": "promptProcessingProgress", "progress": 0.5},
        {"type": "somethingNew"},
        [],
    ],
)
def test_the_hook_decodes_as_the_converter(union: Any, payload: Any) -> None:
    expected = outcome(lambda: codec.converter.structure(payload, union))
    assert outcome(lambda: packet_hook(union)(payload, union)) == expected


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "content": JSON_SCALARS,
            "tokensCount": JSON_SCALARS,
            "containsDrafted": JSON_SCALARS,
            "reasoningType": JSON_SCALARS,
            "isStructural": JSON_SCALARS,
            "other": JSON_SCALARS,
        },
    )
)
def test_any_fragment_decodes_as_the_converter(raw: dict[str, Any]) -> None:
    payload = {"type": "fragment", "fragment": raw}
    union = llm.PredictToClientPacket
    expected = outcome(lambda: codec.converter.structure(payload, union))
    assert outcome(lambda: packet_hook(union)(payload, union)) == expected


def test_a_fragment_in_the_current_shape_is_the_wire_fragment() -> None:
    packet = packet_hook(llm.PredictToClientPacket)(fragment(content="hé"), None)
    assert packet == llm.PredictFragment(
        llm.LLMPredictionFragment("hé", 1, False, "none", is_structural=False)
    )


def test_other_endpoints_keep_the_converter_s_hook() -> None:
    union = diagnostics.StreamLogsToClientPacket
    assert packet_hook(union) is codec.converter.get_structure_hook(union)
