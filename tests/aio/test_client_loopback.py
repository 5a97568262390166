"""The client against the real local server over loopback (real sockets, real clocks).

Every way of leaving a prediction's scope must reach the server. The server's own record
of that is its diagnostics log: after each prediction it publishes
``llm.prediction.output`` with the full text it generated and its stop reason, and only
the client's cancel packet makes it stop with ``userStopped``. So each test checks that
record, that the client kept the ``userStopped`` success the server sent, and that what
the client consumed plus what it kept after leaving is exactly the text the server says it
generated (nothing lost). Faults (dropped sockets, malformed frames, silence) are the
scripted engine's.
"""

# pytest.raises() wraps whole channel scopes on purpose: the error must come out of the
# scope's exit, after the cancel reached the server.
# ruff: noqa: PT012

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import attrs
import pytest
from _fake_server import predict_parameter

from lmstudio_sdk import (
    AsyncClient,
    Channel,
    LMStudioConnectionError,
    LMStudioTimeoutError,
    RemoteProtocolError,
)
from lmstudio_sdk.protocol.endpoints import RpcSpec, diagnostics, llm, shared
from lmstudio_sdk.server import BackgroundServer, Faults, Script, ServerOptions, scripted_model

KEY = "scripted-llm"
FRAGMENTS = 2000
SLOW = Script(fragments=("tok ",) * FRAGMENTS, fragments_per_second=200)


@pytest.fixture
def server() -> Iterator[BackgroundServer]:
    models = (scripted_model(KEY, script=SLOW), scripted_model(domain="embedding"))
    with BackgroundServer(ServerOptions(port=0, models=models)) as running:
        yield running


@asynccontextmanager
async def session(server: BackgroundServer) -> AsyncIterator[tuple[AsyncClient, Any]]:
    """A client with the scripted model loaded, and the server's log stream open."""
    async with AsyncClient(server.url) as client:
        await client.llm.model(KEY)
        async with client.diagnostics.stream_logs() as logs:
            yield client, logs


def predict(client: AsyncClient, **options: Any) -> Any:
    parameter = attrs.evolve(
        predict_parameter(),
        model_specifier=shared.ModelSpecifierQuery(shared.ModelQuery(identifier=KEY)),
    )
    return client.llm._connection().open_channel(llm.PREDICT, parameter, **options)


def texts(packets: Any) -> list[str]:
    return [p.fragment.content for p in packets if isinstance(p, llm.PredictFragment)]


async def server_record(logs: Any) -> diagnostics.LLMPredictionOutputLog:
    """The server's log entry for the prediction that just ended."""
    with anyio.fail_after(10):
        async for event in logs:
            if isinstance(event.data, diagnostics.LLMPredictionOutputLog):
                return event.data
    raise AssertionError("the log stream ended without a prediction output")


def assert_stopped_by_user(
    record: diagnostics.LLMPredictionOutputLog, channel: Channel[Any], consumed: list[Any]
) -> None:
    assert not isinstance(record.stats, type(None))
    assert record.stats.stop_reason == "userStopped"  # the server got our cancel
    final = channel.final_packets
    assert isinstance(final[-1], llm.PredictSuccess)
    assert final[-1].stats.stop_reason == "userStopped"  # and we kept what it sent
    assert "".join(texts(consumed) + texts(final)) == record.output  # nothing was lost
    assert 0 < len(record.output) < len("tok ") * FRAGMENTS


# ---------------------------------------------------------------------------- cancellation


async def test_break_reaches_the_server(server: BackgroundServer) -> None:
    consumed: list[Any] = []
    async with session(server) as (client, logs):
        async with predict(client) as channel:
            async for packet in channel:
                consumed.append(packet)
                if len(texts(consumed)) == 3:
                    break
        assert_stopped_by_user(await server_record(logs), channel, consumed)


async def test_exception_in_block_reaches_the_server(server: BackgroundServer) -> None:
    consumed: list[Any] = []
    async with session(server) as (client, logs):
        with pytest.raises(ZeroDivisionError):
            async with predict(client) as channel:
                async for packet in channel:
                    consumed.append(packet)
                    if len(texts(consumed)) == 3:
                        _ = 1 / 0
        assert_stopped_by_user(await server_record(logs), channel, consumed)


async def test_move_on_after_reaches_the_server(server: BackgroundServer) -> None:
    consumed: list[Any] = []
    async with session(server) as (client, logs):
        with anyio.move_on_after(0.3) as scope:
            async with predict(client) as channel:
                async for packet in channel:
                    consumed.append(packet)
        assert scope.cancelled_caught
        assert_stopped_by_user(await server_record(logs), channel, consumed)


