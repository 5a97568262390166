"""Hypothesis over inbound frames: only typed protocol errors, and the session lives on.

Frames are any JSON (nested, big, of any type), envelope-shaped objects of every message
type with ids at and beyond the limits, raw text and bytes, and frames nested deeper than
the decoders accept. After each one the session must still do its job: a client session
still matches a reply to its call, a server session still accepts a call and can answer
every call it accepted (an id it cannot echo must have been refused, not accepted).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lmstudio_sdk.errors import RemoteProtocolError
from lmstudio_sdk.protocol.endpoints import ENDPOINTS, system
from lmstudio_sdk.protocol.events import CallReceived, RpcSucceeded
from lmstudio_sdk.protocol.server_session import IdentityRegistry, ServerSession
from lmstudio_sdk.protocol.session import ClientSession

TYPES = [
    "rpcCall", "rpcResult", "rpcError", "channelCreate", "channelSend", "channelAck",
    "channelClose", "channelError", "signalSubscribe", "signalUnsubscribe", "signalUpdate",
    "signalError", "writableSignalSubscribe", "writableSignalUnsubscribe",
    "writableSignalUpdate", "writableSignalError", "communicationWarning", "keepAlive",
    "keepAliveAck", "somethingNew",
]  # fmt: skip
LIMITS = [0, 1, -1, 2**31, 2**53 - 1, 2**53, -(2**53), 2**63 - 1, 2**63, 2**64, 2**64 + 1, 10**40]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from(LIMITS)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=25,
)
ids = st.sampled_from(LIMITS) | st.integers() | json_values
envelopes = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES)},
    optional={
        "callId": ids,
        "channelId": ids,
        "subscribeId": ids,
        "ackId": ids,
        "endpoint": st.sampled_from(["version", "alive", "listLoaded", "nope"]) | st.text(),
        "parameter": json_values,
        "creationParameter": json_values,
        "message": json_values | st.fixed_dictionaries({"type": st.text(max_size=12)}),
        "result": json_values,
        "error": json_values | st.fixed_dictionaries({"title": json_values}),
        "warning": json_values,
        "patches": json_values,
        "tags": json_values,
    },
)


def _deep(n: int, owner: int) -> str:
    return f'{{"type":"channelSend","channelId":{owner},"message":' + "[" * n + "]" * n + "}"


frames = st.one_of(
    envelopes.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=50),
    st.binary(max_size=50),
    st.builds(_deep, st.integers(1020, 1400), st.sampled_from([0, 1, 7])),
    st.text(alphabet='[]{}",:01', max_size=300),
)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _client() -> tuple[ClientSession, int]:
    session = ClientSession("guest:fuzz", "passkey", namespace="system")
    session.start()
    session.receive_text('{"success":true}')
    session.call(system.VERSION)  # call 0 stays pending: fuzz frames may claim it
    channel_id, _ = session.open_channel(system.ALIVE)
    return session, channel_id


def _still_matches_replies(session: ClientSession) -> None:
    call_id, _ = session.call(system.VERSION)
    reply = json.dumps(
        {"type": "rpcResult", "callId": call_id, "result": {"version": "1", "build": 1}}
    )
    events = session.receive_text(reply)
    assert [type(e) for e in events] == [RpcSucceeded]


@FUZZ
@given(frame=frames)
def test_client_session_raises_only_protocol_errors_and_lives_on(frame: str | bytes) -> None:
    session, _ = _client()
    with contextlib.suppress(RemoteProtocolError):
        session.receive_text(frame)
    _still_matches_replies(session)


@FUZZ
@given(batch=st.lists(frames, min_size=2, max_size=6))
def test_client_session_survives_a_run_of_bad_frames(batch: list[str | bytes]) -> None:
    session, _ = _client()
    for frame in batch:
        with contextlib.suppress(RemoteProtocolError):
            session.receive_text(frame)
    _still_matches_replies(session)


def _server() -> ServerSession:
    session = ServerSession("system", ENDPOINTS["system"], IdentityRegistry())
    session.receive_text('{"authVersion":1,"clientIdentifier":"guest:fuzz","clientPasskey":"p"}')
    session.data_to_send()
    return session


def _answer_every_call(session: ServerSession, events: list[Any]) -> None:
    for event in events:
        if isinstance(event, CallReceived) and event.spec is system.VERSION:
            json.loads(session.reply(event.call_id, system.VersionResult("1", 1)))


@FUZZ
@given(batch=st.lists(frames, min_size=1, max_size=4))
def test_server_session_never_raises_and_answers_what_it_accepted(
    batch: list[str | bytes],
) -> None:
    session = _server()
    for frame in batch:
        events = session.receive_text(frame)  # never raises: bad input is events/warnings
        for out in session.data_to_send():
            json.loads(out)
        _answer_every_call(session, events)
    events = session.receive_text('{"type":"rpcCall","endpoint":"version","callId":424242}')
    assert [type(e) for e in events] == [CallReceived]
    _answer_every_call(session, events)
