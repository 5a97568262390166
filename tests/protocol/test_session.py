"""Client and server sessions talking to each other in memory: no event loop, no I/O.

The endpoints are small specs defined here, so these tests do not depend on the real
endpoint modules. Every frame either session produces is checked against the envelope
JSON Schema of the reference implementation when the test ends.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Union

import attrs
import jsonschema
import pytest

from lmstudio_sdk.errors import (
    LMStudioModelNotFoundError,
    LMStudioServerError,
    LocalProtocolError,
    RemoteProtocolError,
)
from lmstudio_sdk.protocol import (
    UNSET,
    Authenticated,
    AuthenticationFailed,
    AuthenticationRejected,
    CallReceived,
    ChannelClosed,
    ChannelFailed,
    ChannelOpened,
    ChannelPacketReceived,
    ChannelSpec,
    ClientAuthenticated,
    ClientSession,
    IdentityRegistry,
    KeepAliveAcknowledged,
    MessageIgnored,
    PayloadInvalid,
    RequestRejected,
    RpcFailed,
    RpcSpec,
    RpcSucceeded,
    SerializedError,
    ServerSession,
    SessionState,
    StrayMessageReceived,
    Unknown,
    UnknownMessageReceived,
    UnsetType,
    WarningReceived,
    parse_api_token,
    register_tagged_union,
    variant,
)
from lmstudio_sdk.protocol.wire import ChannelSend, RpcResult, SignalUpdate

SCHEMA_PATH = Path(__file__).parents[1] / "schemas" / "js-head-envelope.json"

# ------------------------------------------------------------------- test endpoints


@attrs.frozen
class EchoParameter:
    text: str
    repeat: int | UnsetType = UNSET


@attrs.frozen
class EchoResult:
    text: str


@variant("fragment")
class Fragment:
    content: str


@variant("done")
class Done:
    count: int


@variant("cancel")
class Cancel:
    pass


StreamToClient = Union[Fragment, Done, Unknown]  # noqa: UP007 - a runtime alias
StreamToServer = Union[Cancel, Unknown]  # noqa: UP007 - a runtime alias
register_tagged_union(StreamToClient)
register_tagged_union(StreamToServer)

ECHO = RpcSpec("test", "echo", EchoParameter, EchoResult)
VERSION = RpcSpec("test", "version", None, EchoResult)  # void parameter
RESET = RpcSpec("test", "reset", EchoParameter, None)  # void result
FIND = RpcSpec("test", "find", EchoParameter, EchoResult | None)  # may return nothing
STREAM = ChannelSpec("test", "stream", EchoParameter, StreamToClient, StreamToServer, Cancel())
ALIVE = ChannelSpec("test", "alive", None, StreamToClient, None, None)  # no packets, no cancel
ENDPOINTS = {spec.name: spec for spec in (ECHO, VERSION, RESET, FIND, STREAM, ALIVE)}

# ------------------------------------------------------------------- schema checks


def _without_additional_properties_false(node: Any) -> Any:
    # zod-to-json-schema writes it on every object, but zod objects are not strict.
    if isinstance(node, dict):
        return {
            key: _without_additional_properties_false(value)
            for key, value in node.items()
            if not (key == "additionalProperties" and value is False)
        }
    if isinstance(node, list):
        return [_without_additional_properties_false(value) for value in node]
    return node


_DEFINITIONS = _without_additional_properties_false(json.loads(SCHEMA_PATH.read_text()))[
    "definitions"
]


def _validator(definition: str) -> jsonschema.Draft7Validator:
    schema = {"$ref": f"#/definitions/{definition}", "definitions": _DEFINITIONS}
    return jsonschema.Draft7Validator(schema)


CLIENT_FRAME = _validator("clientToServerMessage")
SERVER_FRAME = _validator("serverToClientMessage")
AUTH_PACKET = _validator("authPacket")
AUTH_RESULT = _validator("wsAuthenticationResult")


def check_client_frame(frame: str) -> None:
    value = json.loads(frame)
    (AUTH_PACKET if "authVersion" in value else CLIENT_FRAME).validate(value)


def check_server_frame(frame: str) -> None:
    value = json.loads(frame)
    (AUTH_RESULT if "success" in value else SERVER_FRAME).validate(value)


# ------------------------------------------------------------------- the pair


class Pair:
    """A client session and a server session joined by an in-memory link.

    ``to_server``/``to_client`` deliver frames the sessions produced (and record them for
    the schema check); ``inject_*`` deliver hand-written frames, which are not recorded.
    """

    def __init__(
        self,
        registry: IdentityRegistry,
        *,
        identifier: str = "guest:alice",
        passkey: str = "passkey-alice",
        strict: bool = False,
    ) -> None:
        self.registry = registry
        self.client = ClientSession(identifier, passkey, namespace="test")
        self.server = ServerSession("test", ENDPOINTS, registry, unknown_endpoint_errors=strict)
        self.client_frames: list[str] = []
        self.server_frames: list[str] = []

    def to_server(self, frame: str) -> tuple[list[Any], list[Any]]:
        """Deliver a client frame; deliver what the server queued in reply.

        Returns (server events, client events caused by the server's replies).
        """
        self.client_frames.append(frame)
        return self.inject_to_server(frame)

    def inject_to_server(self, text: str) -> tuple[list[Any], list[Any]]:
        server_events = self.server.receive_text(text)
        client_events: list[Any] = []
        for reply in self.server.data_to_send():
            client_events += self.to_client(reply)
        return server_events, client_events

    def to_client(self, frame: str) -> list[Any]:
        self.server_frames.append(frame)
        return self.client.receive_text(frame)

    def connect(self) -> tuple[list[Any], list[Any]]:
        return self.to_server(self.client.start())

    def call(self, spec: RpcSpec, parameter: Any = UNSET) -> tuple[int, list[Any]]:
        call_id, frame = self.client.call(spec, parameter)
        server_events, client_events = self.to_server(frame)
        assert client_events == []
        return call_id, server_events

    def open_channel(self, spec: ChannelSpec, parameter: Any = UNSET) -> int:
        channel_id, frame = self.client.open_channel(spec, parameter)
        server_events, _ = self.to_server(frame)
        assert [type(e) for e in server_events] == [ChannelOpened]
        return channel_id


@pytest.fixture
def registry() -> IdentityRegistry:
    return IdentityRegistry()


@pytest.fixture
def make_pair(registry: IdentityRegistry) -> Iterator[Callable[..., Pair]]:
    pairs: list[Pair] = []

    def make(**kwargs: Any) -> Pair:
        pair = Pair(kwargs.pop("registry", registry), **kwargs)
        pairs.append(pair)
        return pair

    yield make
    for pair in pairs:
        for frame in pair.client_frames:
            check_client_frame(frame)
        for frame in pair.server_frames:
            check_server_frame(frame)


@pytest.fixture
def pair(make_pair: Callable[..., Pair]) -> Pair:
    pair = make_pair()
    pair.connect()
    return pair


# ------------------------------------------------------------------- authentication


def test_handshake_authenticates_both_sides(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair()
    auth_frame = pair.client.start()
    assert json.loads(auth_frame) == {
        "authVersion": 1,
        "clientIdentifier": "guest:alice",
        "clientPasskey": "passkey-alice",
    }
    assert pair.client.state is SessionState.AWAITING_AUTH
    server_events, client_events = pair.to_server(auth_frame)
    assert server_events == [ClientAuthenticated("guest:alice")]
    assert client_events == [Authenticated()]
    assert pair.server_frames == ['{"success":true}']
    assert pair.client.state is SessionState.OPEN
    assert pair.server.state is SessionState.OPEN
    assert pair.server.client_identifier == "guest:alice"


def test_wrong_passkey_is_rejected_with_the_reference_message(
    make_pair: Callable[..., Pair], registry: IdentityRegistry
) -> None:
    make_pair().connect()
    intruder = make_pair(passkey="another-passkey")
    server_events, client_events = intruder.connect()
    message = 'Failed to validate client: Invalid client passkey for client "guest:alice"'
    assert server_events == [AuthenticationRejected("guest:alice", message)]
    assert client_events == [AuthenticationFailed(message)]
    assert json.loads(intruder.server_frames[0]) == {"success": False, "error": message}
    assert intruder.client.state is SessionState.CLOSED
    assert intruder.server.state is SessionState.CLOSED
    assert registry.holders("guest:alice") == 1
    # The rejected socket never held the identity, so closing it releases nothing.
    assert intruder.server.connection_lost().identity_released is False
    assert registry.holders("guest:alice") == 1


def test_identity_is_shared_by_sockets_and_released_by_the_last(
    make_pair: Callable[..., Pair], registry: IdentityRegistry
) -> None:
    llm, files = make_pair(), make_pair()
    assert llm.connect()[1] == [Authenticated()]
    assert files.connect()[1] == [Authenticated()]
    assert registry.holders("guest:alice") == 2
    assert llm.server.connection_lost().identity_released is False
    assert "guest:alice" in registry
    assert files.server.connection_lost().identity_released is True
    assert "guest:alice" not in registry
    # Once released, the identifier may be claimed again, with any passkey.
    assert make_pair(passkey="new-passkey").connect()[1] == [Authenticated()]


def test_malformed_auth_frames_are_ignored_until_a_valid_one(
    make_pair: Callable[..., Pair],
) -> None:
    pair = make_pair()
    bad_frames = [
        "not json",
        '{"type": "rpcCall", "endpoint": "echo", "callId": 1}',
        '{"authVersion": 2, "clientIdentifier": "guest:a", "clientPasskey": "p"}',
        '{"authVersion": true, "clientIdentifier": "guest:a", "clientPasskey": "p"}',
        '{"authVersion": 1, "clientIdentifier": "guest:a"}',
        json.dumps({"authVersion": 1, "clientIdentifier": "x" * 257, "clientPasskey": "p"}),
    ]
    for frame in bad_frames:
        server_events, client_events = pair.inject_to_server(frame)
        assert [type(e) for e in server_events] == [MessageIgnored], frame
        assert client_events == []
        assert pair.server.state is SessionState.AWAITING_AUTH
    assert pair.connect() == ([ClientAuthenticated("guest:alice")], [Authenticated()])


def test_passkey_never_appears_in_reprs_events_or_messages(make_pair: Callable[..., Pair]) -> None:
    secret = "s3cret-passkey-value"
    pair = make_pair(passkey=secret)
    bad_packet = json.dumps(
        {"authVersion": 2, "clientIdentifier": "guest:a", "clientPasskey": secret}
    )
    ignored, _ = pair.inject_to_server(bad_packet)
    pair.connect()
    intruder = make_pair(passkey="other")
    rejected, failed = intruder.connect()
    texts = [
        repr(pair.client),
        repr(pair.server),
        repr(pair.registry),
        repr(ignored),
        repr(rejected),
    ]
    texts += [repr(failed), str(failed[0].error)]
    from lmstudio_sdk.protocol import AuthPacket

    texts.append(repr(AuthPacket("guest:a", secret)))
    for text in texts:
        assert secret not in text
        assert "other" not in text.replace("another", "")


def test_authentication_timeout_reply(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair()
    frame = pair.server.authentication_timed_out()
    assert frame is not None
    assert json.loads(frame) == {"success": False, "error": "Authentication timed out"}
    assert pair.server.state is SessionState.CLOSED
    assert pair.server.authentication_timed_out() is None


def test_client_reads_failure_without_a_reason(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair()
    pair.client.start()
    assert pair.client.receive_text('{"success": false}') == [
        AuthenticationFailed("no reason given")
    ]
    assert pair.client.state is SessionState.CLOSED


def test_client_rejects_a_malformed_auth_reply(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair()
    pair.client.start()
    with pytest.raises(RemoteProtocolError, match=r"authentication reply.*success"):
        pair.client.receive_text('{"type": "keepAliveAck"}')
    assert pair.client.state is SessionState.AWAITING_AUTH


TOKEN = "sk-lm-Abcd1234:abcdefghij0123456789"


def test_required_api_token_keeps_guests_out(make_pair: Callable[..., Pair]) -> None:
    registry = IdentityRegistry([TOKEN], require_token=True)
    _, guest_events = make_pair(registry=registry).connect()
    assert [type(e) for e in guest_events] == [AuthenticationFailed]
    assert "requires an API token" in guest_events[0].error
    identifier, passkey = parse_api_token(TOKEN)
    holder = make_pair(registry=registry, identifier=identifier, passkey=passkey)
    assert holder.connect()[1] == [Authenticated()]
    wrong = make_pair(registry=registry, identifier=identifier, passkey="x" * 20)
    assert [type(e) for e in wrong.connect()[1]] == [AuthenticationFailed]


def test_token_identifier_is_reserved_even_when_guests_are_allowed(
    make_pair: Callable[..., Pair],
) -> None:
    registry = IdentityRegistry([TOKEN])
    assert make_pair(registry=registry).connect()[1] == [Authenticated()]  # a guest
    # Coming first does not let a client squat the token's identifier.
    squatter = make_pair(registry=registry, identifier="Abcd1234", passkey="guess")
    assert [type(e) for e in squatter.connect()[1]] == [AuthenticationFailed]
    owner = make_pair(registry=registry, identifier="Abcd1234", passkey="abcdefghij0123456789")
    assert owner.connect()[1] == [Authenticated()]


def test_parse_api_token() -> None:
    assert parse_api_token(f"  {TOKEN}\n") == ("Abcd1234", "abcdefghij0123456789")
    for bad in ["sk-lm-Abcd123:abcdefghij0123456789", "Abcd1234:abcdefghij0123456789", TOKEN + "x"]:
        with pytest.raises(LocalProtocolError, match="malformed API token") as info:
            parse_api_token(bad)
        assert "abcdefghij" not in str(info.value)
    with pytest.raises(LocalProtocolError):
        IdentityRegistry(["not-a-token"])


def test_credentials_are_checked_locally() -> None:
    with pytest.raises(LocalProtocolError, match="clientIdentifier is longer than 256"):
        ClientSession("x" * 257, "passkey")


# ------------------------------------------------------------------- wrong state


def test_nothing_can_be_sent_before_authentication(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair()
    with pytest.raises(LocalProtocolError, match=r"call start\(\)"):
        pair.client.call(ECHO, EchoParameter("hi"))
    with pytest.raises(LocalProtocolError, match=r"before start\(\)"):
        pair.client.receive_text('{"success": true}')
    pair.client.start()
    with pytest.raises(LocalProtocolError, match="wait for the Authenticated event"):
        pair.client.open_channel(STREAM, EchoParameter("hi"))
    with pytest.raises(LocalProtocolError, match="already called"):
        pair.client.start()
    with pytest.raises(LocalProtocolError, match="has not authenticated"):
        pair.server.reply(1, EchoResult("x"))


def test_nothing_can_be_sent_after_the_connection_is_lost(pair: Pair) -> None:
    call_id, _ = pair.call(ECHO, EchoParameter("hi"))
    channel_id = pair.open_channel(STREAM, EchoParameter("go"))
    assert pair.client.connection_lost().pending_calls == (call_id,)
    assert pair.client.state is SessionState.CLOSED
    with pytest.raises(LocalProtocolError, match="closed"):
        pair.client.call(ECHO, EchoParameter("again"))
    with pytest.raises(LocalProtocolError, match="closed"):
        pair.client.receive_text('{"type": "keepAliveAck"}')
    # Cleanup code may still try to cancel: nothing to send, no error.
    assert pair.client.cancel_channel(channel_id) is None
    gone = pair.server.connection_lost()
    assert (gone.pending_calls, gone.open_channels) == ((call_id,), (channel_id,))
    with pytest.raises(LocalProtocolError, match="closed"):
        pair.server.reply(call_id, EchoResult("late"))
    with pytest.raises(LocalProtocolError, match="stop feeding"):
        pair.server.receive_text('{"type": "keepAlive"}')


def test_connection_lost_reports_what_was_in_flight(pair: Pair) -> None:
    first, _ = pair.call(ECHO, EchoParameter("a"))
    second, _ = pair.call(VERSION)
    streaming = pair.open_channel(STREAM, EchoParameter("b"))
    abandoned = pair.open_channel(STREAM, EchoParameter("c"))
    pair.client.forget_channel(abandoned)
    lost = pair.client.connection_lost()
    assert lost.pending_calls == (first, second)
    assert lost.open_channels == (streaming,)  # nobody listens to the abandoned one
    again = pair.client.connection_lost()
    assert (again.pending_calls, again.open_channels) == ((), ())


# ------------------------------------------------------------------- RPCs


def test_rpc_round_trip(pair: Pair) -> None:
    call_id, frame = pair.client.call(ECHO, EchoParameter("hi", repeat=2))
    assert json.loads(frame) == {
        "type": "rpcCall",
        "endpoint": "echo",
        "callId": 1,
        "parameter": {"text": "hi", "repeat": 2},
    }
    server_events, _ = pair.to_server(frame)
    assert server_events == [CallReceived(call_id, ECHO, EchoParameter("hi", repeat=2))]
    assert pair.client.pending_calls == (call_id,)
    assert pair.server.pending_calls == (call_id,)
    reply = pair.server.reply(call_id, EchoResult("hihi"))
    assert pair.to_client(reply) == [RpcSucceeded(call_id, EchoResult("hihi"))]
    assert pair.client.pending_calls == ()
    assert pair.server.pending_calls == ()


def test_void_parameter_is_left_out(pair: Pair) -> None:
    call_id, frame = pair.client.call(VERSION)
    assert "parameter" not in json.loads(frame)
    assert pair.to_server(frame)[0] == [CallReceived(call_id, VERSION, None)]
    # None means "no parameter" as well; a real value is a mistake.
    assert "parameter" not in json.loads(pair.client.call(VERSION, None)[1])
    with pytest.raises(
        LocalProtocolError, match=r"parameter of test\.version: the endpoint takes none"
    ):
        pair.client.call(VERSION, EchoParameter("x"))


def test_void_result_is_absent_and_reads_as_none(pair: Pair) -> None:
    call_id, _ = pair.call(RESET, EchoParameter("x"))
    with pytest.raises(LocalProtocolError, match="returns nothing"):
        pair.server.reply(call_id, EchoResult("not allowed"))
    reply = pair.server.reply(call_id)
    assert json.loads(reply) == {"type": "rpcResult", "callId": call_id}
    assert pair.to_client(reply) == [RpcSucceeded(call_id, None)]


def test_optional_result_may_be_absent(pair: Pair) -> None:
    found, _ = pair.call(FIND, EchoParameter("a"))
    missing, _ = pair.call(FIND, EchoParameter("b"))
    assert pair.to_client(pair.server.reply(found, EchoResult("A"))) == [
        RpcSucceeded(found, EchoResult("A"))
    ]
    reply = pair.server.reply(missing, None)
    assert "result" not in json.loads(reply)
    assert pair.to_client(reply) == [RpcSucceeded(missing, None)]


def test_server_refuses_to_send_an_absent_required_result(pair: Pair) -> None:
    call_id, _ = pair.call(ECHO, EchoParameter("a"))
    with pytest.raises(LocalProtocolError, match="EchoResult"):
        pair.server.reply(call_id, None)
    with pytest.raises(LocalProtocolError, match=r"\$\.text"):
        pair.server.reply(call_id, EchoResult(5))  # type: ignore[arg-type]
    # A failed reply leaves the call pending, so it can still be answered.
    assert pair.to_client(pair.server.reply(call_id, EchoResult("ok"))) == [
        RpcSucceeded(call_id, EchoResult("ok"))
    ]


def test_rpc_error_carries_the_serialized_error(pair: Pair) -> None:
    call_id, _ = pair.call(ECHO, EchoParameter("a"))
    error = LMStudioModelNotFoundError(
        "No model matched",
        cause="Nothing is loaded",
        suggestion="Load a model",
        display_data={"code": "generic.noModelMatchingQuery", "totalLoadedModels": 0},
    )
    [event] = pair.to_client(pair.server.reply_error(call_id, error))
    assert isinstance(event, RpcFailed)
    assert event.call_id == call_id
    assert event.error.title == "No model matched"
    assert event.error.code == "generic.noModelMatchingQuery"
    raised = event.error.to_exception("test.echo")
    assert isinstance(raised, LMStudioModelNotFoundError)
    assert str(raised) == "test.echo: No model matched Nothing is loaded Suggestion: Load a model"


def test_plain_exceptions_become_their_message(pair: Pair) -> None:
    call_id, _ = pair.call(ECHO, EchoParameter("a"))
    [event] = pair.to_client(pair.server.reply_error(call_id, ValueError("disk full")))
    assert event == RpcFailed(call_id, SerializedError("disk full", root_title="disk full"))
    assert type(event.error.to_exception()) is LMStudioServerError


def test_bad_parameter_is_a_local_error_and_changes_nothing(pair: Pair) -> None:
    with pytest.raises(LocalProtocolError, match="must be a EchoParameter, not dict"):
        pair.client.call(ECHO, {"text": "hi"})
    with pytest.raises(LocalProtocolError, match=r"parameter of test\.echo.*\$\.text"):
        pair.client.call(ECHO, EchoParameter(5))  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match=r"parameter of test\.echo is required"):
        pair.client.call(ECHO)
    with pytest.raises(LocalProtocolError, match="takes an RpcSpec"):
        pair.client.call(STREAM, EchoParameter("x"))  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="'other' namespace"):
        pair.client.call(RpcSpec("other", "echo", EchoParameter, EchoResult), EchoParameter("x"))
    assert pair.client.pending_calls == ()
    assert pair.client.call(ECHO, EchoParameter("fine"))[0] == 1


def test_invalid_result_fails_only_that_call(pair: Pair) -> None:
    first, _ = pair.call(ECHO, EchoParameter("a"))
    second, _ = pair.call(ECHO, EchoParameter("b"))
    [event] = pair.client.receive_text(
        json.dumps({"type": "rpcResult", "callId": first, "result": {"text": 5}})
    )
    assert isinstance(event, PayloadInvalid)
    assert (event.call_id, event.channel_id) == (first, None)
    assert "result of test.echo" in str(event.error)
    assert "$.text" in str(event.error)
    assert pair.to_client(pair.server.reply(second, EchoResult("B"))) == [
        RpcSucceeded(second, EchoResult("B"))
    ]


def test_missing_required_result_is_reported_as_missing(pair: Pair) -> None:
    call_id, _ = pair.call(ECHO, EchoParameter("a"))
    [event] = pair.client.receive_text(json.dumps({"type": "rpcResult", "callId": call_id}))
    assert isinstance(event, PayloadInvalid)
    assert str(event.error) == "result of test.echo is missing"


def test_late_reply_to_a_forgotten_call_is_dropped(pair: Pair) -> None:
    call_id, _ = pair.call(ECHO, EchoParameter("slow"))
    pair.client.forget_call(call_id)
    assert pair.client.pending_calls == ()
    reply = pair.server.reply(call_id, EchoResult("too late"))
    assert pair.to_client(reply) == []
    # A second reply for the same id is not expected any more: it is reported.
    [stray] = pair.client.receive_text(reply)
    assert stray == StrayMessageReceived(
        RpcResult(call_id, {"text": "too late"}), "call 1 has already been answered"
    )


def test_reply_to_a_call_never_made_is_reported(pair: Pair) -> None:
    [event] = pair.client.receive_text(
        '{"type": "rpcError", "callId": 42, "error": {"title": "x"}}'
    )
    assert isinstance(event, StrayMessageReceived)
    assert event.reason == "call 42 was never made"


def test_call_and_channel_ids_are_separate_counters_from_one(pair: Pair) -> None:
    call_one, _ = pair.call(ECHO, EchoParameter("a"))
    channel_one = pair.open_channel(STREAM, EchoParameter("b"))
    call_two, _ = pair.call(VERSION)
    channel_two = pair.open_channel(ALIVE)
    assert (call_one, channel_one, call_two, channel_two) == (1, 1, 2, 2)
    # The server keeps them apart too: answering call 1 does not touch channel 1.
    pair.to_client(pair.server.reply(call_one, EchoResult("A")))
    assert pair.server.open_channels == (1, 2)
    assert pair.to_client(pair.server.send_packet(1, Fragment("x"))) == [
        ChannelPacketReceived(1, Fragment("x"))
    ]


def test_server_accepts_javascript_style_ids(pair: Pair) -> None:
    # lmstudio-js shares one counter from 0 between calls and channels.
    events, _ = pair.inject_to_server('{"type":"rpcCall","endpoint":"version","callId":0}')
    assert events == [CallReceived(0, VERSION, None)]
    events, _ = pair.inject_to_server('{"type":"channelCreate","endpoint":"alive","channelId":1}')
    assert events == [ChannelOpened(1, ALIVE, None)]
    assert json.loads(pair.server.reply(0, EchoResult("v"))) == {
        "type": "rpcResult",
        "callId": 0,
        "result": {"text": "v"},
    }


def test_server_answers_a_reused_call_id_twice(pair: Pair) -> None:
    frame = '{"type":"rpcCall","endpoint":"echo","callId":7,"parameter":{"text":"a"}}'
    pair.inject_to_server(frame)
    pair.inject_to_server(frame)
    pair.server.reply(7, EchoResult("first"))
    pair.server.reply(7, EchoResult("second"))
    with pytest.raises(LocalProtocolError, match="not pending"):
        pair.server.reply(7, EchoResult("third"))


# ------------------------------------------------------------------- channels


def test_channel_streams_packets_then_closes(pair: Pair) -> None:
    channel_id, frame = pair.client.open_channel(STREAM, EchoParameter("go"))
    assert json.loads(frame) == {
        "type": "channelCreate",
        "endpoint": "stream",
        "channelId": 1,
        "creationParameter": {"text": "go"},
    }
    assert pair.to_server(frame)[0] == [ChannelOpened(channel_id, STREAM, EchoParameter("go"))]
    assert pair.to_client(pair.server.send_packet(channel_id, Fragment("Hel"))) == [
        ChannelPacketReceived(channel_id, Fragment("Hel"))
    ]
    assert pair.to_client(pair.server.send_packet(channel_id, Done(1))) == [
        ChannelPacketReceived(channel_id, Done(1))
    ]
    close = pair.server.close_channel(channel_id)
    assert pair.to_client(close) == [ChannelClosed(channel_id)]
    assert not pair.client.is_channel_open(channel_id)
    assert pair.server.open_channels == ()
    # A late duplicate close is harmless and silent; a late packet is worth a log line.
    assert pair.client.receive_text(close) == []
    [stray] = pair.client.receive_text(
        '{"type":"channelSend","channelId":1,"message":{"type":"done","count":2}}'
    )
    assert isinstance(stray, StrayMessageReceived)
    assert stray.reason == "channel 1 has already ended"


def test_channel_error_ends_the_channel(pair: Pair) -> None:
    channel_id = pair.open_channel(STREAM, EchoParameter("go"))
    frame = pair.server.fail_channel(channel_id, SerializedError("Model crashed", cause="OOM"))
    assert pair.to_client(frame) == [
        ChannelFailed(channel_id, SerializedError("Model crashed", cause="OOM"))
    ]
    assert not pair.client.is_channel_open(channel_id)
    with pytest.raises(LocalProtocolError, match="not open"):
        pair.server.send_packet(channel_id, Fragment("late"))


def test_cancel_sends_the_endpoint_cancel_packet_once(pair: Pair) -> None:
    channel_id = pair.open_channel(STREAM, EchoParameter("go"))
    cancel = pair.client.cancel_channel(channel_id)
    assert cancel is not None
    assert json.loads(cancel) == {
        "type": "channelSend",
        "channelId": channel_id,
        "message": {"type": "cancel"},
    }
    assert pair.to_server(cancel)[0] == [ChannelPacketReceived(channel_id, Cancel())]
    assert pair.client.cancel_channel(channel_id) is None
    # The channel stays open until the server ends it; packets in flight still arrive.
    assert pair.to_client(pair.server.send_packet(channel_id, Done(3))) == [
        ChannelPacketReceived(channel_id, Done(3))
    ]
    assert pair.to_client(pair.server.close_channel(channel_id)) == [ChannelClosed(channel_id)]
    assert pair.client.cancel_channel(channel_id) is None


def test_cancel_of_an_endpoint_without_cancel_packet(pair: Pair) -> None:
    channel_id = pair.open_channel(ALIVE)
    assert pair.client.cancel_channel(channel_id) is None
    with pytest.raises(LocalProtocolError, match="takes no packets"):
        pair.client.send_packet(channel_id, Cancel())
    with pytest.raises(LocalProtocolError, match="never opened"):
        pair.client.cancel_channel(99)


def test_late_cancel_gets_a_channel_unknown_warning(pair: Pair) -> None:
    channel_id = pair.open_channel(STREAM, EchoParameter("go"))
    cancel = pair.client.cancel_channel(channel_id)
    assert cancel is not None
    pair.to_client(pair.server.close_channel(channel_id))
    server_events, client_events = pair.to_server(cancel)  # crossed the close on the wire
    assert server_events == [
        RequestRejected("channelUnknown", "Received channelSend for unknown channel, channelId = 1")
    ]
    assert client_events == [
        WarningReceived("Received channelSend for unknown channel, channelId = 1", "channelUnknown")
    ]


def test_unknown_packet_type_arrives_as_unknown(pair: Pair) -> None:
    channel_id = pair.open_channel(STREAM, EchoParameter("go"))
    frame = pair.server.send_packet(
        channel_id, {"type": "toolCallGenerationStart", "toolCallId": "a"}
    )
    [event] = pair.to_client(frame)
    raw = {"type": "toolCallGenerationStart", "toolCallId": "a"}
    assert event == ChannelPacketReceived(channel_id, Unknown("toolCallGenerationStart", raw))


def test_malformed_packet_fails_only_its_channel(pair: Pair) -> None:
    broken = pair.open_channel(STREAM, EchoParameter("a"))
    healthy = pair.open_channel(STREAM, EchoParameter("b"))
    bad = json.dumps(
        {"type": "channelSend", "channelId": broken, "message": {"type": "fragment", "content": 5}}
    )
    [event] = pair.client.receive_text(bad)
    assert isinstance(event, PayloadInvalid)
    assert (event.call_id, event.channel_id) == (None, broken)
    assert "packet of test.stream" in str(event.error)
    assert "$.content" in str(event.error)
    # The broken channel is abandoned: later packets are dropped until the server ends it,
    # and it can still be cancelled.
    assert pair.to_client(pair.server.send_packet(broken, Fragment("more"))) == []
    assert pair.client.cancel_channel(broken) is not None
    assert pair.to_client(pair.server.close_channel(broken)) == []
    assert pair.to_client(pair.server.send_packet(healthy, Fragment("ok"))) == [
        ChannelPacketReceived(healthy, Fragment("ok"))
    ]


def test_missing_message_fails_its_channel(pair: Pair) -> None:
    channel_id = pair.open_channel(STREAM, EchoParameter("a"))
    [event] = pair.client.receive_text(json.dumps({"type": "channelSend", "channelId": channel_id}))
    assert isinstance(event, PayloadInvalid)
    assert str(event.error) == "packet of test.stream is missing"


def test_forgotten_channel_is_silent_until_it_ends(pair: Pair) -> None:
    channel_id = pair.open_channel(STREAM, EchoParameter("a"))
    pair.client.forget_channel(channel_id)
    assert pair.to_client(pair.server.send_packet(channel_id, Fragment("x"))) == []
    assert pair.to_client(pair.server.fail_channel(channel_id, SerializedError("late"))) == []
    assert not pair.client.is_channel_open(channel_id)


def test_a_channel_withdrawn_before_its_create_was_sent_needs_no_cancel(pair: Pair) -> None:
    channel_id, _frame = pair.client.open_channel(STREAM, EchoParameter("a"))  # never sent
    pair.client.withdraw_channel(channel_id)
    assert not pair.client.is_channel_open(channel_id)
    assert pair.client.cancel_channel(channel_id) is None  # nothing to cancel
    assert pair.client.connection_lost().open_channels == ()


def test_send_packet_checks_the_packet_and_the_channel(pair: Pair) -> None:
    channel_id = pair.open_channel(STREAM, EchoParameter("a"))
    with pytest.raises(LocalProtocolError, match=r"packet for test\.stream"):
        pair.client.send_packet(channel_id, {"type": "cancel", "extra": {1, 2}})
    with pytest.raises(LocalProtocolError, match="never opened"):
        pair.client.send_packet(5, Cancel())
    pair.to_client(pair.server.close_channel(channel_id))
    with pytest.raises(LocalProtocolError, match="already ended"):
        pair.client.send_packet(channel_id, Cancel())
    other = pair.open_channel(STREAM, EchoParameter("b"))
    with pytest.raises(LocalProtocolError, match=r"packet of test\.stream.*\$\.content"):
        pair.server.send_packet(other, Fragment(5))  # type: ignore[arg-type]


# ------------------------------------------------------------------- refused requests


def test_unknown_endpoint_gets_only_a_warning(pair: Pair) -> None:
    frame = '{"type":"rpcCall","endpoint":"nope","callId":1}'
    server_events, client_events = pair.inject_to_server(frame)
    reason = "Received rpcCall for unknown endpoint, endpoint = nope"
    assert server_events == [RequestRejected("rpcEndpointUnknown", reason)]
    assert client_events == [WarningReceived(reason, "rpcEndpointUnknown")]
    assert pair.server.pending_calls == ()


@pytest.mark.parametrize(
    ("frame", "kind", "detail"),
    [
        (
            '{"type":"rpcCall","endpoint":"echo","callId":1,"parameter":{"text":5}}',
            "rpcParameterTypeError",
            "$.text",
        ),
        (
            '{"type":"rpcCall","endpoint":"echo","callId":1}',
            "rpcParameterTypeError",
            "parameter is missing",
        ),
        (
            '{"type":"rpcCall","endpoint":"version","callId":1,"parameter":null}',
            "rpcParameterTypeError",
            "left out",
        ),
        (
            '{"type":"rpcCall","endpoint":"stream","callId":1}',
            "rpcEndpointUnknown",
            "endpoint = stream",
        ),
        (
            '{"type":"channelCreate","endpoint":"echo","channelId":1}',
            "channelEndpointUnknown",
            "endpoint = echo",
        ),
        (
            '{"type":"channelCreate","endpoint":"stream","channelId":1,"creationParameter":[]}',
            "channelCreationParameterTypeError",
            "endpointName = stream",
        ),
        (
            '{"type":"channelSend","channelId":3,"message":{"type":"cancel"}}',
            "channelUnknown",
            "channelId = 3",
        ),
        ('{"type":"channelAck","channelId":3,"ackId":1}', "channelUnknown", "channelId = 3"),
        (
            '{"type":"signalSubscribe","endpoint":"s","subscribeId":1}',
            "signalEndpointUnknown",
            "endpoint = s",
        ),
        (
            '{"type":"writableSignalSubscribe","endpoint":"w","subscribeId":1}',
            "writableSignalEndpointUnknown",
            "endpoint = w",
        ),
        (
            '{"type":"writableSignalUpdate","subscribeId":4,"patches":[],"tags":[]}',
            "writableSignalUnknown",
            "subscribeId = 4",
        ),
    ],
)
def test_refused_requests_get_the_reference_warning(
    pair: Pair, frame: str, kind: str, detail: str
) -> None:
    [event], [warning] = pair.inject_to_server(frame)
    assert isinstance(event, RequestRejected)
    assert event.kind == kind
    assert detail in event.reason
    assert warning == WarningReceived(event.reason, kind)


def test_bad_packets_on_an_open_channel_are_warned_about(pair: Pair) -> None:
    stream = pair.open_channel(STREAM, EchoParameter("a"))
    alive = pair.open_channel(ALIVE)
    for channel_id, message in [(stream, {"type": 5}), (stream, None), (alive, {"type": "cancel"})]:
        frame = json.dumps({"type": "channelSend", "channelId": channel_id, "message": message})
        [event], [warning] = pair.inject_to_server(frame)
        assert event.kind == "channelMessageTypeError"
        assert warning.kind == "channelMessageTypeError"
    assert pair.server.open_channels == (stream, alive)


def test_duplicate_channel_id_is_ignored_with_a_warning(pair: Pair) -> None:
    channel_id = pair.open_channel(STREAM, EchoParameter("first"))
    frame = json.dumps(
        {
            "type": "channelCreate",
            "endpoint": "stream",
            "channelId": channel_id,
            "creationParameter": {"text": "x"},
        }
    )
    [event], [warning] = pair.inject_to_server(frame)
    assert event.kind == warning.kind == "channelAlreadyOpen"
    # The open channel is untouched.
    assert pair.to_client(pair.server.send_packet(channel_id, Fragment("still"))) == [
        ChannelPacketReceived(channel_id, Fragment("still"))
    ]


def test_signal_unsubscribe_is_silent(pair: Pair) -> None:
    for frame in [
        '{"type":"signalUnsubscribe","subscribeId":1}',
        '{"type":"writableSignalUnsubscribe","subscribeId":1}',
    ]:
        assert pair.inject_to_server(frame) == ([], [])


def test_warnings_are_capped_at_five_per_socket(pair: Pair) -> None:
    warnings = []
    for call_id in range(7):
        events, replies = pair.inject_to_server(
            json.dumps({"type": "rpcCall", "endpoint": "nope", "callId": call_id})
        )
        assert [e.kind for e in events] == ["rpcEndpointUnknown"]  # still reported for logs
        warnings += replies
    assert len(warnings) == 5


def test_strict_mode_answers_with_errors(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair(strict=True)
    pair.connect()
    _, [unknown] = pair.inject_to_server('{"type":"rpcCall","endpoint":"nope","callId":1}')
    assert isinstance(unknown, StrayMessageReceived)  # the client never made call 1
    call_id, frame = pair.client.call(ECHO, EchoParameter("ok"))
    bad = frame.replace('"endpoint":"echo"', '"endpoint":"echoo"')
    [rejected], [failed] = pair.inject_to_server(bad)
    assert rejected.kind == "rpcEndpointUnknown"
    assert isinstance(failed, RpcFailed)
    assert failed.call_id == call_id
    assert failed.error.title == 'Unknown RPC endpoint "echoo" in namespace "test"'
    _, frame = pair.client.call(ECHO, EchoParameter("ok"))
    [rejected], [failed] = pair.inject_to_server(frame.replace('"text":"ok"', '"text":1'))
    assert rejected.kind == "rpcParameterTypeError"
    assert failed.error.title == "Invalid parameter for test.echo"
    assert "$.text" in str(failed.error.cause)
    channel_id, frame = pair.client.open_channel(STREAM, EchoParameter("ok"))
    [rejected], [failed] = pair.inject_to_server(
        frame.replace('"endpoint":"stream"', '"endpoint":"streem"')
    )
    assert rejected.kind == "channelEndpointUnknown"
    assert failed == ChannelFailed(channel_id, failed.error)
    assert 'Unknown channel endpoint "streem"' in failed.error.title


def test_client_sends_warnings_and_keep_alives(pair: Pair) -> None:
    frame = pair.client.send_warning("your fragment made no sense", "channelMessageTypeError")
    assert frame is not None
    assert pair.to_server(frame)[0] == [
        WarningReceived("your fragment made no sense", "channelMessageTypeError")
    ]
    for _ in range(4):
        assert pair.client.send_warning("again") is not None
    assert pair.client.send_warning("one too many") is None
    assert pair.to_server(pair.client.keep_alive()) == ([], [KeepAliveAcknowledged()])


def test_server_accepts_unknown_fields(pair: Pair) -> None:
    frame = '{"type":"rpcCall","endpoint":"echo","callId":3,"parameter":{"text":"a","future":1},"trace":"x"}'
    assert pair.inject_to_server(frame)[0] == [CallReceived(3, ECHO, EchoParameter("a"))]


def test_server_ignores_what_it_cannot_route(pair: Pair) -> None:
    for frame in [
        "{",
        "[]",
        '{"type":"rpcCall","callId":1}',
        '{"type":"futureMessage"}',
        '{"no":"type"}',
    ]:
        [event], replies = pair.inject_to_server(frame)
        assert isinstance(event, MessageIgnored), frame
        assert replies == []


def test_server_checks_its_endpoint_table(registry: IdentityRegistry) -> None:
    with pytest.raises(LocalProtocolError, match=r"test\.echo; expected llm\.echo"):
        ServerSession("llm", {"echo": ECHO}, registry)
    with pytest.raises(LocalProtocolError, match=r"expected test\.other"):
        ServerSession("test", {"other": ECHO}, registry)


# ------------------------------------------------------------------- client inbound


def test_unknown_message_types_are_reported(pair: Pair) -> None:
    events = pair.client.receive_text('{"type":"brandNewThing","channelId":1,"x":[1]}')
    assert events == [
        UnknownMessageReceived("brandNewThing", {"type": "brandNewThing", "channelId": 1, "x": [1]})
    ]
    assert pair.client.receive_text('{"untagged": true}') == [
        UnknownMessageReceived(None, {"untagged": True})
    ]


def test_signal_messages_and_stray_acks_are_reported(pair: Pair) -> None:
    [event] = pair.client.receive_text(
        '{"type":"signalUpdate","subscribeId":1,"patches":[],"tags":["t"]}'
    )
    assert event == StrayMessageReceived(
        SignalUpdate(1, [], ["t"]), "this client subscribes to no signals"
    )
    [event] = pair.client.receive_text('{"type":"channelAck","channelId":9,"ackId":1}')
    assert event.reason == "channel 9 was never opened"
    channel_id = pair.open_channel(STREAM, EchoParameter("a"))
    assert (
        pair.client.receive_text(
            json.dumps({"type": "channelAck", "channelId": channel_id, "ackId": 1})
        )
        == []
    )


def test_warning_kinds_are_read_like_the_reference(pair: Pair) -> None:
    assert pair.client.receive_text('{"type":"communicationWarning","warning":"w"}') == [
        WarningReceived("w", "unknown")
    ]
    assert pair.client.receive_text(
        '{"type":"communicationWarning","warning":"w","kind":"newKind"}'
    ) == [WarningReceived("w", "unknown")]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ("not json", "frame is not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"type":"rpcResult"}', "required field missing @ $.callId"),
        ('{"type":"rpcResult","callId":"1"}', "expected int @ $.callId"),
        ('{"type":"rpcResult","callId":1.5}', "$.callId"),
        ('{"type":"channelSend","channelId":true,"message":{}}', "$.channelId"),
        ('{"type":"channelSend","channelId":1,"ackId":"a"}', "$.ackId"),
        ('{"type":"rpcError","callId":1}', "required field missing @ $.error"),
        ('{"type":"communicationWarning"}', "$.warning"),
        (
            '{"type":"signalUpdate","subscribeId":1,"patches":"p","tags":[]}',
            "expected list @ $.patches",
        ),
        ('{"type":"signalUpdate","subscribeId":1,"patches":[],"tags":[1]}', "$.tags[0]"),
    ],
)
def test_malformed_envelopes_raise_naming_the_field(pair: Pair, frame: str, message: str) -> None:
    call_id, _ = pair.call(ECHO, EchoParameter("a"))
    with pytest.raises(RemoteProtocolError) as info:
        pair.client.receive_text(frame)
    assert message in str(info.value)
    # Nothing changed: the session still works.
    assert pair.client.state is SessionState.OPEN
    assert pair.to_client(pair.server.reply(call_id, EchoResult("A"))) == [
        RpcSucceeded(call_id, EchoResult("A"))
    ]


def test_unknown_envelope_fields_are_ignored(pair: Pair) -> None:
    call_id, _ = pair.call(VERSION)
    frame = json.dumps(
        {"type": "rpcResult", "callId": call_id, "result": {"text": "1.0", "build": 7}, "new": 1}
    )
    assert pair.client.receive_text(frame) == [RpcSucceeded(call_id, EchoResult("1.0"))]


def test_envelope_objects_compare_by_value() -> None:
    assert ChannelSend(1, {"type": "cancel"}) == ChannelSend(1, {"type": "cancel"})
    assert ChannelSend(1, {"type": "cancel"}).ack_id is UNSET


def test_the_schema_check_rejects_frames_that_break_the_envelope() -> None:
    # The check run on every recorded frame is not vacuous.
    with pytest.raises(jsonschema.ValidationError):
        check_client_frame('{"type":"rpcCall","endpoint":"echo","callId":"1"}')
    with pytest.raises(jsonschema.ValidationError):
        check_client_frame('{"authVersion":1,"clientIdentifier":"a"}')
    with pytest.raises(jsonschema.ValidationError):
        check_server_frame('{"type":"channelError","channelId":1}')
    check_client_frame('{"type":"rpcCall","endpoint":"echo","callId":1,"unknownKey":true}')
