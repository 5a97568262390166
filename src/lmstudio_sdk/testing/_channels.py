"""Checking that a test left no channel open on the local server.

A channel the client forgot (a stream never closed, a task still reading logs) keeps
running on the server: in LM Studio a prediction that goes on burning the GPU. The server's
:attr:`~lmstudio_sdk.server.BackgroundServer.stats` count the channels whose handler runs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from ..server import BackgroundServer

__all__ = ["assert_no_open_channels", "open_channels_beyond"]


def open_channels_beyond(server: BackgroundServer, baseline: Mapping[str, int]) -> dict[str, int]:
    """``{endpoint: count}`` of the channels open now beyond ``baseline`` (a snapshot's
    ``open_by_endpoint``)."""
    now = server.stats.snapshot().open_by_endpoint
    return {
        endpoint: count - baseline.get(endpoint, 0)
        for endpoint, count in sorted(now.items())
        if count > baseline.get(endpoint, 0)
    }


def assert_no_open_channels(
    server: BackgroundServer,
    *,
    baseline: Mapping[str, int] | None = None,
    within: float = 2.0,
) -> None:
    """Fail unless no channel is open on ``server`` (beyond ``baseline``).

    Channels whose create frame is still on its way count: the server first handles
    everything its clients sent before the call (their event loops must be running to
    answer its ping). A channel the client has just cancelled may take the server a
    moment to end, so the check waits up to ``within`` seconds for the count to drop. It
    blocks the calling thread: in an async test, run it in a worker thread
    (``await anyio.to_thread.run_sync(assert_no_open_channels, server)``) so that the
    client's event loop can still send its cancels.

    :raises AssertionError: naming the endpoints with channels left open, and how many.
    """
    deadline = time.monotonic() + within
    # A stream opened on a test's last line: its create frame may not have reached the
    # server yet. Catch up with every client first (a ping round trip on each socket).
    server.caught_up(within)
    while True:
        left = open_channels_beyond(server, baseline or {})
        if not left:
            return
        if time.monotonic() >= deadline:
            listed = ", ".join(f"{endpoint} ({count})" for endpoint, count in left.items())
            raise AssertionError(
                f"channels left open on the server: {listed}. A stream or a prediction was "
                "not closed: use `async with` / `with` around streams (leaving the block "
                "cancels them on the server), and close clients and tasks that read logs"
            )
        time.sleep(0.01)  # polling a counter of another thread: nothing to wait on
