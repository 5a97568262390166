"""``server.stats``: channels open now and at the peak, total and per endpoint."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack

import anyio
from _server_helpers import (
    WAIT,
    TestClient,
    chat,
    connect,
    get_or_load,
    query,
    scripted_test_models,
    stack,
)

from lmstudio_sdk.protocol.endpoints import llm
from lmstudio_sdk.protocol.endpoints.llm import PredictCreationParameter
from lmstudio_sdk.protocol.events import ChannelClosed
from lmstudio_sdk.server import BackgroundServer, Script, scripted_model

LONG = "long-llm"  # 100,000 fragments at 100 per second: open until cancelled
CLIENTS = 4
PER_CLIENT = 10


async def test_peak_open_channels_counts_concurrent_predictions(
    server_factory: Callable[..., BackgroundServer],
) -> None:
    long = scripted_model(
        LONG,
        script=Script(fragments=("x ",) * 100_000, fragments_per_second=100),
        max_context_length=200_000,
    )
    server = server_factory(models=[*scripted_test_models(), long])
    n = CLIENTS * PER_CLIENT
    async with connect(server, "llm") as loader:
        await get_or_load(loader, LONG)
    assert server.stats.channels_opened >= 1  # the getOrLoad channel
    assert server.stats.open_channels == 0
    server.stats.reset()
    assert (server.stats.peak_open_channels, server.stats.channels_opened) == (0, 0)

    opened = 0
    all_open = anyio.Event()  # every channel has sent a packet: all are open at once
    checked = anyio.Event()  # the test has looked at the counters: cancel them all

    async def run_client(client: TestClient) -> None:
        nonlocal opened
        channels = [
            await client.open(
                llm.PREDICT, PredictCreationParameter(query(LONG), chat("Hi"), stack())
            )
            for _ in range(PER_CLIENT)
        ]
        # A packet on a channel means its handler runs: it is counted as open.
        for channel in channels:
            await client.next_on(channel)
        opened += len(channels)
        if opened == n:
            all_open.set()
        await checked.wait()
        for channel in channels:
            await client.cancel(channel)
        for channel in channels:
            _, end = await client.until_end(channel)
            assert isinstance(end, ChannelClosed), end

    async with AsyncExitStack() as stack_of_clients:
        clients = [
            await stack_of_clients.enter_async_context(connect(server, "llm"))
            for _ in range(CLIENTS)
        ]
        async with anyio.create_task_group() as tg:
            for client in clients:
                tg.start_soon(run_client, client)
            with anyio.fail_after(WAIT):
                await all_open.wait()
            snapshot = server.stats.snapshot()
            checked.set()
        assert snapshot.open_channels == n
        assert snapshot.peak_open_channels >= n
        assert snapshot.open_by_endpoint == {"llm.predict": n}
        assert snapshot.peak_open_by_endpoint == {"llm.predict": n}
        assert snapshot.opened_by_endpoint == {"llm.predict": n}
        # Every channel has ended towards its client: none is counted any more.
        after = server.stats.snapshot()
        assert after.open_channels == 0
        assert after.open_by_endpoint == {}
        assert after.peak_open_channels >= n
        assert after.channels_opened == n

    server.stats.reset()
    assert (server.stats.peak_open_channels, server.stats.channels_opened) == (0, 0)
