"""Channels: streaming, every way of leaving the scope, inactivity timeouts, backpressure.

Over the in-memory transport with the fake server in the same loop, on asyncio and Trio;
the timing scenarios also on Trio's autojump clock. The server side records every cancel
packet it receives (``server.cancels``), so each cancellation test shows that the cancel
reached the server, and that the client reports the ``userStopped`` the server sent.
"""

# pytest.raises() wraps whole channel scopes on purpose: the error must come out of the
# scope's exit, after the cancel reached the server.
# ruff: noqa: PT012

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest
from _fake_server import (
    FakeServer,
    ServerChannel,
    backend,
    connected,
    fragment,
    llm_info,
    llm_instance,
    predict_parameter,
    stream_until_cancelled,
    success,
)

from lmstudio_sdk import (
    Channel,
    LMStudioChannelOverflowError,
    LMStudioServerError,
    LMStudioTimeoutError,
    RemoteProtocolError,
)
from lmstudio_sdk.protocol.codec import Unknown, dumps
from lmstudio_sdk.protocol.endpoints import diagnostics, llm, shared
from lmstudio_sdk.protocol.kv import KVConfigLayer, KVConfigStack


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    return backend(request.param)


TIMING = pytest.mark.parametrize("anyio_backend", ["asyncio", "trio", "autojump"], indirect=True)


def predict(client: Any, **options: Any) -> Any:
    return client.llm._connection().open_channel(llm.PREDICT, predict_parameter(), **options)


def texts(packets: Any) -> list[str]:
    return [p.fragment.content for p in packets if isinstance(p, llm.PredictFragment)]


def assert_stopped_by_user(server: FakeServer, channel: Channel[Any], consumed: list[Any]) -> None:
    """The cancel reached the server, the client kept the server's userStopped, and
    consumed + final packets together are everything the server sent."""
    assert server.cancels == ["llm.predict"]
    final = channel.final_packets
    assert isinstance(final[-1], llm.PredictSuccess)
    assert final[-1].stats.stop_reason == "userStopped"
    assert texts([*consumed, *final]) == ["tok0 ", "tok1 ", "tok2 "]


# ---------------------------------------------------------------------------- streaming


async def test_stream_ends_at_channel_close_and_sends_no_cancel() -> None:
    server = FakeServer()

    async def full(ch: ServerChannel) -> None:
        for word in ("Hello", " world"):
            await ch.send(fragment(word))
        await ch.send(success("eosFound"))

    server.channels["llm.predict"] = full
    async with connected(server) as client:
        async with predict(client) as channel:
            packets = [packet async for packet in channel]
        with pytest.raises(anyio.ClosedResourceError):
            await channel.receive()
    assert texts(packets) == ["Hello", " world"]
    assert packets[-1].stats.stop_reason == "eosFound"
    assert channel.final_packets == ()
    assert server.cancels == []  # cancelling after the end is a no-op


async def test_channel_error_comes_after_the_buffered_packets() -> None:
    server = FakeServer()

    async def failing(ch: ServerChannel) -> None:
        await ch.send(fragment("partial"))
        raise LMStudioServerError("Model crashed", cause="out of memory")

    server.channels["llm.predict"] = failing
    async with connected(server) as client:
        got: list[Any] = []
        with pytest.raises(LMStudioServerError, match="Model crashed") as caught:
            async with predict(client) as channel:
                async for packet in channel:
                    got.append(packet)
    assert texts(got) == ["partial"]
    assert caught.value.cause == "out of memory"
    assert caught.value.endpoint == "llm.predict"
    assert server.cancels == []


async def test_unknown_packet_types_reach_the_consumer_as_unknown() -> None:
    server = FakeServer()

    async def newer_server(ch: ServerChannel) -> None:
        frame = {"type": "channelSend", "channelId": ch.channel_id, "message": {"type": "x"}}
        await ch.connection.send_raw(dumps(frame))
        await ch.send(success("eosFound"))

    server.channels["llm.predict"] = newer_server
    async with connected(server) as client, predict(client) as channel:
        packets = [packet async for packet in channel]
    assert isinstance(packets[0], Unknown)
    assert packets[0].type == "x"
    assert isinstance(packets[1], llm.PredictSuccess)


