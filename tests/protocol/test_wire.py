"""The envelope classes: round trips, the reference schema, lenient errors, the handshake."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import attrs
import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmstudio_sdk.errors import (
    LMStudioModelNotFoundError,
    LMStudioPresetNotFoundError,
    LMStudioServerError,
    LocalProtocolError,
    RemoteProtocolError,
)
from lmstudio_sdk.protocol import UNSET, Unknown, codec, wire
from lmstudio_sdk.protocol.wire import (
    AuthPacket,
    AuthResult,
    ChannelAck,
    ChannelClose,
    ChannelCreate,
    ChannelError,
    ChannelSend,
    ClientToServer,
    CommunicationWarning,
    KeepAlive,
    KeepAliveAck,
    RpcCall,
    RpcError,
    RpcResult,
    SerializedError,
    ServerToClient,
    SignalError,
    SignalSubscribe,
    SignalUnsubscribe,
    SignalUpdate,
    WritableSignalError,
    WritableSignalSubscribe,
    WritableSignalUnsubscribe,
    WritableSignalUpdate,
)

SCHEMA = json.loads((Path(__file__).parents[1] / "schemas" / "js-head-envelope.json").read_text())


def _relaxed(node: Any) -> Any:
    """The schema without ``additionalProperties: false`` (an export artifact)."""
    if isinstance(node, dict):
        return {
            k: _relaxed(v)
            for k, v in node.items()
            if not (k == "additionalProperties" and v is False)
        }
    if isinstance(node, list):
        return [_relaxed(v) for v in node]
    return node


DEFINITIONS = _relaxed(SCHEMA)["definitions"]


def validator(definition: str) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(
        {"$ref": f"#/definitions/{definition}", "definitions": DEFINITIONS}
    )


def members(union: Any) -> list[type]:
    return [m for m in typing.get_args(union) if m is not Unknown]


# ------------------------------------------------------------------- strategies

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
json_objects = st.dictionaries(st.text(max_size=5), json_values, max_size=3)
ids = st.integers(0, 2**53)
texts = st.text(max_size=12)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.just(UNSET) | strategy


errors = st.builds(
    SerializedError,
    title=texts,
    cause=maybe(texts),
    suggestion=maybe(texts),
    error_data=maybe(json_objects),
    display_data=maybe(json_objects),
    stack=maybe(texts),
    root_title=maybe(texts),
)
patches = st.lists(json_values, max_size=3)
tags = st.lists(texts, max_size=3)

STRATEGIES: dict[type, st.SearchStrategy[Any]] = {
    RpcCall: st.builds(RpcCall, texts, ids, maybe(json_values)),
    RpcResult: st.builds(RpcResult, ids, maybe(json_values)),
    RpcError: st.builds(RpcError, ids, errors),
    ChannelCreate: st.builds(ChannelCreate, texts, ids, maybe(json_values)),
    ChannelSend: st.builds(ChannelSend, ids, maybe(json_values), maybe(ids)),
    ChannelAck: st.builds(ChannelAck, ids, ids),
    ChannelClose: st.builds(ChannelClose, ids),
    ChannelError: st.builds(ChannelError, ids, errors),
    SignalSubscribe: st.builds(SignalSubscribe, texts, ids, maybe(json_values)),
    SignalUnsubscribe: st.builds(SignalUnsubscribe, ids),
    SignalUpdate: st.builds(SignalUpdate, ids, patches, tags),
    SignalError: st.builds(SignalError, ids, errors),
    WritableSignalSubscribe: st.builds(WritableSignalSubscribe, texts, ids, maybe(json_values)),
    WritableSignalUnsubscribe: st.builds(WritableSignalUnsubscribe, ids),
    WritableSignalUpdate: st.builds(WritableSignalUpdate, ids, patches, tags),
    WritableSignalError: st.builds(WritableSignalError, ids, errors),
    CommunicationWarning: st.builds(CommunicationWarning, texts, maybe(texts)),
    KeepAlive: st.just(KeepAlive()),
    KeepAliveAck: st.just(KeepAliveAck()),
}

CLIENT_CLASSES = members(ClientToServer)
SERVER_CLASSES = members(ServerToClient)


def test_every_envelope_class_has_a_strategy() -> None:
    assert set(STRATEGIES) == set(CLIENT_CLASSES) | set(SERVER_CLASSES)


@pytest.mark.parametrize("cls", CLIENT_CLASSES, ids=lambda c: c.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_client_messages_round_trip_and_match_the_schema(cls: type, data: st.DataObject) -> None:
    message = data.draw(STRATEGIES[cls])
    frame = wire.encode(message)
    validator("clientToServerMessage").validate(json.loads(frame))
    assert wire.decode_client_message(frame) == message


@pytest.mark.parametrize("cls", SERVER_CLASSES, ids=lambda c: c.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_server_messages_round_trip_and_match_the_schema(cls: type, data: st.DataObject) -> None:
    message = data.draw(STRATEGIES[cls])
    frame = wire.encode(message)
    validator("serverToClientMessage").validate(json.loads(frame))
    assert wire.decode_server_message(frame) == message


KNOWN_TAGS = {codec.tag_of(cls) for cls in STRATEGIES}


@settings(max_examples=40, deadline=None)
@given(
    tag=texts.filter(lambda t: t not in KNOWN_TAGS),
    rest=st.dictionaries(
        st.text(max_size=5).filter(lambda k: k != "type"), json_values, max_size=3
    ),
)
def test_unknown_messages_round_trip_unchanged(tag: str, rest: dict[str, Any]) -> None:
    raw = {"type": tag, **rest}
    for decode in (wire.decode_client_message, wire.decode_server_message):
        message = decode(json.dumps(raw))
        assert message == Unknown(tag, raw)
        assert json.loads(wire.encode(message)) == raw


@settings(max_examples=40, deadline=None)
@given(
    identifier=st.text(max_size=256),
    passkey=st.text(max_size=256),
    error=maybe(texts),
    success=st.booleans(),
)
def test_handshake_round_trips(identifier: str, passkey: str, error: Any, success: bool) -> None:
    packet = AuthPacket(identifier, passkey)
    frame = wire.encode(packet)
    validator("authPacket").validate(json.loads(frame))
    assert codec.structure(json.loads(frame), AuthPacket) == packet
    result = AuthResult(success, error)
    assert codec.structure(json.loads(wire.encode(result)), AuthResult) == result


# ------------------------------------------------------------------- against the schema


def _tags(definition: str) -> set[str]:
    return {variant["properties"]["type"]["const"] for variant in DEFINITIONS[definition]["anyOf"]}


def test_unions_cover_exactly_the_reference_message_types() -> None:
    assert {codec.tag_of(c) for c in CLIENT_CLASSES} == _tags("clientToServerMessage")
    assert {codec.tag_of(c) for c in SERVER_CLASSES} == _tags("serverToClientMessage")


def test_warning_kinds_are_the_reference_ones() -> None:
    assert set(DEFINITIONS["communicationWarningKind"]["enum"]) == wire.COMMUNICATION_WARNING_KINDS


def _resolve(ref: str) -> Any:
    node: Any = {"definitions": DEFINITIONS}
    for part in ref.removeprefix("#/").split("/"):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _example(schema: dict[str, Any], *, full: bool) -> Any:
    """A value of the shape ``schema`` describes: required keys only, or every key."""
    if "$ref" in schema:
        return _example(_resolve(schema["$ref"]), full=full)
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "integer":
        return 7
    if kind == "string":
        return "text"
    if kind == "array":
        items = schema.get("items")
        return (
            [_example(items, full=full)] if items else [{"op": "replace", "path": [], "value": 1}]
        )
    if kind == "object":
        keys = schema["properties"] if full else schema.get("required", [])
        return {key: _example(schema["properties"][key], full=full) for key in keys}
    assert kind is None, schema  # `{}`: any JSON value
    return {"any": ["json", 1, None]}


def _fixtures(definition: str) -> list[Any]:
    fixtures = []
    for variant in DEFINITIONS[definition]["anyOf"]:
        for full in (False, True):
            example = _example(variant, full=full)
            fixtures.append(
                pytest.param(example, id=f"{example['type']}-{'full' if full else 'required'}")
            )
    return fixtures


@pytest.mark.parametrize("raw", _fixtures("serverToClientMessage"))
def test_reference_server_messages_decode_to_their_class(raw: dict[str, Any]) -> None:
    message = wire.decode_server_message(json.dumps(raw))
    assert not isinstance(message, Unknown)
    assert message.type == raw["type"]
    validator("serverToClientMessage").validate(json.loads(wire.encode(message)))


@pytest.mark.parametrize("raw", _fixtures("clientToServerMessage"))
def test_reference_client_messages_decode_to_their_class(raw: dict[str, Any]) -> None:
    message = wire.decode_client_message(json.dumps(raw))
    assert not isinstance(message, Unknown)
    assert message.type == raw["type"]
    validator("clientToServerMessage").validate(json.loads(wire.encode(message)))


def test_optional_payloads_decode_as_unset_and_stay_absent() -> None:
    message = wire.decode_server_message('{"type":"rpcResult","callId":3}')
    assert message == RpcResult(3)
    assert message.result is UNSET
    assert wire.encode(message) == '{"type":"rpcResult","callId":3}'
    assert wire.decode_server_message('{"type":"rpcResult","callId":3,"result":null}') == RpcResult(
        3, None
    )


def test_frames_start_with_their_type() -> None:
    assert (
        wire.encode(RpcCall("listLoaded", 1))
        == '{"type":"rpcCall","endpoint":"listLoaded","callId":1}'
    )
    assert wire.encode(ChannelSend(2, {"type": "cancel"})) == (
        '{"type":"channelSend","channelId":2,"message":{"type":"cancel"}}'
    )


@pytest.mark.parametrize(
    "parameter",
    [UNSET, None, {}, [1, 2.5, True], {"specifier": {"type": "query"}, "inputString": "é\n"}],
)
def test_the_rpc_call_frame_made_by_hand_is_the_wire_class_frame(parameter: Any) -> None:
    by_hand = wire.encode_rpc_call("tokenize", 7, parameter, what="parameter of llm.tokenize")
    assert by_hand == wire.encode(RpcCall("tokenize", 7, parameter))


# ------------------------------------------------------------------- the error object


def test_serialized_error_is_read_leniently() -> None:
    raw = {
        "title": 5,
        "cause": ["not", "text"],
        "suggestion": "Load a model first",
        "errorData": "not an object",
        "displayData": {"code": "generic.pathNotFound", "path": "a/b"},
        "stack": 3,
        "rootTitle": "Root",
        "futureField": True,
    }
    error = codec.structure(raw, SerializedError)
    assert error == SerializedError(
        title="Unknown error",
        suggestion="Load a model first",
        display_data={"code": "generic.pathNotFound", "path": "a/b"},
        root_title="Root",
    )
    assert codec.structure({}, SerializedError) == SerializedError("Unknown error")
    with pytest.raises(RemoteProtocolError, match=r"expected SerializedError @ \$\.error"):
        wire.decode_server_message('{"type":"rpcError","callId":1,"error":"boom"}')


def test_serialized_error_leaves_unset_fields_out() -> None:
    frame = wire.encode(RpcError(1, SerializedError("Boom", cause="Because")))
    assert json.loads(frame)["error"] == {"title": "Boom", "cause": "Because"}


@pytest.mark.parametrize(
    ("display_data", "code", "exception"),
    [
        (
            {"code": "generic.noModelMatchingQuery"},
            "generic.noModelMatchingQuery",
            LMStudioModelNotFoundError,
        ),
        ({"code": "generic.pathNotFound"}, "generic.pathNotFound", LMStudioModelNotFoundError),
        (
            {"code": "generic.presetNotFound"},
            "generic.presetNotFound",
            LMStudioPresetNotFoundError,
        ),
        ({"code": 5}, None, LMStudioServerError),
        (UNSET, None, LMStudioServerError),
    ],
)
def test_serialized_error_becomes_the_right_exception(
    display_data: Any, code: str | None, exception: type
) -> None:
    error = SerializedError("No model", cause="None loaded", display_data=display_data)
    assert error.code == code
    raised = error.to_exception("llm.getModelInfo")
    assert type(raised) is exception
    assert raised.code == code
    assert str(raised) == "llm.getModelInfo: No model None loaded"


def test_server_errors_survive_serialisation() -> None:
    original = LMStudioModelNotFoundError(
        "No model matched",
        cause="Nothing loaded",
        suggestion="Load one",
        display_data={"code": "generic.noModelMatchingQuery", "totalLoadedModels": 0},
        error_data={"query": "x"},
    )
    error = SerializedError.from_exception(original)
    assert error.stack is UNSET
    assert error.root_title == "No model matched"
    again = codec.structure(json.loads(wire.encode(RpcError(1, error)))["error"], SerializedError)
    rebuilt = again.to_exception()
    assert type(rebuilt) is LMStudioModelNotFoundError
    assert (rebuilt.title, rebuilt.cause, rebuilt.suggestion) == (
        "No model matched",
        "Nothing loaded",
        "Load one",
    )
    assert rebuilt.display_data == original.display_data
    assert rebuilt.error_data == {"query": "x"}
    assert SerializedError.from_exception(KeyError()) == SerializedError(
        "KeyError", root_title="KeyError"
    )


# ------------------------------------------------------------------- the handshake


def test_auth_packet_has_no_type_and_hides_the_passkey() -> None:
    packet = AuthPacket("guest:me", "very-secret")
    assert json.loads(wire.encode(packet)) == {
        "authVersion": 1,
        "clientIdentifier": "guest:me",
        "clientPasskey": "very-secret",
    }
    assert "very-secret" not in repr(packet)
    assert wire.encode(AuthResult(True)) == '{"success":true}'
    assert json.loads(wire.encode(AuthResult(False, "nope"))) == {"success": False, "error": "nope"}


@pytest.mark.parametrize(
    "raw",
    [
        {"authVersion": 2, "clientIdentifier": "a", "clientPasskey": "b"},
        {"authVersion": "1", "clientIdentifier": "a", "clientPasskey": "b"},
        {"authVersion": 1, "clientIdentifier": "a" * 257, "clientPasskey": "b"},
        {"authVersion": 1, "clientIdentifier": "a", "clientPasskey": 5},
        {"authVersion": 1, "clientIdentifier": "a"},
    ],
)
def test_invalid_auth_packets_do_not_structure(raw: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError):
        codec.structure(raw, AuthPacket, what="authentication packet")
    # The schema agrees.
    assert not validator("authPacket").is_valid(raw)


def test_auth_packet_checks_its_values() -> None:
    with pytest.raises(ValueError, match="clientPasskey is longer than 256"):
        AuthPacket("guest", "p" * 257)
    with pytest.raises(ValueError, match="authVersion must be 1"):
        AuthPacket("guest", "p", auth_version=2)


# ------------------------------------------------------------------- frames and payloads


def test_bad_json_is_a_remote_error() -> None:
    with pytest.raises(RemoteProtocolError, match="frame is not valid JSON"):
        wire.decode_server_message('{"type": ')
    with pytest.raises(RemoteProtocolError, match="expected a JSON object"):
        wire.decode_client_message('"rpcCall"')


def test_unencodable_values_are_local_errors() -> None:
    with pytest.raises(LocalProtocolError, match=r"cannot encode parameter of x as JSON"):
        wire.encode(RpcCall("x", 1, {"when": object()}), what="parameter of x")
    with pytest.raises(LocalProtocolError, match="RpcCall frame"):
        wire.encode(RpcCall("x", 1, {"ids": {1, 2}}))


@attrs.frozen
class Point:
    x_value: int
    label: str | None = None


def test_encode_payload_checks_the_value_before_sending() -> None:
    assert wire.encode_payload(Point(1), Point, what="point") == {"xValue": 1, "label": None}
    with pytest.raises(LocalProtocolError, match="point must be a Point, not dict"):
        wire.encode_payload({"xValue": 1}, Point, what="point")
    with pytest.raises(LocalProtocolError, match=r"invalid point: .*\$\.xValue"):
        wire.encode_payload(Point("1"), Point, what="point")  # type: ignore[arg-type]
    assert wire.encode_payload([1, 2], list[int], what="numbers") == [1, 2]
    with pytest.raises(LocalProtocolError, match="numbers"):
        wire.encode_payload(["1"], list[int], what="numbers")


def test_decode_payload_reads_absent_as_none_when_allowed() -> None:
    assert wire.decode_payload(UNSET, Point | None, what="point") is None
    with pytest.raises(RemoteProtocolError, match=r"^point is missing$"):
        wire.decode_payload(UNSET, Point, what="point")
    assert wire.decode_payload({"xValue": 2, "extra": 1}, Point, what="point") == Point(2)
