"""The server side of one LM Studio namespace socket, with no I/O (sans-io).

Theory of operation
===================

A :class:`ServerSession` mirrors :class:`~lmstudio_sdk.protocol.session.ClientSession` for
the local server and for tests that pair a client with a server without any event loop.
It follows the reference server port of lmstudio-js (PROTOCOL.md 1.3 and 2.6) and never
does I/O. The driver:

1. feeds every inbound text frame to :meth:`~ServerSession.receive_text`;
2. then sends every frame returned by :meth:`~ServerSession.data_to_send`, in order,
   *before* acting on the events (so the auth reply precedes any answer);
3. acts on the events: :class:`~lmstudio_sdk.protocol.events.CallReceived` and
   :class:`~lmstudio_sdk.protocol.events.ChannelOpened` start handlers, which answer
   through the outbound methods;
4. sends the frames the outbound methods *return* (:meth:`~ServerSession.reply`,
   :meth:`~ServerSession.reply_error`, :meth:`~ServerSession.send_packet`,
   :meth:`~ServerSession.close_channel`, :meth:`~ServerSession.fail_channel`);
5. calls :meth:`~ServerSession.connection_lost` when the socket closes, stops the
   handlers it lists, and frees client resources if the identity was released.

So there are exactly two ways frames come out: what the session decides on its own (auth
reply, warnings, ``keepAliveAck``, strict-mode error replies) is queued for
:meth:`~ServerSession.data_to_send`; what a handler decides is returned by the method the
handler called.

Authentication. The first frame must be an auth packet. A frame that is not one is
ignored (:class:`~lmstudio_sdk.protocol.events.MessageIgnored`), and the session keeps
waiting, as the reference does; the driver enforces the 10 s timeout and then sends
:meth:`~ServerSession.authentication_timed_out`. Identities live in an
:class:`IdentityRegistry` shared by all sockets of the server: the first socket to
present an identifier fixes its passkey, later ones must match it, and the identity is
released when its last socket closes. After a rejection the driver sends the queued
reply and closes the socket.

Requests the session refuses by itself, like the reference server:

==========================================  ===================================  ===========
client sent                                 warning ``kind``                      strict mode
==========================================  ===================================  ===========
``rpcCall`` for an unknown endpoint         ``rpcEndpointUnknown``                ``rpcError``
``rpcCall`` with a bad parameter            ``rpcParameterTypeError``             ``rpcError``
``channelCreate`` for an unknown endpoint   ``channelEndpointUnknown``            ``channelError``
``channelCreate`` with a bad parameter      ``channelCreationParameterTypeError`` ``channelError``
``channelCreate`` reusing an open id        ``channelAlreadyOpen``                warning
``channelSend``/``channelAck``, unknown id  ``channelUnknown``                    warning
``channelSend`` with a bad packet           ``channelMessageTypeError``           warning
a signal subscription or update             ``(writable)signal...``               warning
==========================================  ===================================  ===========

Each produces a :class:`~lmstudio_sdk.protocol.events.RequestRejected` event for logging.
In the reference (default) mode the caller gets no reply at all and must time out; with
``unknown_endpoint_errors=True`` it gets an error reply instead, which is friendlier in
tests. At most 5 warnings are sent per socket; later ones are only reported as events.
A malformed envelope or an unknown message type is ignored (logged by the reference),
not warned about. Unknown fields in client messages are accepted.

Ids. Calls and channels are kept in separate tables, and any integer is accepted: the JS
client shares one counter from 0, the Python client keeps two from 1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..errors import LMStudioAuthError, LocalProtocolError, RemoteProtocolError
from . import codec, wire
from ._ids import out_of_range_id
from ._unset import UNSET
from .codec import Unknown
from .endpoints._spec import ChannelSpec, RpcSpec
from .events import (
    AuthenticationRejected,
    CallReceived,
    ChannelOpened,
    ChannelPacketReceived,
    ClientAuthenticated,
    ClientDisconnected,
    MessageIgnored,
    RequestRejected,
    ServerEvent,
    WarningReceived,
)
from .identity import IdentityRegistry
from .session import MAX_WARNINGS, SessionState, endpoint_label

__all__ = ["IdentityRegistry", "ServerSession"]


_Handler = Callable[[Any], list[ServerEvent]]


class ServerSession:
    """Protocol state of one server socket (one namespace). See the module docstring.

    :param namespace: the namespace this socket serves (``"llm"``...).
    :param endpoints: endpoint name -> spec; every spec must belong to ``namespace``.
    :param registry: the server's shared :class:`IdentityRegistry`.
    :param unknown_endpoint_errors: answer unknown endpoints and bad parameters with an
        error reply instead of the reference's lone warning.
    """

    def __init__(
        self,
        namespace: str,
        endpoints: Mapping[str, RpcSpec | ChannelSpec],
        registry: IdentityRegistry,
        *,
        unknown_endpoint_errors: bool = False,
    ) -> None:
        self._namespace = namespace
        self._rpcs: dict[str, RpcSpec] = {}
        self._channel_specs: dict[str, ChannelSpec] = {}
        for name, spec in endpoints.items():
            if not isinstance(spec, (RpcSpec, ChannelSpec)):
                raise LocalProtocolError(
                    f"endpoint {name!r} is a {type(spec).__name__}, not a spec"
                )
            if spec.name != name or spec.namespace != namespace:
                raise LocalProtocolError(
                    f"endpoint {name!r} is {endpoint_label(spec)}; expected {namespace}.{name}"
                )
            if isinstance(spec, RpcSpec):
                self._rpcs[name] = spec
            else:
                self._channel_specs[name] = spec
        self._registry = registry
        self._strict = unknown_endpoint_errors
        self._state = SessionState.AWAITING_AUTH
        self._client_identifier: str | None = None
        self._outbox: list[str] = []
        self._warnings_sent = 0
        # A list per id: a client may (wrongly) reuse the id of a call still running, and
        # the reference answers both.
        self._calls: dict[int, list[RpcSpec]] = {}
        self._channels: dict[int, ChannelSpec] = {}
        self._handlers: dict[type, _Handler] = {
            wire.RpcCall: self._on_rpc_call,
            wire.ChannelCreate: self._on_channel_create,
            wire.ChannelSend: self._on_channel_send,
            wire.ChannelAck: self._on_channel_ack,
            wire.SignalSubscribe: self._on_signal_subscribe,
            wire.WritableSignalSubscribe: self._on_signal_subscribe,
            wire.SignalUnsubscribe: self._on_signal_unsubscribe,
            wire.WritableSignalUnsubscribe: self._on_signal_unsubscribe,
            wire.WritableSignalUpdate: self._on_writable_signal_update,
            wire.CommunicationWarning: self._on_warning,
            wire.KeepAlive: self._on_keep_alive,
            Unknown: self._on_unknown,
        }

    def __repr__(self) -> str:
        return (
            f"<ServerSession {self._namespace} {self._client_identifier!r} "
            f"{self._state.value}, {sum(map(len, self._calls.values()))} calls, "
            f"{len(self._channels)} channels>"
        )

    # ------------------------------------------------------------------ state queries

    @property
    def state(self) -> SessionState:
        """``AWAITING_AUTH``, ``OPEN`` or ``CLOSED``."""
        return self._state

    @property
    def namespace(self) -> str:
        """The namespace this socket serves."""
        return self._namespace

    @property
    def client_identifier(self) -> str | None:
        """The authenticated client's identifier (``None`` before authentication)."""
        return self._client_identifier

    @property
    def open_channels(self) -> tuple[int, ...]:
        """Ids of channels opened and not yet closed or failed."""
        return tuple(self._channels)

    @property
    def pending_calls(self) -> tuple[int, ...]:
        """Ids of calls received and not yet answered."""
        return tuple(self._calls)

    # ------------------------------------------------------------------ inbound

    def receive_text(self, text: str | bytes) -> list[ServerEvent]:
        """Process one inbound frame; return its events (then drain :meth:`data_to_send`)."""
        if self._state is SessionState.OPEN:
            try:
                message = wire.decode_client_message(text)
            except RemoteProtocolError as exc:
                return [MessageIgnored(str(exc))]
            bad_id = out_of_range_id(message)
            if bad_id is not None:
                return self._reject("unknown", bad_id)
            return self._handlers[type(message)](message)
        if self._state is SessionState.AWAITING_AUTH:
            return self._receive_auth(text)
        raise LocalProtocolError("the session is closed: stop feeding it frames")

    def data_to_send(self) -> list[str]:
        """Frames the session produced by itself since the last call, oldest first."""
        frames, self._outbox = self._outbox, []
        return frames

    def _receive_auth(self, text: str | bytes) -> list[ServerEvent]:
        what = "authentication packet"
        try:
            packet: wire.AuthPacket = codec.structure(
                wire.parse_json(text, what=what), wire.AuthPacket, what=what
            )
        except RemoteProtocolError as exc:
            # The reference logs and ignores it, and keeps waiting for a valid one.
            return [MessageIgnored(f"{exc}; still waiting for authentication")]
        identifier = packet.client_identifier
        try:
            self._registry.acquire(identifier, packet.client_passkey)
        except LMStudioAuthError as exc:
            self._state = SessionState.CLOSED
            self._outbox.append(wire.encode(wire.AuthResult(success=False, error=str(exc))))
            return [AuthenticationRejected(identifier, str(exc))]
        self._state = SessionState.OPEN
        self._client_identifier = identifier
        self._outbox.append(wire.encode(wire.AuthResult(success=True)))
        return [ClientAuthenticated(identifier)]

    def _on_rpc_call(self, message: wire.RpcCall) -> list[ServerEvent]:
        spec = self._rpcs.get(message.endpoint)
        if spec is None:
            reason = f"Received rpcCall for unknown endpoint, endpoint = {message.endpoint}"
            error = self._unknown_endpoint("RPC", message.endpoint)
            return self._reject(
                "rpcEndpointUnknown",
                reason,
                wire.RpcError(message.call_id, error) if self._strict else None,
            )
        try:
            parameter = _decode_input(spec.parameter, message.parameter, what="parameter")
        except RemoteProtocolError as exc:
            reason = f"Received invalid parameter for rpcCall, endpointName = {spec.name}: {exc}"
            error = wire.SerializedError(
                title=f"Invalid parameter for {endpoint_label(spec)}", cause=str(exc)
            )
            return self._reject(
                "rpcParameterTypeError",
                reason,
                wire.RpcError(message.call_id, error) if self._strict else None,
            )
        self._calls.setdefault(message.call_id, []).append(spec)
        return [CallReceived(message.call_id, spec, parameter)]

    def _on_channel_create(self, message: wire.ChannelCreate) -> list[ServerEvent]:
        channel_id = message.channel_id
        spec = self._channel_specs.get(message.endpoint)
        if spec is None:
            reason = f"Received channelCreate for unknown endpoint, endpoint = {message.endpoint}"
            error = self._unknown_endpoint("channel", message.endpoint)
            reply = wire.ChannelError(channel_id, error) if self._strict else None
            return self._reject("channelEndpointUnknown", reason, reply)
        if channel_id in self._channels:
            # Never an error reply: a channelError with this id would end the open channel.
            reason = f"Received channelCreate for already open channel, channelId = {channel_id}"
            return self._reject("channelAlreadyOpen", reason)
        try:
            parameter = _decode_input(
                spec.creation_parameter, message.creation_parameter, what="creationParameter"
            )
        except RemoteProtocolError as exc:
            reason = (
                f"Received invalid creationParameter for channel, endpointName = {spec.name}: {exc}"
            )
            error = wire.SerializedError(
                title=f"Invalid creation parameter for {endpoint_label(spec)}", cause=str(exc)
            )
            reply = wire.ChannelError(channel_id, error) if self._strict else None
            return self._reject("channelCreationParameterTypeError", reason, reply)
        self._channels[channel_id] = spec
        return [ChannelOpened(channel_id, spec, parameter)]

    def _on_channel_send(self, message: wire.ChannelSend) -> list[ServerEvent]:
        spec = self._channels.get(message.channel_id)
        if spec is None:
            # Also what a late cancel for a channel the server already ended gets.
            reason = f"Received channelSend for unknown channel, channelId = {message.channel_id}"
            return self._reject("channelUnknown", reason)
        if spec.to_server is None:
            reason = f"Received message for channel {spec.name}, which takes no client messages"
            return self._reject("channelMessageTypeError", reason)
        try:
            packet = wire.decode_payload(message.message, spec.to_server, what="message")
            if isinstance(packet, Unknown):
                # Clients read unknown packets leniently; the server validates them against
                # a closed union, as the reference does, so handlers never see one.
                raise RemoteProtocolError(f"unknown message type {packet.type!r}")
        except RemoteProtocolError as exc:
            reason = f"Received invalid message for channel, endpointName = {spec.name}: {exc}"
            return self._reject("channelMessageTypeError", reason)
        return [ChannelPacketReceived(message.channel_id, packet)]

    def _on_channel_ack(self, message: wire.ChannelAck) -> list[ServerEvent]:
        if message.channel_id in self._channels:
            return []  # no endpoint uses acks
        reason = f"Received channelAck for unknown channel, channelId = {message.channel_id}"
        return self._reject("channelUnknown", reason)

    def _on_signal_subscribe(
        self, message: wire.SignalSubscribe | wire.WritableSignalSubscribe
    ) -> list[ServerEvent]:
        # No public namespace declares signals, so every endpoint is unknown.
        prefix = "signal" if isinstance(message, wire.SignalSubscribe) else "writableSignal"
        reason = f"Received {prefix}Subscribe for unknown endpoint, endpoint = {message.endpoint}"
        return self._reject(f"{prefix}EndpointUnknown", reason)

    def _on_signal_unsubscribe(
        self, message: wire.SignalUnsubscribe | wire.WritableSignalUnsubscribe
    ) -> list[ServerEvent]:
        return []  # the reference silently remembers it; with no signals there is nothing to do

    def _on_writable_signal_update(self, message: wire.WritableSignalUpdate) -> list[ServerEvent]:
        reason = (
            f"Received writableSignalUpdate for unknown subscription, "
            f"subscribeId = {message.subscribe_id}"
        )
        return self._reject("writableSignalUnknown", reason)

    def _on_warning(self, message: wire.CommunicationWarning) -> list[ServerEvent]:
        return [WarningReceived(message.warning, wire.warning_kind(message.kind))]

    def _on_keep_alive(self, message: wire.KeepAlive) -> list[ServerEvent]:
        self._outbox.append(wire.encode(wire.KeepAliveAck()))
        return []

    def _on_unknown(self, message: Unknown) -> list[ServerEvent]:
        return [MessageIgnored(f"unknown message type {message.type!r}")]

    def _unknown_endpoint(self, kind: str, endpoint: str) -> wire.SerializedError:
        return wire.SerializedError(
            title=f'Unknown {kind} endpoint "{endpoint}" in namespace "{self._namespace}"',
            suggestion="Make sure the SDK and the server are up to date and compatible.",
        )

    def _reject(
        self, kind: str, reason: str, error_reply: wire.RpcError | wire.ChannelError | None = None
    ) -> list[ServerEvent]:
        if error_reply is not None:
            self._outbox.append(wire.encode(error_reply))
        else:
            frame = self.warn(reason, kind)
            if frame is not None:
                self._outbox.append(frame)
        return [RequestRejected(kind, reason)]

    def warn(self, warning: str, kind: str = "unknown") -> str | None:
        """Return a ``communicationWarning`` frame, or ``None`` once the cap is reached.

        At most :data:`MAX_WARNINGS` warnings go to one socket, counting the ones the
        session sends by itself, as the reference server does.
        """
        if self._warnings_sent >= MAX_WARNINGS:
            return None
        self._warnings_sent += 1
        return wire.encode(wire.CommunicationWarning(warning, kind))

    # ------------------------------------------------------------------ outbound

    def reply(self, call_id: int, result: Any = None) -> str:
        """Return the ``rpcResult`` frame answering ``call_id``.

        ``result`` must fit ``spec.result``. ``None`` is sent as an absent result (what a
        JavaScript handler returning nothing sends); void endpoints take only ``None``.
        """
        spec = self._pending_call(call_id)
        what = f"result of {endpoint_label(spec)}"
        if spec.result is None:
            if result is not None:
                raise LocalProtocolError(
                    f"{what}: the endpoint returns nothing, got {type(result).__name__}"
                )
            raw = UNSET
        else:
            raw = wire.encode_payload(result, spec.result, what=what)
            if raw is None:
                raw = UNSET
        frame = wire.encode(wire.RpcResult(call_id, raw), what=what)
        self._finish_call(call_id)
        return frame

    def reply_error(self, call_id: int, error: wire.SerializedError | BaseException) -> str:
        """Return the ``rpcError`` frame answering ``call_id`` (an exception is serialised
        with :meth:`SerializedError.from_exception`)."""
        self._pending_call(call_id)
        frame = wire.encode(wire.RpcError(call_id, _serialized(error)))
        self._finish_call(call_id)
        return frame

    def send_packet(self, channel_id: int, packet: Any, *, check: bool = True) -> str:
        """Return the ``channelSend`` frame for a packet of the endpoint's ``to_client`` union.

        With ``check`` (the default) the packet is also structured back from its JSON, so a
        value that the client would reject is a :class:`LocalProtocolError` here instead.
        ``check=False`` skips that round trip: only for packets the caller builds itself
        from the typed classes with values of the right types (a prediction's fragments,
        the hot path), where it would only cost time.
        """
        spec = self._open_channel(channel_id)
        what = f"packet of {endpoint_label(spec)}"
        if check:
            raw = wire.encode_payload(packet, spec.to_client, what=what)
        else:
            raw = codec.unstructure(packet, spec.to_client, what=what)
        # Built directly: this is the hot path of a streaming prediction, and ``raw`` is
        # already plain JSON (re-unstructuring it through ChannelSend would copy it).
        frame = {"type": "channelSend", "channelId": channel_id, "message": raw}
        return wire.dumps_frame(frame, what=what)

    def close_channel(self, channel_id: int) -> str:
        """Return the ``channelClose`` frame that ends the channel normally."""
        self._open_channel(channel_id)
        del self._channels[channel_id]
        return wire.encode(wire.ChannelClose(channel_id))

    def fail_channel(self, channel_id: int, error: wire.SerializedError | BaseException) -> str:
        """Return the ``channelError`` frame that ends the channel with ``error``."""
        self._open_channel(channel_id)
        frame = wire.encode(wire.ChannelError(channel_id, _serialized(error)))
        del self._channels[channel_id]
        return frame

    def authentication_timed_out(self) -> str | None:
        """The client did not authenticate in time: return the failure reply and close.

        Returns ``None`` if the client already authenticated or the session is closed.
        """
        if self._state is not SessionState.AWAITING_AUTH:
            return None
        self._state = SessionState.CLOSED
        return wire.encode(wire.AuthResult(success=False, error="Authentication timed out"))

    def connection_lost(self) -> ClientDisconnected:
        """The socket closed: release the identity and say what was still running.

        Calling it again returns an event with nothing in it.
        """
        released = False
        if self._state is SessionState.OPEN and self._client_identifier is not None:
            released = self._registry.release(self._client_identifier)
        event = ClientDisconnected(
            client_identifier=self._client_identifier,
            open_channels=tuple(self._channels),
            pending_calls=tuple(self._calls),
            identity_released=released,
        )
        self._state = SessionState.CLOSED
        self._channels.clear()
        self._calls.clear()
        self._outbox.clear()
        return event

    # ------------------------------------------------------------------ helpers

    def _require_open(self, action: str) -> None:
        if self._state is not SessionState.OPEN:
            why = (
                "the client has not authenticated"
                if self._state is SessionState.AWAITING_AUTH
                else "the session is closed (the client is gone or was rejected)"
            )
            raise LocalProtocolError(f"cannot {action}: {why}")

    def _pending_call(self, call_id: int) -> RpcSpec:
        self._require_open(f"answer call {call_id}")
        specs = self._calls.get(call_id)
        if not specs:
            raise LocalProtocolError(
                f"call {call_id} is not pending (never received, or already answered)"
            )
        return specs[0]

    def _finish_call(self, call_id: int) -> None:
        specs = self._calls[call_id]
        del specs[0]
        if not specs:
            del self._calls[call_id]

    def _open_channel(self, channel_id: int) -> ChannelSpec:
        self._require_open(f"use channel {channel_id}")
        spec = self._channels.get(channel_id)
        if spec is None:
            raise LocalProtocolError(
                f"channel {channel_id} is not open (never opened, or already ended)"
            )
        return spec


def _decode_input(tp: Any, raw: Any, *, what: str) -> Any:
    if tp is None:
        # zod's void accepts only undefined: even null is a bad parameter (PROTOCOL.md 12.6).
        if raw is not UNSET:
            raise RemoteProtocolError(f"{what} must be left out: the endpoint takes none")
        return None
    return wire.decode_payload(raw, tp, what=what)


def _serialized(error: wire.SerializedError | BaseException) -> wire.SerializedError:
    if isinstance(error, wire.SerializedError):
        return error
    if isinstance(error, BaseException):
        return wire.SerializedError.from_exception(error)
    raise LocalProtocolError(
        f"an error reply takes a SerializedError or an exception, not {type(error).__name__}"
    )
