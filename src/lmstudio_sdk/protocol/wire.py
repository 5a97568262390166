"""The websocket envelope: every frame on an LM Studio namespace socket, both directions.

A socket carries one JSON object per text frame. The first frame each way is the
authentication handshake (:class:`AuthPacket`, then :class:`AuthResult`), which has no
``type`` key. Every later frame is an envelope message tagged by ``type``:
:data:`ClientToServer` for what a client sends, :data:`ServerToClient` for what a server
sends (``channelSend``, ``channelAck``, ``communicationWarning`` and
``writableSignalUpdate`` travel both ways and are the same class in both unions).

Payloads (``parameter``, ``result``, ``creationParameter``, ``message``) are raw JSON
(``Any``) at this level. This is two-level decoding: the envelope is decoded once for
routing, and the call or channel that owns the id structures its payload with its own
endpoint's types (see :mod:`lmstudio_sdk.protocol.session`). An unknown payload can
therefore never break routing.

An unknown ``type`` decodes to :class:`~lmstudio_sdk.protocol.codec.Unknown`, never to an
error: a newer peer may send messages this version does not know.
"""

from __future__ import annotations

from typing import Any, Union

import attrs

from ..errors import (
    MODEL_NOT_FOUND_CODES,
    PRESET_NOT_FOUND_CODE,
    LMStudioModelNotFoundError,
    LMStudioPresetNotFoundError,
    LMStudioServerError,
    LocalProtocolError,
    RemoteProtocolError,
)
from . import codec
from ._unset import UNSET, UnsetType
from .codec import Unknown, register_tagged_union, variant
from .naming import to_camel

__all__ = [
    "AUTH_CREDENTIAL_MAX_LENGTH",
    "COMMUNICATION_WARNING_KINDS",
    "AuthPacket",
    "AuthResult",
    "ChannelAck",
    "ChannelClose",
    "ChannelCreate",
    "ChannelError",
    "ChannelSend",
    "ClientToServer",
    "CommunicationWarning",
    "KeepAlive",
    "KeepAliveAck",
    "RpcCall",
    "RpcError",
    "RpcResult",
    "SerializedError",
    "ServerToClient",
    "SignalError",
    "SignalSubscribe",
    "SignalUnsubscribe",
    "SignalUpdate",
    "WritableSignalError",
    "WritableSignalSubscribe",
    "WritableSignalUnsubscribe",
    "WritableSignalUpdate",
    "decode_client_message",
    "decode_payload",
    "decode_server_message",
    "dumps_frame",
    "encode",
    "encode_payload",
    "encode_rpc_call",
    "parse_json",
    "warning_kind",
]

AUTH_CREDENTIAL_MAX_LENGTH = 256
"""The longest ``clientIdentifier`` / ``clientPasskey`` the auth packet schema allows."""

COMMUNICATION_WARNING_KINDS = frozenset(
    {
        "unknown",
        "channelUnknown",
        "channelMessageTypeError",
        "channelCreationParameterTypeError",
        "channelEndpointUnknown",
        "channelEndpointUnhandled",
        "channelAlreadyOpen",
        "rpcUnknown",
        "rpcParameterTypeError",
        "rpcResultTypeError",
        "rpcEndpointUnknown",
        "rpcEndpointUnhandled",
        "signalUnknown",
        "signalUpdatePatchApplyError",
        "signalPatchTypeError",
        "signalEndpointUnknown",
        "signalEndpointUnhandled",
        "signalAlreadyOpen",
        "signalCreationParameterTypeError",
        "writableSignalUnknown",
        "writableSignalPatchApplyError",
        "writableSignalPatchTypeError",
        "writableSignalDataTypeError",
        "writableSignalEndpointUnknown",
        "writableSignalEndpointUnhandled",
        "writableSignalAlreadyOpen",
        "writableSignalCreationParameterTypeError",
    }
)
"""The ``communicationWarning.kind`` values the reference implementation defines."""


# --------------------------------------------------------------------------------------
# The error object carried by rpcError, channelError, signalError and writableSignalError
# --------------------------------------------------------------------------------------


