"""Hand-written decoders for the one packet that arrives by the thousand: a text fragment.

A prediction streams one ``{"type": "fragment", "fragment": {...}}`` packet per token.
Structuring it through the converter (the endpoint's tagged union, then ``PredictFragment``,
then ``LLMPredictionFragment``, each a generated hook with a Python call per field) was
~12 % of the client's CPU per fragment. :func:`packet_hook` returns, for a channel's union,
a hook that builds a fragment directly when the payload has exactly the fields of the
current schema, each of its exact JSON type, and hands anything else (another packet type,
an older or newer server's extra or missing field, a wrong type) to the converter. So the
result, and every error, is the converter's; this only skips its work when it has nothing
to decide. ``tests/protocol/test_hot_packets.py`` checks both paths agree.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from . import codec

if TYPE_CHECKING:
    from .endpoints import llm

__all__ = ["packet_hook"]

Hook = Callable[[Any, Any], Any]

#: The wire names of a current fragment's fields (``tokens`` is only sent on request).
_FRAGMENT_KEYS: Final = frozenset(
    {"content", "tokensCount", "containsDrafted", "reasoningType", "isStructural"}
)


def _fragment(payload: Any, endpoints: Any) -> llm.PredictFragment | None:
    """The fragment packet ``payload`` is, if it is one in the exact current shape."""
    if type(payload) is not dict or payload.get("type") != "fragment" or len(payload) != 2:
        return None
    raw = payload.get("fragment")
    if type(raw) is not dict or raw.keys() != _FRAGMENT_KEYS:
        return None
    content, count = raw["content"], raw["tokensCount"]
    drafted, reasoning, structural = (
        raw["containsDrafted"],
        raw["reasoningType"],
        raw["isStructural"],
    )
    if (
        type(content) is not str
        or type(count) is not int
        or type(drafted) is not bool
        or type(reasoning) is not str
        or type(structural) is not bool
    ):
        return None
    packet: llm.PredictFragment = endpoints.PredictFragment(
        endpoints.LLMPredictionFragment(
            content=content,
            tokens_count=count,
            contains_drafted=drafted,
            reasoning_type=reasoning,
            is_structural=structural,
        )
    )
    return packet


def packet_hook(union: Any) -> Hook:
    """The structure hook for a channel's packets (``hook(payload, union)``)."""
    general: Hook = codec.converter.get_structure_hook(union)
    # Only a module that imported llm can hold its unions: no import here (start-up).
    module = sys.modules.get(f"{__package__}.endpoints.llm")
    if module is None or not any(
        union is u for u in (module.PredictToClientPacket, module.CompleteRawTextToClientPacket)
    ):
        return general

    def structure(payload: Any, cl: Any) -> Any:
        packet = _fragment(payload, module)
        return general(payload, cl) if packet is None else packet

    return structure