# ---------------------------------------------------------------------------- leaving the scope


async def test_break_cancels_on_the_server() -> None:
    server = FakeServer()
    server.channels["llm.predict"] = stream_until_cancelled
    server.rpc["llm.listLoaded"] = _returning([])
    consumed: list[Any] = []
    async with connected(server) as client:
        async with predict(client) as channel:
            async for packet in channel:
                consumed.append(packet)
                break
        assert channel.cancel_requested
        assert channel.ended
        assert_stopped_by_user(server, channel, consumed)
        assert await client.llm._connection().call(llm.LIST_LOADED) == []


async def test_end_of_block_before_the_end_cancels_on_the_server() -> None:
    server = FakeServer()
    server.channels["llm.predict"] = stream_until_cancelled
    async with connected(server) as client, predict(client) as channel:
        consumed = [await channel.receive()]
    assert_stopped_by_user(server, channel, consumed)


async def test_exception_in_block_cancels_and_propagates_unchanged() -> None:
    server = FakeServer()
    server.channels["llm.predict"] = stream_until_cancelled

    class Boom(Exception):
        pass

    boom = Boom()
    consumed: list[Any] = []
    async with connected(server) as client:
        with pytest.raises(Boom) as caught:
            async with predict(client) as channel:
                consumed.append(await channel.receive())
                raise boom
    assert caught.value is boom
    assert_stopped_by_user(server, channel, consumed)


@TIMING
async def test_move_on_after_cancels_on_the_server() -> None:
    server = FakeServer()
    server.channels["llm.predict"] = stream_until_cancelled
    consumed: list[Any] = []
    async with connected(server) as client:
        with anyio.move_on_after(0.2) as scope:
            async with predict(client) as channel:
                async for packet in channel:  # the third fragment is followed by silence
                    consumed.append(packet)
        assert scope.cancelled_caught
    assert_stopped_by_user(server, channel, consumed)
    assert texts(consumed) == ["tok0 ", "tok1 ", "tok2 "]


@TIMING
async def test_fail_after_cancels_on_the_server_and_raises_timeout_error() -> None:
    server = FakeServer()
    server.channels["llm.predict"] = stream_until_cancelled
    consumed: list[Any] = []
    async with connected(server) as client:
        with pytest.raises(TimeoutError), anyio.fail_after(0.2):
            async with predict(client) as channel:
                async for packet in channel:
                    consumed.append(packet)
    assert_stopped_by_user(server, channel, consumed)


async def test_cancelling_the_enclosing_task_group_cancels_on_the_server() -> None:
    server = FakeServer()
    server.channels["llm.predict"] = stream_until_cancelled
    consumed: list[Any] = []
    boxes: list[Channel[Any]] = []
    async with connected(server) as client:
        got_two = anyio.Event()

        async def consume() -> None:
            async with predict(client) as channel:
                boxes.append(channel)
                async for packet in channel:
                    consumed.append(packet)
                    if len(consumed) == 2:
                        got_two.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await got_two.wait()
            tg.cancel_scope.cancel()
    assert_stopped_by_user(server, boxes[0], consumed)


async def test_keyboard_interrupt_cancels_on_the_server_and_propagates() -> None:
    server = FakeServer()
    server.channels["llm.predict"] = stream_until_cancelled
    consumed: list[Any] = []
    async with connected(server) as client:
        with pytest.raises(KeyboardInterrupt):
            async with predict(client) as channel:
                consumed.append(await channel.receive())
                raise KeyboardInterrupt
    assert_stopped_by_user(server, channel, consumed)


