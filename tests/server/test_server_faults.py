"""Scripted-engine faults as the client sees them on the wire."""

from __future__ import annotations

import json
from collections.abc import Callable

import anyio
import pytest
from _server_helpers import (
    LLM,
    WAIT,
    SocketClosed,
    TestClient,
    chat,
    connect,
    get_or_load,
    query,
    stack,
)

from lmstudio_sdk.errors import RemoteProtocolError
from lmstudio_sdk.protocol.endpoints import llm
from lmstudio_sdk.protocol.endpoints.llm import PredictCreationParameter, PredictFragment
from lmstudio_sdk.protocol.endpoints.shared import TokenizeParameter
from lmstudio_sdk.protocol.events import ChannelClosed, ChannelFailed, RpcFailed
from lmstudio_sdk.server import BackgroundServer, Faults, Script, scripted_model


def _predict(model: str) -> PredictCreationParameter:
    return PredictCreationParameter(
        model_specifier=query(model), history=chat("Hi"), prediction_config_stack=stack()
    )


async def read_forever(client: TestClient, channel: int) -> None:
    """Read the channel until something raises."""
    while True:
        await client.next_on(channel)


async def test_an_injected_error_becomes_a_channel_error_with_its_title(
    server: BackgroundServer,
) -> None:
    async with connect(server, "llm") as client:
        await get_or_load(client, "error-llm")
        channel = await client.open(llm.PREDICT, _predict("error-llm"))
        packets, end = await client.until_end(channel)
        assert isinstance(end, ChannelFailed)
        assert end.error.title == "Scripted failure"
        assert len([p for p in packets if isinstance(p, PredictFragment)]) == 2
        # Other RPCs on that socket are unaffected.
        assert [i.identifier for i in await client.result(llm.LIST_LOADED)] == ["error-llm"]


async def test_an_injected_error_on_an_rpc_is_an_rpc_error(server: BackgroundServer) -> None:
    async with connect(server, "llm") as client:
        await get_or_load(client, "broken-tokenizer")
        reply = await client.call(llm.TOKENIZE, TokenizeParameter(query("broken-tokenizer"), "x"))
        assert isinstance(reply, RpcFailed)
        assert reply.error.title == "Tokenizer exploded"


async def test_drop_socket_mid_stream(server: BackgroundServer) -> None:
    async with connect(server, "llm") as client:
        await get_or_load(client, "drop-llm")
        channel = await client.open(llm.PREDICT, _predict("drop-llm"))
        with pytest.raises(SocketClosed) as info:
            await read_forever(client, channel)
        assert info.value.code == 1006  # dropped: no close frame
        messages = [json.loads(f).get("message", {}) for f in client.frames[1:]]
        assert len([m for m in messages if m.get("type") == "fragment"]) == 2
        assert not [m for m in messages if m.get("type") == "success"]
    # The server goes on serving.
    async with connect(server, "llm") as client:
        assert [i.identifier for i in await client.result(llm.LIST_LOADED)] == ["drop-llm"]


async def test_malformed_frame_mid_stream_then_the_stream_goes_on(server: BackgroundServer) -> None:
    async with connect(server, "llm") as client:
        await get_or_load(client, "malformed-llm")
        channel = await client.open(llm.PREDICT, _predict("malformed-llm"))
        with pytest.raises(RemoteProtocolError):
            await read_forever(client, channel)
        with pytest.raises(json.JSONDecodeError):
            json.loads(client.frames[-1])
        # The rest of the prediction still arrives, ending in success then close.
        rest = [json.loads(await client.recv_frame()) for _ in range(2)]
        while rest[-1]["type"] != "channelClose":
            rest.append(json.loads(await client.recv_frame()))
        assert rest[-2]["message"]["type"] == "success"


async def test_never_answer_sends_nothing_until_the_client_leaves(
    server: BackgroundServer,
) -> None:
    async with connect(server, "llm") as client:
        await get_or_load(client, "silent-llm")
        channel = await client.open(llm.PREDICT, _predict("silent-llm"))
        await client.cancel(channel)
        with anyio.move_on_after(0.3) as scope:
            await client.next_on(channel)
        assert scope.cancelled_caught, "the silent model answered"
        # The socket is not blocked: other calls are answered meanwhile.
        assert len(await client.result(llm.LIST_LOADED)) == 1
    # After the client left, the server is healthy.
    async with connect(server, "llm") as client:
        assert len(await client.result(llm.LIST_LOADED)) == 1


async def test_a_delay_postpones_the_first_packet_only(
    server_factory: Callable[..., BackgroundServer],
) -> None:
    server = server_factory(models=[scripted_model(LLM, faults=Faults(delay=0.2))])
    async with connect(server, "llm") as client:
        await get_or_load(client, LLM)
        channel = await client.open(llm.PREDICT, _predict(LLM))
        started = anyio.current_time()
        await client.next_on(channel)
        assert anyio.current_time() - started >= 0.2
        _, end = await client.until_end(channel)
        assert isinstance(end, ChannelClosed)


async def test_faults_can_be_changed_on_a_running_server(server: BackgroundServer) -> None:
    async with connect(server, "llm") as client:
        await get_or_load(client, LLM)
        await anyio.to_thread.run_sync(
            lambda: server.set_script(
                LLM, script=Script(text="Changed."), faults=Faults(error="Now broken")
            )
        )
        channel = await client.open(llm.PREDICT, _predict(LLM))
        _, end = await client.until_end(channel)
        assert isinstance(end, ChannelFailed)
        assert end.error.title == "Now broken"
        await anyio.to_thread.run_sync(lambda: server.set_script(LLM, faults=Faults()))
        channel = await client.open(llm.PREDICT, _predict(LLM))
        packets, _ = await client.until_end(channel)
        assert (
            "".join(p.fragment.content for p in packets if isinstance(p, PredictFragment))
            == "Changed."
        )


async def test_a_load_fault_fails_the_load(server_factory: Callable[..., BackgroundServer]) -> None:
    server = server_factory(
        models=[scripted_model(LLM, faults=Faults(operations={"load"}, error="Out of memory"))]
    )
    async with connect(server, "llm") as client:
        from lmstudio_sdk.protocol.endpoints.shared import GetOrLoadCreationParameter

        channel = await client.open(
            llm.GET_OR_LOAD, GetOrLoadCreationParameter(identifier=LLM, load_config_stack=stack())
        )
        with anyio.fail_after(WAIT):
            _, end = await client.until_end(channel)
        assert isinstance(end, ChannelFailed)
        assert end.error.title == "Out of memory"
        assert await client.result(llm.LIST_LOADED) == []
