"""Frames that once killed a whole socket now fail only their call or channel.

A frame nested deeper than the JSON decoders allow, and an ``rpcError``/``channelError``
whose ``error`` is a bare string. Both decoders (orjson and the stdlib) give the same
``RemoteProtocolError`` message.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from _fake_server import FakeServer, ServerChannel, backend, connected, fragment, predict_parameter

from lmstudio_sdk import LMStudioServerError, RemoteProtocolError
from lmstudio_sdk.protocol import codec
from lmstudio_sdk.protocol.endpoints import llm, system

DEPTH_MESSAGE = "depth limit exceeded: line 1 column 1026 (char 1025)"


@pytest.fixture(params=["asyncio", "trio", "autojump"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    return backend(request.param)


def _deep(n: int) -> str:
    return "[" * n + "]" * n


@pytest.mark.parametrize(
    "text",
    [
        _deep(5000),
        _deep(1025),
        '{"a":' * 3000 + "1" + "}" * 3000,
        '["[{\\"",\n' + _deep(3000) + "]",
    ],
)
def test_both_decoders_refuse_deep_nesting_with_the_same_error(text: str) -> None:
    with pytest.raises(ValueError, match="depth limit exceeded") as stdlib:
        codec.stdlib_loads(text)
    if codec.USING_ORJSON:
        with pytest.raises(ValueError, match="depth limit exceeded") as fast:
            codec.loads(text)
        assert str(stdlib.value) == str(fast.value)
    assert str(stdlib.value).startswith("depth limit exceeded: line ")


def test_the_stdlib_decoder_reports_orjsons_position() -> None:
    with pytest.raises(
        ValueError, match="^" + DEPTH_MESSAGE.replace("(", r"\(").replace(")", r"\)")
    ):
        codec.stdlib_loads(_deep(3000))


async def _predict(conn: Any) -> None:
    async with conn.open_channel(llm.PREDICT, predict_parameter()) as channel:
        async for _ in channel:
            pass


async def version(_: Any) -> system.VersionResult:
    return system.VersionResult("0.3.30", 1)


def _server(first_packet: str) -> FakeServer:
    server = FakeServer()
    server.rpc["system.version"] = version

    async def stream(ch: ServerChannel) -> None:
        await ch.send(fragment("before"))
        await ch.connection.send_raw(first_packet.replace("CHANNEL", str(ch.channel_id)))
        await ch.send(fragment("after"))
        await anyio.sleep_forever()

    server.channels["llm.predict"] = stream
    return server


async def test_a_too_deep_packet_fails_its_channel_only() -> None:
    deep = '{"type":"channelSend","channelId":CHANNEL,"message":' + _deep(5000) + "}"
    server = _server(deep)
    async with connected(server) as client:
        conn = client.llm._connection()
        with pytest.raises(RemoteProtocolError) as caught:
            await _predict(conn)
        assert "depth limit exceeded" in str(caught.value)
        # The socket is still the same one, and serves the next call.
        assert (await client.system.version()).build == 1
        await anyio.wait_all_tasks_blocked()
        assert server.connects["llm"] == 1
        assert server.cancels == ["llm.predict"]  # the server was told to stop


async def test_a_too_deep_frame_of_unknown_owner_drops_the_socket_with_that_error() -> None:
    server = _server('{"type":"channelSend","channelId":999,"message":' + _deep(5000) + "}")
    async with connected(server) as client:
        conn = client.llm._connection()
        with pytest.raises(RemoteProtocolError) as caught:
            await _predict(conn)
        assert "frame is not valid JSON: depth limit exceeded: line 1 column" in str(caught.value)
        assert type(caught.value) is RemoteProtocolError  # not a RecursionError inside


async def test_a_channel_error_with_a_string_error_fails_that_channel_only() -> None:
    server = _server(json.dumps({"type": "channelError", "channelId": 0, "error": "boom"}))
    server.channels["llm.predict"] = _string_error_stream
    async with connected(server) as client:
        conn = client.llm._connection()
        with pytest.raises(LMStudioServerError) as caught:
            await _predict(conn)
        assert "boom" in str(caught.value)
        assert (await client.system.version()).build == 1
        assert server.connects["llm"] == 1


async def _string_error_stream(ch: ServerChannel) -> None:
    await ch.send(fragment("before"))
    frame = {"type": "channelError", "channelId": ch.channel_id, "error": "boom"}
    await ch.connection.send_raw(json.dumps(frame))
    await anyio.sleep_forever()
