"""Merging under a stalled reader is linear and never holds up the socket (#11 hole 4).

The structural check counts the work the merge rule does per packet (a pairwise text
concatenation, as before the fix, copies the text again for every fragment: quadratic); the
end-to-end check floods a prediction nobody reads while an RPC on the same socket answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
import attrs
import pytest
from _fake_server import (
    FakeServer,
    ServerChannel,
    backend,
    connected,
    fragment,
    llm_instance,
    predict_parameter,
    success,
)

from lmstudio_sdk._async.channel import Channel
from lmstudio_sdk.protocol.endpoints import llm
from lmstudio_sdk.protocol.merging import Merge, MergeRule


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    return backend(request.param)


class _Owner:
    """A socket stand-in for a channel fed by hand (nothing is sent in these tests)."""

    def __init__(self) -> None:
        self.cancels = 0

    async def send_channel_packet(self, channel_id: int, packet: Any) -> None:
        raise AssertionError("nothing is sent")

    async def send_cancel(self, channel_id: int) -> bool:
        self.cancels += 1
        return True

    def schedule_cancel(self, channel_id: int) -> None:
        self.cancels += 1

    def release_channel(self, channel_id: int, *, listening: bool) -> None:
        pass

    def withdraw_channel(self, channel_id: int) -> None:
        pass


@attrs.define
class Counting:
    """Wraps the prediction rule; counts pairwise checks and the characters joined."""

    classified: int = 0
    joins: int = 0
    characters_joined: int = 0

    def rule(self) -> MergeRule:
        inner = llm.PREDICTION_MERGE

        def classify(previous: Any, new: Any) -> Merge:
            self.classified += 1
            return inner.classify(previous, new)

        def join(parts: Sequence[Any]) -> Any:
            self.joins += 1
            self.characters_joined += sum(len(p.fragment.content) for p in parts)
            return inner.join(parts)

        return MergeRule(classify, join)


async def flood(count: int, counting: Counting) -> list[Any]:
    channel: Channel[Any] = Channel(llm.PREDICT, 1, _Owner(), buffer_size=64, merge=counting.rule())
    channel._create_sent()
    for i in range(count):
        channel._feed(fragment(f"{i % 10}"))
    channel._close_from_server()
    return [packet async for packet in channel]


@pytest.mark.parametrize("count", [25_000, 100_000])
async def test_merging_a_stalled_stream_does_linear_work(count: int) -> None:
    counting = Counting()
    packets = await flood(count, counting)
    text = "".join(p.fragment.content for p in packets)
    assert text == "".join(f"{i % 10}" for i in range(count))  # nothing lost, in order
    assert sum(p.fragment.tokens_count for p in packets) == count
    assert len(packets) <= 64
    # Each packet is checked against its neighbour a bounded number of times, and each
    # character is copied once when the consumer reads it (not once per later fragment).
    assert counting.classified <= 2 * count
    assert counting.characters_joined <= count
    assert counting.joins <= 64


async def test_a_flood_nobody_reads_does_not_hold_up_an_rpc_on_the_same_socket() -> None:
    server = FakeServer()
    halfway = anyio.Event()
    count = 20_000

    async def flood_predict(ch: ServerChannel) -> None:
        for i in range(count):
            if i == count // 2:
                halfway.set()
            await ch.send(fragment(f"{i % 10}"))
        await ch.send(success("eosFound"))

    async def list_loaded(_: Any) -> Any:
        return [llm_instance()]

    server.channels["llm.predict"] = flood_predict
    server.rpc["llm.listLoaded"] = list_loaded
    async with connected(server) as client:
        conn = client.llm._connection()
        async with conn.open_channel(llm.PREDICT, predict_parameter(), buffer_size=16) as slow:
            await halfway.wait()
            with anyio.fail_after(5):  # a generous stall bound, not a timing assertion
                assert len(await conn.call(llm.LIST_LOADED)) == 1
            packets = [packet async for packet in slow]
    text = "".join(p.fragment.content for p in packets[:-1])
    assert text == "".join(f"{i % 10}" for i in range(count))
    assert packets[-1].stats.stop_reason == "eosFound"
