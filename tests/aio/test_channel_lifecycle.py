"""The channel lifecycle: one enum, its transitions in one table (``ChannelState``).

A channel fed by hand with a stand-in for its socket, so each step is visible: what the
channel asks the socket to do (cancel, withdraw, release) and in which state it ends up.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest
from _fake_server import backend, fragment, success

from lmstudio_sdk._async.channel import Channel, ChannelState
from lmstudio_sdk.protocol.endpoints import llm, system


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    return backend(request.param)


class Socket:
    """Records what the channel asks of its socket."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def send_channel_packet(self, channel_id: int, packet: Any) -> None:
        self.calls.append("send")

    async def send_cancel(self, channel_id: int) -> bool:
        self.calls.append("cancel")
        return True

    def schedule_cancel(self, channel_id: int) -> None:
        self.calls.append("cancel soon")

    def release_channel(self, channel_id: int, *, listening: bool) -> None:
        self.calls.append("release, still listening" if listening else "release")

    def withdraw_channel(self, channel_id: int) -> None:
        self.calls.append("withdraw")


async def test_a_channel_never_sent_is_withdrawn_without_a_cancel() -> None:
    socket = Socket()
    channel: Channel[Any] = Channel(llm.PREDICT, 1, socket)
    assert channel.state is ChannelState.UNSENT
    await channel._leave(drain_timeout=5)
    assert channel.state is ChannelState.ABANDONED
    assert channel.ended
    assert not channel.cancel_requested
    assert socket.calls == ["withdraw"]


async def test_cancel_then_the_servers_end() -> None:
    socket = Socket()
    channel: Channel[Any] = Channel(llm.PREDICT, 1, socket)
    channel._create_sent()
    assert channel.state is ChannelState.OPEN
    channel._feed(fragment("a"))
    await channel.aclose()
    assert channel.state is ChannelState.CANCELLING
    await channel.aclose()  # once is enough
    assert socket.calls == ["cancel"]
    channel._feed(success("userStopped"))  # the server's last packet still arrives
    channel._close_from_server()
    assert channel.state is ChannelState.ENDED
    channel._fail_from_server(RuntimeError("late"))  # a late end changes nothing
    assert channel.state is ChannelState.ENDED
    await channel._leave(drain_timeout=5)
    assert socket.calls == ["cancel", "release"]
    assert len(channel.final_packets) == 2


async def test_a_server_that_ignores_the_cancel_is_abandoned_after_the_drain_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    socket = Socket()
    channel: Channel[Any] = Channel(llm.PREDICT, 1, socket)
    channel._create_sent()
    with caplog.at_level(logging.WARNING, logger="lmstudio_sdk"), anyio.fail_after(5):
        await channel._leave(drain_timeout=0.05)
    assert channel.state is ChannelState.ABANDONED
    assert channel.cancel_requested
    assert socket.calls == ["cancel", "release, still listening"]
    assert "did not end the channel within 0.05 s" in caplog.text


async def test_an_endpoint_without_a_cancel_packet_is_just_left() -> None:
    socket = Socket()
    channel: Channel[Any] = Channel(system.ALIVE, 1, socket)
    channel._create_sent()
    await channel.aclose()  # nothing can end it early
    assert channel.state is ChannelState.OPEN
    await channel._leave(drain_timeout=5)
    assert channel.state is ChannelState.ABANDONED
    assert socket.calls == ["release, still listening"]


async def test_a_transition_that_cannot_happen_is_a_bug_not_a_silent_change() -> None:
    channel: Channel[Any] = Channel(llm.PREDICT, 1, Socket())
    channel._create_sent()
    with pytest.raises(RuntimeError, match="'sent' cannot happen in state 'open'"):
        channel._create_sent()
    assert channel.state is ChannelState.OPEN