@attrs.frozen
class SerializedError:
    """An error as the server serialises it (``SerializedLMSExtendedError``).

    Decoding is lenient, as in the reference client: a field of the wrong type is read as
    absent, and a missing or non-string ``title`` becomes ``"Unknown error"``.
    ``display_data`` carries a ``code`` (``generic.noModelMatchingQuery``...) and its
    details; ``stack`` is the server-side stack, if the server chose to send it.
    """

    title: str = "Unknown error"
    cause: str | UnsetType = UNSET
    suggestion: str | UnsetType = UNSET
    error_data: dict[str, Any] | UnsetType = UNSET
    display_data: dict[str, Any] | UnsetType = UNSET
    stack: str | UnsetType = UNSET
    root_title: str | UnsetType = UNSET

    @property
    def code(self) -> str | None:
        """``display_data["code"]``, or ``None`` when there is none."""
        if isinstance(self.display_data, dict):
            code = self.display_data.get("code")
            if isinstance(code, str):
                return code
        return None

    def to_exception(self, endpoint: str | None = None) -> LMStudioServerError:
        """The exception to raise for this error (a model-not-found one when the code says so).

        :param endpoint: ``"namespace.name"`` of the call or channel, for the message.
        """
        # The official Python client's mapping: these codes have their own classes.
        cls: type[LMStudioServerError] = LMStudioServerError
        if self.code in MODEL_NOT_FOUND_CODES:
            cls = LMStudioModelNotFoundError
        elif self.code == PRESET_NOT_FOUND_CODE:
            cls = LMStudioPresetNotFoundError
        return cls(
            self.title,
            cause=self.cause or None,
            suggestion=self.suggestion or None,
            code=self.code,
            display_data=self.display_data or None,
            error_data=self.error_data or None,
            endpoint=endpoint,
        )

    @classmethod
    def from_exception(cls, exc: BaseException) -> SerializedError:
        """Serialise an exception for an ``rpcError``/``channelError`` (server side).

        An :class:`~lmstudio_sdk.errors.LMStudioServerError` keeps its title, cause,
        suggestion and data; anything else becomes its message. The stack is never sent.
        """
        if isinstance(exc, LMStudioServerError):
            return cls(
                title=exc.title,
                cause=exc.cause if exc.cause is not None else UNSET,
                suggestion=exc.suggestion if exc.suggestion is not None else UNSET,
                error_data=dict(exc.error_data) if exc.error_data else UNSET,
                display_data=dict(exc.display_data) if exc.display_data else UNSET,
                root_title=exc.title,
            )
        title = str(exc) or type(exc).__name__
        return cls(title=title, root_title=title)


def _structure_serialized_error(value: Any, _: Any) -> SerializedError:
    if not isinstance(value, dict):
        raise TypeError(f"expected a JSON object, got {type(value).__name__}")

    def text(key: str) -> str | UnsetType:
        found = value.get(key)
        return found if isinstance(found, str) else UNSET

    def record(key: str) -> dict[str, Any] | UnsetType:
        found = value.get(key)
        return found if isinstance(found, dict) else UNSET

    title = value.get("title")
    return SerializedError(
        title=title if isinstance(title, str) else "Unknown error",
        cause=text("cause"),
        suggestion=text("suggestion"),
        error_data=record("errorData"),
        display_data=record("displayData"),
        stack=text("stack"),
        root_title=text("rootTitle"),
    )


codec.converter.register_structure_hook(SerializedError, _structure_serialized_error)


# --------------------------------------------------------------------------------------
# Authentication handshake (no ``type`` key either way)
# --------------------------------------------------------------------------------------


