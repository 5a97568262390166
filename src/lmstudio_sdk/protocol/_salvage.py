"""What a client session does with a frame nested too deeply to parse.

JSON decoders stop at a nesting depth (orjson at 1024; the stdlib one is made to say the
same). Such a frame cannot be decoded, but its envelope usually can be read from its
first bytes: the official servers write ``type`` first, then ``callId``/``channelId``.
When that names one of our calls or channels, only that call or channel fails
(:class:`PayloadInvalid`), like any payload that does not fit its endpoint; otherwise the
error stands and the socket is dropped.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..errors import RemoteProtocolError
from .events import ClientEvent, PayloadInvalid

if TYPE_CHECKING:
    from .session import ClientSession

__all__ = ["salvage_too_deep", "string_error_as_object"]

_ENVELOPE = re.compile(
    r'\s*\{\s*"type"\s*:\s*"(rpcResult|rpcError|channelSend|channelClose|channelError)"'
    r'\s*,\s*"(callId|channelId)"\s*:\s*(\d{1,16})\s*[,}]'
)


def salvage_too_deep(
    session: ClientSession, text: str | bytes, error: RemoteProtocolError
) -> list[ClientEvent]:
    """Fail only the call or channel a too-deep frame belongs to, else re-raise ``error``."""
    if "depth limit exceeded" not in str(error):
        raise error
    head = text[:256]
    if not isinstance(head, str):
        head = bytes(head).decode("utf-8", errors="replace")
    match = _ENVELOPE.match(head)
    if match is None or (match[2] == "callId") != match[1].startswith("rpc"):
        raise error
    owner = int(match[3])
    if match[2] == "callId":
        if session._calls.pop(owner, None) is None:
            raise error
        return [PayloadInvalid(error, call_id=owner)]
    channel = session._channels.get(owner)
    if channel is None:
        raise error
    if match[1] != "channelSend":  # the server ended the channel with this frame
        del session._channels[owner]
    elif channel.abandoned:
        return []
    channel.abandoned = True
    return [PayloadInvalid(error, channel_id=owner)]


def string_error_as_object(raw: Any) -> Any:
    """An ``rpcError``/``channelError`` whose ``error`` is a bare string, made an error object.

    The protocol says ``error`` is a serialized error object; a server (or proxy) that sends
    ``"error": "boom"`` still clearly means "this call or channel failed with boom". It fails
    that one call or channel with the string as its title instead of the whole socket.
    """
    if (
        type(raw) is dict
        and raw.get("type") in ("rpcError", "channelError")
        and isinstance(raw.get("error"), str)
    ):
        return {**raw, "error": {"title": raw["error"]}}
    return raw
