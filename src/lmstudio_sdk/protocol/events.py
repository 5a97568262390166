"""What the sessions report: frozen, slotted, past-tense event classes.

:meth:`ClientSession.receive_text <lmstudio_sdk.protocol.session.ClientSession.receive_text>`
returns :data:`ClientEvent` values, and
:meth:`ServerSession.receive_text <lmstudio_sdk.protocol.server_session.ServerSession.receive_text>`
returns :data:`ServerEvent` values. Payloads in events are already structured with the
endpoint's types (two-level decoding); an unknown packet type arrives as
:class:`~lmstudio_sdk.protocol.codec.Unknown`.

:class:`ChannelPacketReceived` and :class:`WarningReceived` are reported by both sides.
"""

from __future__ import annotations

from typing import Any, Union

import attrs

from ..errors import RemoteProtocolError
from .endpoints._spec import ChannelSpec, RpcSpec
from .wire import SerializedError

__all__ = [
    "Authenticated",
    "AuthenticationFailed",
    "AuthenticationRejected",
    "CallReceived",
    "ChannelClosed",
    "ChannelFailed",
    "ChannelOpened",
    "ChannelPacketReceived",
    "ClientAuthenticated",
    "ClientDisconnected",
    "ClientEvent",
    "ConnectionLost",
    "Event",
    "KeepAliveAcknowledged",
    "MessageIgnored",
    "PayloadInvalid",
    "RequestRejected",
    "RpcFailed",
    "RpcSucceeded",
    "ServerEvent",
    "StrayMessageReceived",
    "UnknownMessageReceived",
    "WarningReceived",
]


@attrs.frozen
class Event:
    """Base class of every session event."""


# ---------------------------------------------------------------------------- both sides


@attrs.frozen
class ChannelPacketReceived(Event):
    """A packet arrived on an open channel.

    On the client ``packet`` is structured with the endpoint's ``to_client`` union, on the
    server with its ``to_server`` union; an unknown packet type is a ``codec.Unknown``.
    """

    channel_id: int
    packet: Any


@attrs.frozen
class WarningReceived(Event):
    """The peer sent a ``communicationWarning``: it could not make sense of something we sent.

    ``kind`` is one of :data:`~lmstudio_sdk.protocol.wire.COMMUNICATION_WARNING_KINDS`
    (``"unknown"`` when the peer sent none, or one this version does not know).
    """

    warning: str
    kind: str


# ---------------------------------------------------------------------------- client side


@attrs.frozen
class Authenticated(Event):
    """The server accepted our credentials; calls and channels may now be opened."""


@attrs.frozen
class AuthenticationFailed(Event):
    """The server rejected our credentials (its message is ``error``); it closes the socket."""

    error: str


@attrs.frozen
class RpcSucceeded(Event):
    """An RPC returned. ``result`` is structured with the spec's result type (``None`` if void)."""

    call_id: int
    result: Any


@attrs.frozen
class RpcFailed(Event):
    """An RPC failed on the server (``rpcError``)."""

    call_id: int
    error: SerializedError


@attrs.frozen
class ChannelClosed(Event):
    """The server ended a channel normally (``channelClose``)."""

    channel_id: int


@attrs.frozen
class ChannelFailed(Event):
    """The server ended a channel with an error (``channelError``)."""

    channel_id: int
    error: SerializedError


@attrs.frozen
class PayloadInvalid(Event):
    """The server sent a payload for one of our calls or channels that does not structure.

    Exactly one of ``call_id`` and ``channel_id`` is set. Its owner should fail with
    ``error``; the rest of the socket keeps working. The call is finished; the channel's
    later messages are dropped (cancel it to stop the server).
    """

    error: RemoteProtocolError
    call_id: int | None = None
    channel_id: int | None = None


@attrs.frozen
class StrayMessageReceived(Event):
    """A known kind of message that belongs to nothing we have open.

    For example a packet for a channel that has already ended, a reply to a call we never
    made, or a signal update (this client subscribes to none). ``message`` is the decoded
    envelope; ``reason`` says why it is stray. It is worth logging, nothing more.
    """

    message: Any
    reason: str


@attrs.frozen
class UnknownMessageReceived(Event):
    """An envelope message whose ``type`` this version does not know (``raw`` is the JSON)."""

    type: str | None
    raw: dict[str, Any]


@attrs.frozen
class KeepAliveAcknowledged(Event):
    """The server answered a ``keepAlive``."""


@attrs.frozen
class ConnectionLost(Event):
    """Returned by ``ClientSession.connection_lost()``: what was still in flight.

    Every pending call and open channel listed here must be failed by its owner.
    """

    pending_calls: tuple[int, ...]
    open_channels: tuple[int, ...]


# ---------------------------------------------------------------------------- server side


@attrs.frozen
class ClientAuthenticated(Event):
    """A client authenticated; the session now routes its envelope messages."""

    client_identifier: str


@attrs.frozen
class AuthenticationRejected(Event):
    """A client's credentials were rejected; the failure reply is queued. Close the socket
    once it is sent."""

    client_identifier: str
    reason: str


@attrs.frozen
class CallReceived(Event):
    """An RPC to handle. ``parameter`` is structured with ``spec.parameter`` (``None`` if void).

    Answer with ``ServerSession.reply()`` or ``ServerSession.reply_error()``.
    """

    call_id: int
    spec: RpcSpec
    parameter: Any


@attrs.frozen
class ChannelOpened(Event):
    """A channel to serve. ``creation_parameter`` is structured with the spec's type.

    Send packets with ``ServerSession.send_packet()`` and end it with ``close_channel()``
    or ``fail_channel()``.
    """

    channel_id: int
    spec: ChannelSpec
    creation_parameter: Any


@attrs.frozen
class RequestRejected(Event):
    """The session refused a client message on its own (unknown endpoint, bad parameter,
    unknown or duplicate channel id...).

    ``kind`` is the reference ``communicationWarning`` kind. The reply (a warning, or an
    error reply in strict mode; nothing once the warning cap is reached) is already queued
    in ``data_to_send()``. This event exists so the server can log it.
    """

    kind: str
    reason: str


@attrs.frozen
class MessageIgnored(Event):
    """A frame the session dropped without answering, as the reference server does: not
    JSON, a malformed envelope, an unknown message type, or a malformed auth packet."""

    reason: str


@attrs.frozen
class ClientDisconnected(Event):
    """Returned by ``ServerSession.connection_lost()``.

    The handlers of ``open_channels`` and ``pending_calls`` should stop: nobody is
    listening. ``identity_released`` is true when this was the identity's last socket, so
    client-scoped resources (uploaded files...) can be freed.
    """

    client_identifier: str | None
    open_channels: tuple[int, ...]
    pending_calls: tuple[int, ...]
    identity_released: bool


ClientEvent = Union[  # noqa: UP007 - runtime alias, usable with isinstance via get_args
    Authenticated,
    AuthenticationFailed,
    RpcSucceeded,
    RpcFailed,
    ChannelPacketReceived,
    ChannelClosed,
    ChannelFailed,
    PayloadInvalid,
    WarningReceived,
    StrayMessageReceived,
    UnknownMessageReceived,
    KeepAliveAcknowledged,
]
"""Every event ``ClientSession.receive_text()`` can return."""

ServerEvent = Union[  # noqa: UP007 - runtime alias, usable with isinstance via get_args
    ClientAuthenticated,
    AuthenticationRejected,
    CallReceived,
    ChannelOpened,
    ChannelPacketReceived,
    WarningReceived,
    RequestRejected,
    MessageIgnored,
]
"""Every event ``ServerSession.receive_text()`` can return."""