async def test_aclose_cancels_now_and_the_stream_ends_with_the_servers_answer() -> None:
    server = FakeServer()
    server.channels["llm.predict"] = stream_until_cancelled
    async with connected(server) as client, predict(client) as channel:
        consumed = [await channel.receive()]
        await channel.aclose()
        assert channel.cancel_requested
        consumed.extend([packet async for packet in channel])
    assert server.cancels == ["llm.predict"]
    assert texts(consumed) == ["tok0 ", "tok1 ", "tok2 "]
    assert consumed[-1].stats.stop_reason == "userStopped"
    assert channel.final_packets == ()


@TIMING
async def test_drain_is_bounded_when_the_server_ignores_the_cancel(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = FakeServer()

    async def deaf(ch: ServerChannel) -> None:
        await ch.send(fragment("only"))
        await anyio.sleep_forever()

    server.channels["llm.predict"] = deaf
    server.rpc["llm.listLoaded"] = _returning([])
    async with connected(server, drain_timeout=0.5) as client:
        with caplog.at_level(logging.WARNING, logger="lmstudio_sdk"):
            start = anyio.current_time()
            async with predict(client) as channel:
                await channel.receive()
            elapsed = anyio.current_time() - start
        assert 0.5 <= elapsed < 5
        assert server.cancels == ["llm.predict"]
        assert any("did not end the channel" in r.getMessage() for r in caplog.records)
        # The socket is still fine.
        assert await client.llm._connection().call(llm.LIST_LOADED) == []


async def test_endpoint_without_cancel_packet_just_stops_listening() -> None:
    from lmstudio_sdk.protocol.endpoints import system

    server = FakeServer()

    async def alive(ch: ServerChannel) -> None:
        await anyio.sleep_forever()

    server.channels["system.alive"] = alive
    async with connected(server) as client:
        async with client.system._connection().open_channel(system.ALIVE) as channel:
            await anyio.wait_all_tasks_blocked()
        assert channel.ended
        assert not channel.cancel_requested
    assert server.cancels == []


# ---------------------------------------------------------------------------- inactivity


@TIMING
async def test_silent_channel_times_out_and_is_cancelled() -> None:
    server = FakeServer()
    server.channels["llm.predict"] = stream_until_cancelled
    consumed: list[Any] = []
    async with connected(server) as client:
        with pytest.raises(LMStudioTimeoutError, match=r"llm\.predict.*nothing for 0\.3 s"):
            async with predict(client, idle_timeout=0.3) as channel:
                async for packet in channel:
                    consumed.append(packet)
    assert_stopped_by_user(server, channel, consumed)


@TIMING
async def test_long_stream_that_keeps_talking_never_times_out() -> None:
    server = FakeServer()

    async def slow_but_steady(ch: ServerChannel) -> None:
        for i in range(10):  # 10 x 0.1 s = 1 s in all, over an idle timeout of 0.5 s
            await anyio.sleep(0.1)
            await ch.send(fragment(str(i)))
        await ch.send(success("eosFound"))

    server.channels["llm.predict"] = slow_but_steady
    async with connected(server) as client, predict(client, idle_timeout=0.5) as channel:
        start = anyio.current_time()
        packets = [packet async for packet in channel]
        assert anyio.current_time() - start >= 0.99
    assert texts(packets) == [str(i) for i in range(10)]


@TIMING
async def test_client_timeout_is_the_default_idle_timeout() -> None:
    server = FakeServer()
    server.channels["llm.predict"] = stream_until_cancelled
    async with connected(server, timeout=0.3) as client:
        with pytest.raises(LMStudioTimeoutError):
            async with predict(client) as channel:
                async for _ in channel:
                    pass
    assert server.cancels == ["llm.predict"]


@TIMING
async def test_a_sooner_idle_deadline_is_kept_while_a_later_one_waits() -> None:
    # On Trio one watch times out every waiting channel (_waiting._IdleWatch): a channel
    # with a short idle timeout opened while another waits on a long one must not wait
    # for the long one's deadline.
    server = FakeServer()
    server.channels["llm.predict"] = stream_until_cancelled
    async with connected(server) as client, predict(client, idle_timeout=30) as patient:
        assert texts([await patient.receive() for _ in range(3)]) == ["tok0 ", "tok1 ", "tok2 "]
        async with anyio.create_task_group() as tg:
            tg.start_soon(patient.receive)  # waits, under a 30 s deadline
            await anyio.wait_all_tasks_blocked()
            start = anyio.current_time()
            with pytest.raises(LMStudioTimeoutError, match=r"nothing for 0\.3 s"):
                async with predict(client, idle_timeout=0.3) as hasty:
                    async for _ in hasty:
                        pass
            assert anyio.current_time() - start < 30  # failed on its own deadline
            assert not patient.ended  # the patient one still waits
            tg.cancel_scope.cancel()


# ---------------------------------------------------------------------------- backpressure


async def test_slow_consumer_does_not_stall_other_channels_or_calls() -> None:
    server = FakeServer()
    flood_sent = anyio.Event()

    async def flood(ch: ServerChannel) -> None:
        for i in range(500):
            await ch.send(fragment(f"{i},"))
        flood_sent.set()
        await ch.send(success("eosFound"))

    async def short(ch: ServerChannel) -> None:
        for word in ("a", "b", "c"):
            await ch.send(fragment(word))
        await ch.send(success("eosFound"))

    server.channels["llm.predict"] = flood
    server.channels["llm.completeRawText"] = short
    server.rpc["llm.listLoaded"] = _returning([llm_instance()])
    async with connected(server) as client:
        conn = client.llm._connection()
        async with conn.open_channel(llm.PREDICT, predict_parameter(), buffer_size=16) as slow:
            # Nobody reads `slow`; meanwhile everything else on the socket flows.
            await flood_sent.wait()
            await anyio.wait_all_tasks_blocked()
            raw = llm.CompleteRawTextCreationParameter(
                shared.ModelSpecifierQuery(shared.ModelQuery()),
                "x",
                _empty_stack(),
            )
            async with conn.open_channel(llm.COMPLETE_RAW_TEXT, raw) as fast:
                fast_packets = [packet async for packet in fast]
            assert texts(fast_packets) == ["a", "b", "c"]
            assert len(await conn.call(llm.LIST_LOADED)) == 1
            # Now the slow consumer reads: nothing was lost, fragments were coalesced.
            slow_packets = [packet async for packet in slow]
    assert "".join(texts(slow_packets)) == "".join(f"{i}," for i in range(500))
    assert len(slow_packets) <= 17
    assert sum(p.fragment.tokens_count for p in slow_packets[:-1]) == 500
    assert slow_packets[-1].stats.stop_reason == "eosFound"
    assert server.connects["llm"] == 1


async def test_fragments_merge_only_with_equal_reasoning_type() -> None:
    server = FakeServer()
    sent = anyio.Event()

    async def reasoning(ch: ServerChannel) -> None:
        for _ in range(3):
            await ch.send(fragment("think ", reasoning_type="reasoning"))
        await ch.send(fragment("</think>", reasoning_type="reasoningEndTag", structural=True))
        for _ in range(3):
            await ch.send(fragment("answer "))
        sent.set()
        await ch.send(success("eosFound"))

    server.channels["llm.predict"] = reasoning
    async with connected(server) as client, predict(client, buffer_size=4) as channel:
        await sent.wait()
        await anyio.wait_all_tasks_blocked()  # the reader has buffered everything
        packets = [packet async for packet in channel]
    frags = [p.fragment for p in packets if isinstance(p, llm.PredictFragment)]
    assert [(f.content, f.tokens_count, f.reasoning_type) for f in frags] == [
        ("think think think ", 3, "reasoning"),
        ("</think>", 1, "reasoningEndTag"),
        ("answer answer answer ", 3, "none"),
    ]


async def test_progress_keeps_the_latest_when_the_consumer_lags() -> None:
    server = FakeServer()
    sent = anyio.Event()

    async def load(ch: ServerChannel) -> None:
        await ch.send(llm.LoadModelResolved(llm_info()))
        for i in range(1, 101):
            await ch.send(shared.LoadModelProgress(i / 100))
        sent.set()
        await ch.send(llm.LoadModelSuccess(llm_instance()))

    server.channels["llm.loadModel"] = load
    parameter = shared.LoadModelCreationParameter("smollm2-135m-instruct", _empty_stack())
    async with connected(server) as client:
        conn = client.llm._connection()
        async with conn.open_channel(llm.LOAD_MODEL, parameter, buffer_size=4) as channel:
            await sent.wait()
            await anyio.wait_all_tasks_blocked()
            packets = [packet async for packet in channel]
    progress = [p.progress for p in packets if isinstance(p, shared.LoadModelProgress)]
    assert progress[-1] == 1.0
    assert progress == sorted(progress)
    assert len(packets) <= 5
    assert isinstance(packets[0], llm.LoadModelResolved)
    assert isinstance(packets[-1], llm.LoadModelSuccess)


async def test_overflow_of_unmergeable_packets_fails_the_channel_and_cancels_it() -> None:
    server = FakeServer()
    sent = anyio.Event()

    def log(i: int) -> diagnostics.StreamLogsLog:
        return diagnostics.StreamLogsLog(
            diagnostics.DiagnosticsLogEvent(float(i), diagnostics.ServerLog(f"line {i}", "info"))
        )

    async def logs(ch: ServerChannel) -> None:
        i = 0
        while not ch.cancelled.is_set():
            await ch.send(log(i))
            i += 1
            if i == 6:
                sent.set()
            await anyio.lowlevel.checkpoint()

    server.channels["diagnostics.streamLogs"] = logs
    server.rpc["llm.listLoaded"] = _returning([])
    async with connected(server) as client:
        conn = client.diagnostics._connection()
        with pytest.raises(LMStudioChannelOverflowError, match="4 packets behind"):
            async with conn.open_channel(diagnostics.STREAM_LOGS, buffer_size=4) as channel:
                await sent.wait()
                await anyio.wait_all_tasks_blocked()
                await channel.receive()
        # Nothing was dropped silently: what was buffered is still there, in order.
        lines = [p.log.data.content for p in channel.final_packets]
        assert lines[:4] == ["line 0", "line 1", "line 2", "line 3"]
        assert server.cancels == ["diagnostics.streamLogs"]
        # Other namespaces and the same socket keep working.
        assert await client.llm._connection().call(llm.LIST_LOADED) == []
        async with conn.open_channel(diagnostics.STREAM_LOGS) as again:
            assert (await again.receive()).log.data.content == "line 0"


async def test_invalid_packet_fails_only_its_channel() -> None:
    server = FakeServer()

    async def broken(ch: ServerChannel) -> None:
        bad = {"type": "fragment", "fragment": {"content": 5}}
        frame = {"type": "channelSend", "channelId": ch.channel_id, "message": bad}
        await ch.connection.send_raw(dumps(frame))
        await ch.cancelled.wait()
        await ch.send(success("userStopped"))

    async def healthy(ch: ServerChannel) -> None:
        await ch.send(fragment("fine"))
        await ch.send(success("eosFound"))

    server.channels["llm.predict"] = broken
    server.channels["llm.completeRawText"] = healthy
    async with connected(server) as client:
        conn = client.llm._connection()
        with pytest.raises(RemoteProtocolError, match=r"packet of llm\.predict"):
            async with predict(client) as channel:
                await channel.receive()
        raw = llm.CompleteRawTextCreationParameter(
            shared.ModelSpecifierQuery(shared.ModelQuery()), "x", _empty_stack()
        )
        async with conn.open_channel(llm.COMPLETE_RAW_TEXT, raw) as other:
            assert texts([p async for p in other]) == ["fine"]
    assert server.cancels == ["llm.predict"]
    assert server.connects["llm"] == 1


def _empty_stack() -> KVConfigStack:
    from lmstudio_sdk.protocol.kv import KVConfig

    return KVConfigStack([KVConfigLayer("apiOverride", KVConfig())])


def _returning(value: Any) -> Any:
    async def handler(_: Any) -> Any:
        return value

    return handler
