"""The client side of one LM Studio namespace socket, with no I/O (sans-io).

Theory of operation
===================

A :class:`ClientSession` is the protocol state of ONE websocket (one namespace, such as
``/llm``). It never touches a socket, a clock or a thread. The driver (``_async/``) owns
the socket and does three things:

* it sends the frames that the session's methods *return*: :meth:`~ClientSession.start`
  (the auth frame), :meth:`~ClientSession.call`, :meth:`~ClientSession.open_channel`,
  :meth:`~ClientSession.send_packet`, :meth:`~ClientSession.cancel_channel`...;
* it feeds every inbound text frame to :meth:`~ClientSession.receive_text` and routes the
  events it returns (see :mod:`~lmstudio_sdk.protocol.events`) to whoever waits for them;
* it tells the session when the socket is gone (:meth:`~ClientSession.connection_lost`)
  and fails everything that was in flight.

States (:class:`SessionState`)::

    NEW --start()--> AWAITING_AUTH --{"success":true}--> OPEN --connection_lost()--> CLOSED
                           |
                           +--{"success":false}--> CLOSED

Calls and channels may be opened only in ``OPEN``; doing anything in the wrong state is a
:class:`~lmstudio_sdk.errors.LocalProtocolError` (our bug), never a silent no-op, except
:meth:`~ClientSession.cancel_channel`, which cleanup code must be able to call at any time.

Ids. Calls and channels are numbered by two separate counters starting at 1, like the
official Python SDK (the server keeps separate tables, PROTOCOL.md 2.3). A counter never
goes back, so an id below the counter that is no longer open belongs to something that
has finished: that is how a late message is told apart from a bogus one without keeping
every finished id.

Two-level decoding. A frame is first decoded as an envelope message
(:data:`~lmstudio_sdk.protocol.wire.ServerToClient`); only then does the call or channel
that owns the id structure the payload with its endpoint's types (``RpcSpec.result``,
``ChannelSpec.to_client``). Hence two kinds of inbound failure:

* the frame is not JSON, or the envelope is malformed (``rpcResult`` without a
  ``callId``...): nothing can be routed, so :meth:`~ClientSession.receive_text` raises
  :class:`~lmstudio_sdk.errors.RemoteProtocolError` naming what was wrong. The driver
  should treat the socket as broken;
* the envelope is fine but the payload does not fit the endpoint: only that call or
  channel is affected. The session returns :class:`~lmstudio_sdk.protocol.events.PayloadInvalid`
  for it, and the rest of the socket keeps working. The call is over; the channel is
  *abandoned*: its later packets are dropped, and the driver should cancel it.

An unknown message ``type`` is :class:`~lmstudio_sdk.protocol.events.UnknownMessageReceived`
and an unknown packet ``type`` arrives as :class:`~lmstudio_sdk.protocol.codec.Unknown`
inside :class:`~lmstudio_sdk.protocol.events.ChannelPacketReceived`: a newer server must
not break an older client.

Messages for ids we do not have open. The protocol has no flow control, and the server
keeps streaming until it sees our cancel, so late messages are normal:

* a reply to a call given up with :meth:`~ClientSession.forget_call` (a timeout) is
  dropped silently;
* everything for a channel given up with :meth:`~ClientSession.forget_channel` (or
  abandoned after :class:`~lmstudio_sdk.protocol.events.PayloadInvalid`) is dropped
  silently until the server ends it;
* a late ``channelClose`` for a channel that already ended is dropped silently, as the
  official Python SDK does;
* anything else is reported as :class:`~lmstudio_sdk.protocol.events.StrayMessageReceived`
  (worth a log line, never an exception). Signal messages are stray too: this client
  subscribes to no signals.

Cancelling. There is no client-to-server ``channelClose``: a client ends a channel early
by sending the endpoint's own cancel packet (``ChannelSpec.cancel_packet``) and then waits
for the server's final messages and ``channelClose``. :meth:`~ClientSession.cancel_channel`
returns that frame once; the channel stays open until the server ends it.

Absent is not null. A void parameter is left out of the frame; an absent ``result`` is
structured as ``None`` (endpoints that may return nothing declare ``X | None``).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from typing import Any

import attrs

from ..errors import LocalProtocolError, RemoteProtocolError
from . import codec, events, wire
from ._salvage import salvage_too_deep, string_error_as_object
from ._unset import UNSET, UnsetType
from .codec import Unknown
from .endpoints._spec import ChannelSpec, RpcSpec
from .hot_packets import packet_hook

__all__ = [
    "API_TOKEN_PATTERN",
    "MAX_WARNINGS",
    "ClientSession",
    "SessionState",
    "endpoint_label",
    "parse_api_token",
]

MAX_WARNINGS = 5
"""Each side sends at most this many ``communicationWarning`` frames per socket."""

API_TOKEN_PATTERN = re.compile(r"^sk-lm-([a-zA-Z0-9]{8}):([a-zA-Z0-9]{20})$")
"""An LM Studio API token; its two groups are the client identifier and the passkey."""


def parse_api_token(token: str) -> tuple[str, str]:
    """Split an API token (``sk-lm-<8 alnum>:<20 alnum>``) into identifier and passkey.

    Surrounding whitespace is ignored. A malformed token is a
    :class:`~lmstudio_sdk.errors.LocalProtocolError` that does not repeat the token.
    """
    match = API_TOKEN_PATTERN.match(token.strip()) if isinstance(token, str) else None
    if match is None:
        raise LocalProtocolError(
            "malformed API token: expected sk-lm-<8 letters or digits>:<20 letters or digits>"
            " (copy the whole token from the LM Studio settings)"
        )
    return match.group(1), match.group(2)


def endpoint_label(spec: RpcSpec | ChannelSpec) -> str:
    """``"namespace.name"``, as used in messages."""
    return f"{spec.namespace}.{spec.name}"


class SessionState(enum.Enum):
    """Where a session is in its life (both client and server sessions)."""

    #: Created; ``ClientSession.start()`` returns the auth frame.
    NEW = "new"
    #: The auth frame is the next one expected (server) or was sent (client).
    AWAITING_AUTH = "awaiting authentication"
    #: Authenticated: envelope messages flow.
    OPEN = "open"
    #: Authentication failed or the connection is gone; nothing more can be sent.
    CLOSED = "closed"


@attrs.define
class _Channel:
    spec: ChannelSpec
    cancelled: bool = False  # our cancel packet was sent
    abandoned: bool = False  # nobody listens any more; drop its messages until it ends
    # The converter's hook for ``spec.to_client``, fetched on the first packet (the hot
    # path: asking the converter per packet re-dispatches on the union type each time).
    structure: Callable[[Any, Any], Any] | None = None


_Handler = Callable[[Any], list[events.ClientEvent]]


class ClientSession:
    """Protocol state of one client socket (one namespace). See the module docstring.

    :param client_identifier: sent in the auth packet; the same for every socket of a client.
    :param client_passkey: sent in the auth packet; never shown in reprs or messages.
    :param namespace: if given, calls and channels of another namespace are refused.
    """

    def __init__(
        self, client_identifier: str, client_passkey: str, *, namespace: str | None = None
    ) -> None:
        try:
            self._auth_packet = wire.AuthPacket(client_identifier, client_passkey)
        except (TypeError, ValueError) as exc:
            raise LocalProtocolError(f"invalid client credentials: {exc}") from None
        self._namespace = namespace
        self._state = SessionState.NEW
        self._next_call_id = 1
        self._next_channel_id = 1
        self._calls: dict[int, RpcSpec] = {}
        self._forgotten_calls: set[int] = set()
        self._channels: dict[int, _Channel] = {}
        self._warnings_sent = 0
        self._handlers: dict[type, _Handler] = {
            wire.RpcResult: self._on_rpc_result,
            wire.RpcError: self._on_rpc_error,
            wire.ChannelSend: self._on_channel_send,
            wire.ChannelClose: self._on_channel_close,
            wire.ChannelError: self._on_channel_error,
            wire.ChannelAck: self._on_channel_ack,
            wire.CommunicationWarning: self._on_warning,
            wire.KeepAliveAck: self._on_keep_alive_ack,
            wire.SignalUpdate: self._on_signal_message,
            wire.SignalError: self._on_signal_message,
            wire.WritableSignalUpdate: self._on_signal_message,
            wire.WritableSignalError: self._on_signal_message,
            Unknown: self._on_unknown,
        }

    def __repr__(self) -> str:
        where = f" {self._namespace}" if self._namespace else ""
        return (
            f"<ClientSession{where} {self.client_identifier!r} {self._state.value}, "
            f"{len(self._calls)} calls, {len(self._channels)} channels>"
        )

    # ------------------------------------------------------------------ state queries

    @property
    def state(self) -> SessionState:
        """The current :class:`SessionState`."""
        return self._state

    @property
    def client_identifier(self) -> str:
        """The identifier sent in the auth packet."""
        return self._auth_packet.client_identifier

    @property
    def namespace(self) -> str | None:
        """The namespace this session is restricted to, if any."""
        return self._namespace

    @property
    def pending_calls(self) -> tuple[int, ...]:
        """Ids of calls still waiting for a reply."""
        return tuple(self._calls)

    @property
    def open_channels(self) -> tuple[int, ...]:
        """Ids of channels the server has not ended yet (abandoned ones included)."""
        return tuple(self._channels)

    def is_channel_open(self, channel_id: int) -> bool:
        """Whether the server may still send on ``channel_id``."""
        return channel_id in self._channels

    # ------------------------------------------------------------------ outbound

    def start(self) -> str:
        """Return the auth frame, the first frame to send on the socket."""
        if self._state is not SessionState.NEW:
            raise LocalProtocolError(
                f"start() was already called (the session is {self._state.value})"
            )
        self._state = SessionState.AWAITING_AUTH
        return wire.encode(self._auth_packet)

    def call(self, spec: RpcSpec, parameter: Any = UNSET) -> tuple[int, str]:
        """Start an RPC; return its call id and the ``rpcCall`` frame to send.

        ``parameter`` is an instance of ``spec.parameter`` (none for void endpoints); a bad
        one is a :class:`~lmstudio_sdk.errors.LocalProtocolError` and changes nothing.
        """
        self._check_spec(spec, RpcSpec, "call an RPC", "call() takes an RpcSpec", "open_channel()")
        what = f"parameter of {endpoint_label(spec)}"
        raw = _encode_input(spec.parameter, parameter, what=what)
        call_id = self._next_call_id
        frame = wire.encode_rpc_call(spec.name, call_id, raw, what=what)
        self._next_call_id += 1
        self._calls[call_id] = spec
        return call_id, frame

    def open_channel(self, spec: ChannelSpec, creation_parameter: Any = UNSET) -> tuple[int, str]:
        """Open a channel; return its channel id and the ``channelCreate`` frame to send.

        ``creation_parameter`` must be an instance of ``spec.creation_parameter`` (left out
        for void endpoints); a bad value is a :class:`~lmstudio_sdk.errors.LocalProtocolError`.
        """
        self._check_spec(
            spec, ChannelSpec, "open a channel", "open_channel() takes a ChannelSpec", "call()"
        )
        what = f"creation parameter of {endpoint_label(spec)}"
        raw = _encode_input(spec.creation_parameter, creation_parameter, what=what)
        channel_id = self._next_channel_id
        frame = wire.encode(wire.ChannelCreate(spec.name, channel_id, raw), what=what)
        self._next_channel_id += 1
        self._channels[channel_id] = _Channel(spec)
        return channel_id, frame

    def send_packet(self, channel_id: int, packet: Any) -> str:
        """Return the ``channelSend`` frame for a packet of the endpoint's ``to_server`` union."""
        self._require_open("send a packet")
        channel = self._channels.get(channel_id)
        if channel is None:
            raise LocalProtocolError(
                f"cannot send on channel {channel_id}: {self._why_not_open(channel_id)}"
            )
        spec = channel.spec
        if spec.to_server is None:
            raise LocalProtocolError(f"{endpoint_label(spec)} takes no packets from the client")
        raw = wire.encode_payload(packet, spec.to_server, what=f"packet for {endpoint_label(spec)}")
        return wire.encode(
            wire.ChannelSend(channel_id, raw), what=f"packet for {endpoint_label(spec)}"
        )

    def cancel_channel(self, channel_id: int) -> str | None:
        """Return the frame that asks the server to end the channel early, or ``None``.

        ``None`` when the endpoint has no cancel packet (only dropping the socket ends it),
        when the channel has already ended or was already cancelled, or when the session is
        not open. The channel stays open until the server ends it.
        """
        if self._state is not SessionState.OPEN:
            return None
        channel = self._channels.get(channel_id)
        if channel is None:
            if self._channel_has_ended(channel_id):
                return None
            raise LocalProtocolError(f"cannot cancel channel {channel_id}: it was never opened")
        cancel_packet = channel.spec.cancel_packet
        if channel.cancelled or cancel_packet is None:
            return None
        what = f"cancel packet of {endpoint_label(channel.spec)}"
        to_server = channel.spec.to_server
        if to_server is None:
            raw = codec.unstructure(cancel_packet, what=what)
        else:
            raw = wire.encode_payload(cancel_packet, to_server, what=what)
        frame = wire.encode(wire.ChannelSend(channel_id, raw), what=what)
        channel.cancelled = True
        return frame

    def forget_call(self, call_id: int) -> None:
        """Give up on a call (it timed out): a late reply will be dropped silently."""
        if self._calls.pop(call_id, None) is not None:
            self._forgotten_calls.add(call_id)

    def forget_channel(self, channel_id: int) -> None:
        """Stop listening to a channel: its later messages are dropped silently.

        Cancel it first (:meth:`cancel_channel`) or the server keeps streaming until done.
        """
        channel = self._channels.get(channel_id)
        if channel is not None:
            channel.abandoned = True

    def withdraw_channel(self, channel_id: int) -> None:
        """Forget a channel whose ``channelCreate`` frame was never sent.

        The server never heard of it, so there is nothing to cancel or wait for. Only for
        that case: a channel that may exist on the server is cancelled, then forgotten.
        """
        self._channels.pop(channel_id, None)

    def send_warning(self, warning: str, kind: str | UnsetType = UNSET) -> str | None:
        """Return a ``communicationWarning`` frame, or ``None`` once 5 were sent on this socket."""
        self._require_open("send a warning")
        if self._warnings_sent >= MAX_WARNINGS:
            return None
        self._warnings_sent += 1
        return wire.encode(wire.CommunicationWarning(warning, kind))

    def keep_alive(self) -> str:
        """Return a ``keepAlive`` frame (the server answers ``keepAliveAck``)."""
        self._require_open("send a keep-alive")
        return wire.encode(wire.KeepAlive())

    def connection_lost(self) -> events.ConnectionLost:
        """The socket is gone: close the session and say what was in flight.

        Every call and every channel with a listener in the result must be failed by the
        driver. Calling it again returns an empty :class:`ConnectionLost`.
        """
        lost = events.ConnectionLost(
            pending_calls=tuple(self._calls),
            open_channels=tuple(cid for cid, ch in self._channels.items() if not ch.abandoned),
        )
        self._state = SessionState.CLOSED
        self._calls.clear()
        self._forgotten_calls.clear()
        self._channels.clear()
        return lost

    # ------------------------------------------------------------------ inbound

    def receive_text(self, text: str | bytes) -> list[events.ClientEvent]:
        """Process one inbound frame and return what happened (at most one event).

        A frame that is not JSON or whose envelope is malformed raises
        :class:`~lmstudio_sdk.errors.RemoteProtocolError`; the session state is unchanged.
        """
        if self._state is SessionState.OPEN:
            try:
                raw = wire.parse_json(text)
            except RemoteProtocolError as exc:  # too deep: maybe only one channel's loss
                return salvage_too_deep(self, text, exc)
            # Fast path for the hottest frame, a plain ``channelSend``: no envelope object.
            if (
                type(raw) is dict
                and raw.get("type") == "channelSend"
                and type(raw.get("channelId")) is int
                and "ackId" not in raw
            ):
                return self._on_channel_packet(raw["channelId"], raw.get("message", UNSET))
            kind = type(raw) is dict and raw.get("type")  # and for a reply: no union to decode
            if kind == "rpcResult" and type(raw.get("callId")) is int:
                return self._on_rpc_result(wire.RpcResult(raw["callId"], raw.get("result", UNSET)))
            raw = string_error_as_object(raw)
            message: wire.ServerToClient = codec.structure(raw, wire.ServerToClient, what="frame")
            return self._handlers[type(message)](message)
        if self._state is SessionState.AWAITING_AUTH:
            return self._receive_auth_result(text)
        if self._state is SessionState.NEW:
            raise LocalProtocolError("receive_text() before start(): send the auth frame first")
        raise LocalProtocolError("the session is closed: no more frames can be processed")

    def _receive_auth_result(self, text: str | bytes) -> list[events.ClientEvent]:
        what = "authentication reply"
        reply: wire.AuthResult = codec.structure(
            wire.parse_json(text, what=what), wire.AuthResult, what=what
        )
        if reply.success:
            self._state = SessionState.OPEN
            return [events.Authenticated()]
        self._state = SessionState.CLOSED
        reason = reply.error if isinstance(reply.error, str) else "no reason given"
        return [events.AuthenticationFailed(reason)]

    def _on_rpc_result(self, message: wire.RpcResult) -> list[events.ClientEvent]:
        spec = self._calls.pop(message.call_id, None)
        if spec is None:
            return self._stray_reply(message)
        if spec.result is None:
            # A void endpoint: whatever came back is ignored, as zod's void would.
            return [events.RpcSucceeded(message.call_id, None)]
        try:
            result = wire.decode_payload(
                message.result, spec.result, what=f"result of {endpoint_label(spec)}"
            )
        except RemoteProtocolError as exc:
            return [events.PayloadInvalid(exc, call_id=message.call_id)]
        return [events.RpcSucceeded(message.call_id, result)]

    def _on_rpc_error(self, message: wire.RpcError) -> list[events.ClientEvent]:
        if self._calls.pop(message.call_id, None) is None:
            return self._stray_reply(message)
        return [events.RpcFailed(message.call_id, message.error)]

    def _stray_reply(self, message: wire.RpcResult | wire.RpcError) -> list[events.ClientEvent]:
        if message.call_id in self._forgotten_calls:
            self._forgotten_calls.discard(message.call_id)
            return []
        answered = 0 < message.call_id < self._next_call_id
        reason = "has already been answered" if answered else "was never made"
        return [events.StrayMessageReceived(message, f"call {message.call_id} {reason}")]

    def _on_channel_send(self, message: wire.ChannelSend) -> list[events.ClientEvent]:
        channel = self._channels.get(message.channel_id)
        if channel is None:
            return self._stray_channel_message(message)
        return self._decode_channel_packet(channel, message.channel_id, message.message)

    def _on_channel_packet(self, channel_id: int, payload: Any) -> list[events.ClientEvent]:
        """A ``channelSend`` without ``ackId`` whose envelope was checked by hand."""
        channel = self._channels.get(channel_id)
        if channel is None:
            return self._stray_channel_message(wire.ChannelSend(channel_id, payload))
        return self._decode_channel_packet(channel, channel_id, payload)

    def _decode_channel_packet(
        self, channel: _Channel, channel_id: int, payload: Any
    ) -> list[events.ClientEvent]:
        if channel.abandoned:
            return []
        spec = channel.spec
        if payload is not UNSET:
            try:
                hook = channel.structure
                if hook is None:
                    hook = channel.structure = packet_hook(spec.to_client)
                return [events.ChannelPacketReceived(channel_id, hook(payload, spec.to_client))]
            except Exception:  # decoded again below, for the error's wording
                pass
        what = f"packet of {endpoint_label(spec)}"
        try:
            packet = wire.decode_payload(payload, spec.to_client, what=what)
        except RemoteProtocolError as exc:
            channel.abandoned = True
            return [events.PayloadInvalid(exc, channel_id=channel_id)]
        return [events.ChannelPacketReceived(channel_id, packet)]

    def _on_channel_close(self, message: wire.ChannelClose) -> list[events.ClientEvent]:
        channel = self._channels.pop(message.channel_id, None)
        if channel is None:
            return self._stray_channel_message(message)
        return [] if channel.abandoned else [events.ChannelClosed(message.channel_id)]

    def _on_channel_error(self, message: wire.ChannelError) -> list[events.ClientEvent]:
        channel = self._channels.pop(message.channel_id, None)
        if channel is None:
            return self._stray_channel_message(message)
        return (
            [] if channel.abandoned else [events.ChannelFailed(message.channel_id, message.error)]
        )

    def _on_channel_ack(self, message: wire.ChannelAck) -> list[events.ClientEvent]:
        # Acks exist in the envelope but no endpoint uses them; one for an open channel
        # needs nothing from us.
        if message.channel_id in self._channels:
            return []
        return self._stray_channel_message(message)

    def _stray_channel_message(
        self, message: wire.ChannelSend | wire.ChannelClose | wire.ChannelError | wire.ChannelAck
    ) -> list[events.ClientEvent]:
        if self._channel_has_ended(message.channel_id):
            if isinstance(message, wire.ChannelClose):
                return []  # a late close for a channel already ended: harmless
            reason = f"channel {message.channel_id} has already ended"
        else:
            reason = f"channel {message.channel_id} was never opened"
        return [events.StrayMessageReceived(message, reason)]

    def _on_warning(self, message: wire.CommunicationWarning) -> list[events.ClientEvent]:
        return [events.WarningReceived(message.warning, wire.warning_kind(message.kind))]

    def _on_keep_alive_ack(self, message: wire.KeepAliveAck) -> list[events.ClientEvent]:
        return [events.KeepAliveAcknowledged()]

    def _on_signal_message(self, message: wire.ServerToClient) -> list[events.ClientEvent]:
        return [events.StrayMessageReceived(message, "this client subscribes to no signals")]

    def _on_unknown(self, message: Unknown) -> list[events.ClientEvent]:
        return [events.UnknownMessageReceived(message.type, message.raw)]

    # ------------------------------------------------------------------ helpers

    def _require_open(self, action: str) -> None:
        if self._state is SessionState.OPEN:
            return
        if self._state is SessionState.NEW:
            hint = "call start(), send its frame and wait for the Authenticated event"
        elif self._state is SessionState.AWAITING_AUTH:
            hint = "wait for the Authenticated event"
        else:
            hint = "the session is closed (authentication failed or the connection was lost)"
        raise LocalProtocolError(f"cannot {action} now: {hint}")

    def _check_spec(
        self, spec: RpcSpec | ChannelSpec, kind: type, action: str, takes: str, other: str
    ) -> None:
        # Why checked here: a ChannelSpec passed to call() (or the reverse) would otherwise go
        # out as a frame the server answers with a confusing error.
        self._require_open(action)
        if not isinstance(spec, kind):
            raise LocalProtocolError(f"{takes}, not {type(spec).__name__}; use {other} for that")
        if self._namespace is not None and spec.namespace != self._namespace:
            raise LocalProtocolError(
                f"{endpoint_label(spec)} belongs to the {spec.namespace!r} namespace; "
                f"this session is the {self._namespace!r} socket"
            )

    def _channel_has_ended(self, channel_id: int) -> bool:
        return 0 < channel_id < self._next_channel_id and channel_id not in self._channels

    def _why_not_open(self, channel_id: int) -> str:
        return (
            "it has already ended" if self._channel_has_ended(channel_id) else "it was never opened"
        )


def _encode_input(tp: Any, value: Any, *, what: str) -> Any:
    """Encode a parameter or creation parameter; ``UNSET`` for void endpoints."""
    if tp is None:
        if value is not UNSET and value is not None:
            raise LocalProtocolError(f"{what}: the endpoint takes none, got {type(value).__name__}")
        return UNSET
    if value is UNSET:
        raise LocalProtocolError(f"{what} is required")
    return wire.encode_payload(value, tp, what=what)