def _check_credential(_: Any, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{to_camel(attribute.name)} must be a string")
    if len(value) > AUTH_CREDENTIAL_MAX_LENGTH:
        raise ValueError(
            f"{to_camel(attribute.name)} is longer than {AUTH_CREDENTIAL_MAX_LENGTH} characters"
        )


def _check_auth_version(_: Any, __: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int or value != 1:
        raise ValueError("authVersion must be 1, the only version of the handshake")


@attrs.frozen
class AuthPacket:
    """The first frame a client sends on every socket. The passkey never appears in reprs."""

    client_identifier: str = attrs.field(validator=_check_credential)
    client_passkey: str = attrs.field(validator=_check_credential, repr=False)
    auth_version: int = attrs.field(default=1, validator=_check_auth_version)


@attrs.frozen
class AuthResult:
    """The server's reply to :class:`AuthPacket`: ``{"success": true}`` or a failure."""

    success: bool
    error: str | UnsetType = UNSET


# --------------------------------------------------------------------------------------
# Envelope messages. Field order follows the reference schema.
# --------------------------------------------------------------------------------------


@variant("rpcCall")
class RpcCall:
    """Client: call an RPC. ``parameter`` is left out for void endpoints."""

    endpoint: str
    call_id: int
    parameter: Any = UNSET


@variant("rpcResult")
class RpcResult:
    """Server: an RPC succeeded. ``result`` is absent when the endpoint returns nothing."""

    call_id: int
    result: Any = UNSET


@variant("rpcError")
class RpcError:
    """Server: an RPC failed."""

    call_id: int
    error: SerializedError


@variant("channelCreate")
class ChannelCreate:
    """Client: open a channel. ``creation_parameter`` is left out for void endpoints."""

    endpoint: str
    channel_id: int
    creation_parameter: Any = UNSET


@variant("channelSend")
class ChannelSend:
    """Either side: one packet on an open channel.

    ``message`` is optional in the reference schema; a missing one is left for the
    channel's owner to reject, like any other payload it cannot structure.
    """

    channel_id: int
    message: Any = UNSET
    ack_id: int | UnsetType = UNSET


@variant("channelAck")
class ChannelAck:
    """Either side: acknowledges a packet that carried ``ack_id``. No endpoint uses acks."""

    channel_id: int
    ack_id: int


@variant("channelClose")
class ChannelClose:
    """Server: the channel ended normally. Nothing more follows for it."""

    channel_id: int


@variant("channelError")
class ChannelError:
    """Server: the channel ended with an error. Nothing more follows for it."""

    channel_id: int
    error: SerializedError


@variant("signalSubscribe")
class SignalSubscribe:
    """Client: subscribe to a read-only signal (no public endpoint has one)."""

    endpoint: str
    subscribe_id: int
    creation_parameter: Any = UNSET


@variant("signalUnsubscribe")
class SignalUnsubscribe:
    """Client: end a signal subscription."""

    subscribe_id: int


@variant("signalUpdate")
class SignalUpdate:
    """Server: immer patches for a subscribed signal."""

    subscribe_id: int
    patches: list[Any]
    tags: list[str]


@variant("signalError")
class SignalError:
    """Server: a signal subscription failed."""

    subscribe_id: int
    error: SerializedError


@variant("writableSignalSubscribe")
class WritableSignalSubscribe:
    """Client: subscribe to a writable signal (no public endpoint has one)."""

    endpoint: str
    subscribe_id: int
    creation_parameter: Any = UNSET


@variant("writableSignalUnsubscribe")
class WritableSignalUnsubscribe:
    """Client: end a writable signal subscription."""

    subscribe_id: int


@variant("writableSignalUpdate")
class WritableSignalUpdate:
    """Either side: immer patches for a writable signal."""

    subscribe_id: int
    patches: list[Any]
    tags: list[str]


@variant("writableSignalError")
class WritableSignalError:
    """Server: a writable signal subscription failed."""

    subscribe_id: int
    error: SerializedError


@variant("communicationWarning")
class CommunicationWarning:
    """Either side: "your message made no sense to me". ``kind`` is one of
    :data:`COMMUNICATION_WARNING_KINDS`; readers treat other values as ``"unknown"``."""

    warning: str
    kind: str | UnsetType = UNSET


@variant("keepAlive")
class KeepAlive:
    """Client: liveness probe (no official client sends it); the server answers
    :class:`KeepAliveAck`."""


@variant("keepAliveAck")
class KeepAliveAck:
    """Server: answer to :class:`KeepAlive`."""


ClientToServer = Union[  # noqa: UP007 - a runtime alias that cattrs dispatches on
    RpcCall,
    ChannelCreate,
    ChannelSend,
    ChannelAck,
    SignalSubscribe,
    SignalUnsubscribe,
    WritableSignalSubscribe,
    WritableSignalUnsubscribe,
    WritableSignalUpdate,
    CommunicationWarning,
    KeepAlive,
    Unknown,
]
"""Every envelope message a client may send; unknown tags decode to ``Unknown``."""

ServerToClient = Union[  # noqa: UP007 - a runtime alias that cattrs dispatches on
    RpcResult,
    RpcError,
    ChannelSend,
    ChannelAck,
    ChannelClose,
    ChannelError,
    SignalUpdate,
    SignalError,
    WritableSignalUpdate,
    WritableSignalError,
    CommunicationWarning,
    KeepAliveAck,
    Unknown,
]
"""Every envelope message a server may send; unknown tags decode to ``Unknown``."""

register_tagged_union(ClientToServer)
register_tagged_union(ServerToClient)


# --------------------------------------------------------------------------------------
# Text frames
# --------------------------------------------------------------------------------------


def parse_json(text: str | bytes, *, what: str = "frame") -> Any:
    """Parse one text frame; invalid JSON is a :class:`RemoteProtocolError`."""
    try:
        return codec.loads(text)
    except ValueError as exc:  # json and orjson decode errors are ValueErrors
        raise RemoteProtocolError(f"{what} is not valid JSON: {exc}") from None


def encode(message: Any, *, what: str | None = None) -> str:
    """Encode a wire object (envelope, auth packet or auth result) as one text frame.

    ``what`` names the frame's content in a :class:`LocalProtocolError`.
    """
    what = what or f"{type(message).__name__} frame"
    return dumps_frame(codec.unstructure(message, what=what), what=what)


def encode_rpc_call(endpoint: str, call_id: int, parameter: Any, *, what: str) -> str:
    """``encode(RpcCall(endpoint, call_id, parameter))`` for an unstructured ``parameter``.

    Built by hand, in the class's key order: this frame is made for every RPC, and the
    converter took ten times as long as the JSON encoding to make the same envelope.
    """
    envelope = {"type": "rpcCall", "endpoint": endpoint, "callId": call_id}
    if parameter is not UNSET:
        envelope["parameter"] = parameter
    return dumps_frame(envelope, what=what)


def dumps_frame(raw: Any, *, what: str = "frame") -> str:
    """Serialise an already unstructured JSON value; failure is a :class:`LocalProtocolError`."""
    try:
        return codec.dumps(raw)
    except (TypeError, ValueError) as exc:  # orjson.JSONEncodeError is a TypeError
        raise LocalProtocolError(f"cannot encode {what} as JSON: {exc}") from None


def decode_server_message(text: str | bytes) -> ServerToClient:
    """Decode a frame a server sent (after the handshake)."""
    return codec.structure(parse_json(text), ServerToClient, what="frame")


def decode_client_message(text: str | bytes) -> ClientToServer:
    """Decode a frame a client sent (after the handshake)."""
    return codec.structure(parse_json(text), ClientToServer, what="frame")


def encode_payload(value: Any, tp: Any, *, what: str) -> Any:
    """Unstructure a payload with its endpoint type and check it would be accepted.

    The JSON is structured back with ``tp``, so a value of the wrong class or a field of
    the wrong type is caught here, before anything is sent, as a
    :class:`LocalProtocolError` naming the field.
    """
    if attrs.has(tp) and not isinstance(value, tp):
        raise LocalProtocolError(
            f"{what} must be a {tp.__qualname__}, not {type(value).__qualname__}"
        )
    raw = codec.unstructure(value, tp, what=what)
    try:
        codec.structure(raw, tp, what=what)
    except RemoteProtocolError as exc:
        detail = str(exc).partition(": ")[2] or str(exc)
        raise LocalProtocolError(f"invalid {what}: {detail}") from None
    return raw


def decode_payload(raw: Any, tp: Any, *, what: str) -> Any:
    """Structure an inbound payload with its endpoint type (a :class:`RemoteProtocolError`
    naming the field when it does not fit).

    An absent payload (``UNSET``, JavaScript's ``undefined``) is structured as ``None``, so
    a type that accepts ``None`` (``X | None``) reads "nothing" as ``None``; for any other
    type it is reported as missing.
    """
    if raw is UNSET:
        try:
            return codec.structure(None, tp, what=what)
        except RemoteProtocolError:
            raise RemoteProtocolError(f"{what} is missing") from None
    return codec.structure(raw, tp, what=what)


def warning_kind(kind: str | UnsetType) -> str:
    """The kind of a received warning as the reference reads it (``"unknown"`` if absent)."""
    return kind if isinstance(kind, str) and kind in COMMUNICATION_WARNING_KINDS else "unknown"
