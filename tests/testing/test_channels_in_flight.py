"""``assert_no_open_channels`` sees a channel whose create frame is still on its way.

A test that opens a stream on its last line and leaks it must fail, even when the server
has not read the create frame yet when the check starts.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import anyio.to_thread
import pytest

from lmstudio_sdk import AsyncClient
from lmstudio_sdk.server import BackgroundServer, ServerOptions, scripted_model
from lmstudio_sdk.testing import assert_no_open_channels

ROUNDS = 10


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(ServerOptions(port=0, models=(scripted_model(),))) as server:
        yield server


async def test_a_channel_opened_just_before_the_check_is_seen(
    server: BackgroundServer, anyio_backend: object
) -> None:
    async with AsyncClient(server.url) as client:
        await client.system.version()  # connected: only the create frame is left to send
        for _ in range(ROUNDS):
            async with client.diagnostics.stream_logs():
                # No waiting for the server: the check itself must catch up with the client.
                with pytest.raises(AssertionError, match=r"diagnostics\.streamLogs \(1\)"):
                    await anyio.to_thread.run_sync(
                        lambda: assert_no_open_channels(server, within=0.2)
                    )
            # Left the block: the stream is cancelled, and the check passes again.
            await anyio.to_thread.run_sync(assert_no_open_channels, server)
