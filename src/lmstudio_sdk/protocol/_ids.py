"""The range of message ids (``callId``, ``channelId``, ``subscribeId``) a peer may use."""

from __future__ import annotations

from typing import Any, Final

__all__ = ["MAX_SAFE_ID", "out_of_range_id"]

MAX_SAFE_ID: Final = 2**53 - 1
"""JavaScript's ``Number.MAX_SAFE_INTEGER``: the official clients' ids are JS numbers.

A bigger id cannot be echoed back faithfully by them (nor encoded by orjson past 2**64),
so it is refused with a warning instead of crashing the reply.
"""

_WIRE_NAMES = {"call_id": "callId", "channel_id": "channelId", "subscribe_id": "subscribeId"}


def out_of_range_id(message: Any) -> str | None:
    """Why ``message`` carries an unusable id (``None``: its ids are fine)."""
    for attribute, wire_name in _WIRE_NAMES.items():
        value = getattr(message, attribute, None)
        if isinstance(value, int) and not -MAX_SAFE_ID <= value <= MAX_SAFE_ID:
            digits = str(value)
            shown = digits if len(digits) <= 40 else f"{digits[:20]}...({len(digits)} digits)"
            return (
                f"Received {getattr(message, 'type', 'a message')} with {wire_name} = {shown}, "
                f"out of range: ids are integers from -{MAX_SAFE_ID} to {MAX_SAFE_ID}"
            )
    return None