async def test_cancelled_task_group_reaches_the_server(server: BackgroundServer) -> None:
    consumed: list[Any] = []
    channels: list[Channel[Any]] = []
    async with session(server) as (client, logs):
        three = anyio.Event()

        async def consume() -> None:
            async with predict(client) as channel:
                channels.append(channel)
                async for packet in channel:
                    consumed.append(packet)
                    if len(texts(consumed)) == 3:
                        three.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await three.wait()
            tg.cancel_scope.cancel()
        assert_stopped_by_user(await server_record(logs), channels[0], consumed)


# ---------------------------------------------------------------------------- failures


async def test_dropped_socket_fails_the_stream_then_the_next_call_reconnects(
    server: BackgroundServer,
) -> None:
    server.set_script(KEY, script=SLOW, faults=Faults(drop_socket_after_fragments=2))
    async with AsyncClient(server.url) as client:
        await client.system.version()
        await client.llm.model(KEY)
        consumed: list[Any] = []
        with anyio.fail_after(10), pytest.raises(LMStudioConnectionError, match="lost the llm"):
            async with predict(client) as channel:
                async for packet in channel:
                    consumed.append(packet)
        assert len(texts(consumed)) == 2
        server.set_script(KEY, script=SLOW, faults=Faults())
        loaded = await client.llm.list_loaded()  # a new socket
        assert [m.identifier for m in loaded] == [KEY]
        assert client.llm._connection().connects == 2
        assert client.system._connection().connects == 1  # other namespaces unaffected


async def test_malformed_frame_fails_the_socket_then_reconnects(server: BackgroundServer) -> None:
    server.set_script(KEY, script=SLOW, faults=Faults(malformed_frame_after_fragments=1))
    async with AsyncClient(server.url) as client:
        await client.llm.model(KEY)
        with anyio.fail_after(10), pytest.raises(RemoteProtocolError):
            async with predict(client) as channel:
                async for _ in channel:
                    pass
        server.set_script(KEY, script=SLOW, faults=Faults())
        assert [m.identifier for m in await client.llm.list_loaded()] == [KEY]
        assert client.llm._connection().connects == 2


async def test_silent_prediction_times_out(server: BackgroundServer) -> None:
    server.set_script(KEY, script=SLOW, faults=Faults(never_answer=True))
    async with AsyncClient(server.url) as client:
        await client.llm.model(KEY)
        with pytest.raises(LMStudioTimeoutError, match=r"nothing for 0\.5 s"):
            async with predict(client, idle_timeout=0.5) as channel:
                async for _ in channel:
                    pass
        assert channel.cancel_requested


async def test_unknown_endpoint_times_out_instead_of_hanging(server: BackgroundServer) -> None:
    nothing = RpcSpec("system", "noSuchEndpoint", None, None)
    async with AsyncClient(server.url) as client:
        with pytest.raises(LMStudioTimeoutError, match="the server warned"):
            await client.system._connection().call(nothing, timeout=0.5)
        assert (await client.system.version()).version  # the socket is fine


async def test_killed_server_fails_work_in_flight_then_reconnects_to_a_new_one() -> None:
    models = (scripted_model(KEY, script=SLOW),)
    first = BackgroundServer(ServerOptions(port=0, models=models)).start()
    port = first.port
    async with AsyncClient(first.url) as client:
        await client.llm.model(KEY)
        consumed: list[Any] = []
        with anyio.fail_after(20), pytest.raises(LMStudioConnectionError):
            async with predict(client) as channel:
                async for packet in channel:
                    consumed.append(packet)
                    if len(consumed) == 2:
                        await anyio.to_thread.run_sync(first.stop)
        with pytest.raises(LMStudioConnectionError) as caught:
            await client.llm.list_loaded()
        assert caught.value.attempts[0][0] == f"ws://127.0.0.1:{port}/llm"
        with BackgroundServer(ServerOptions(port=port, models=models)):
            with anyio.fail_after(10):
                assert await client.llm.list_loaded() == []  # after the backoff
            assert (await client.system.version()).version


async def test_closing_leaves_no_task_thread_or_file_descriptor(server: BackgroundServer) -> None:
    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    async def session() -> None:
        async with AsyncClient(server.url) as client:
            await client.system.version()
            await client.llm.model(KEY)
            async with predict(client) as channel:
                await channel.receive()

    await session()  # warm up: imports, the loaded model
    tasks, threads, before = len(anyio.get_running_tasks()), threading.active_count(), fds()
    for _ in range(10):
        await session()
    assert len(anyio.get_running_tasks()) == tasks
    assert threading.active_count() == threads
    # Two sockets per session: a leak would show as 20 or more; the server thread may not
    # have closed its last ends yet.
    assert fds() - before < 4
