"""Soak: thousands of predictions with random cancellations and injected faults, then nothing left.

One client per backend against one scripted server. Each prediction picks (from a seeded
random generator) a model that answers normally, fails with a server error, drops the
socket, or sends a malformed frame, and a cancellation point (none, or leaving the stream
after a few fragments). Every outcome must be the documented one. Afterwards: no open
channel on the server, no pending call or channel in the client, no extra task, thread or
file descriptor, and memory within :data:`MEMORY_BOUND` of the baseline.

Size: ``LMSDK_SOAK_PREDICTIONS`` (default 150 per backend; ``tox -e soak`` runs 5,000).
"""

from __future__ import annotations

import gc
import logging
import os
import random
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.to_thread
import pytest

from lmstudio_sdk import (
    AsyncClient,
    LMStudioConnectionError,
    LMStudioServerError,
    RemoteProtocolError,
)
from lmstudio_sdk.server import BackgroundServer, Faults, Script, ServerOptions, scripted_model

PREDICTIONS = int(os.environ.get("LMSDK_SOAK_PREDICTIONS", "150"))
MEMORY_BOUND = 64 * 2**20
"""Resident memory may grow this much over a whole soak (client and server together)."""

TEXT = Script(fragments=("one ", "two ", "three ", "four ", "five ", "six"))
MODELS = {
    "ok-llm": None,
    "error-llm": Faults(error="Scripted failure", error_after_fragments=2),
    "drop-llm": Faults(drop_socket_after_fragments=2),
    "malformed-llm": Faults(malformed_frame_after_fragments=2),
}
EXPECTED: dict[str, type[BaseException] | None] = {
    "ok-llm": None,
    "error-llm": LMStudioServerError,
    "drop-llm": LMStudioConnectionError,
    "malformed-llm": RemoteProtocolError,
}


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


POOL_THREADS = ("Trio thread", "AnyIO worker thread", "asyncio_", "ThreadPoolExecutor")


def threads() -> int:
    """Threads, minus the idle workers thread pools keep for a while by design."""
    return sum(not t.name.startswith(POOL_THREADS) for t in threading.enumerate())


def descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def server() -> Iterator[BackgroundServer]:
    models = [
        scripted_model(key, script=TEXT, faults=faults or Faults())
        for key, faults in MODELS.items()
    ]
    with BackgroundServer(ServerOptions(port=0, models=models)) as running:
        yield running


async def predict_once(client: AsyncClient, key: str, leave_after: int | None) -> str:
    """One prediction; returns the outcome's name (``ok``, ``left`` or the error class)."""
    model = await client.llm.model(key)
    try:
        async with model.respond_stream("Go") as stream:
            seen = 0
            async for _ in stream:
                seen += 1
                if leave_after is not None and seen >= leave_after:
                    break
        return "left" if leave_after is not None and seen >= leave_after else "ok"
    except (LMStudioServerError, LMStudioConnectionError, RemoteProtocolError) as exc:
        return type(exc).__name__


async def test_soak(
    server: BackgroundServer, anyio_backend: Any, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(1234)
    async with AsyncClient(server.url, timeout=30) as client:  # warm-up: load every model
        for key in MODELS:
            assert await predict_once(client, key, None) in ("ok", *_names())
    await anyio.to_thread.run_sync(server.wait_connections_closed)
    gc.collect()
    baseline = {
        "tasks": len(anyio.get_running_tasks()),
        "threads": threads(),
        "fds": descriptors(),
        "rss": rss(),
    }
    outcomes: Counter[str] = Counter()
    async with AsyncClient(server.url, timeout=30) as client:
        for _ in range(PREDICTIONS):
            key = rng.choice(list(MODELS))
            # Leave the stream after its first event (before any fault, which comes after
            # two fragments), or read it to the end.
            leave_after = rng.choice([None, None, 1])
            outcome = await predict_once(client, key, leave_after)
            expected = EXPECTED[key]
            fault_first = expected is not None and leave_after is None
            if fault_first:
                assert expected is not None
                assert outcome == expected.__name__, (key, leave_after, outcome)
            elif leave_after is None:
                assert outcome == "ok", (key, outcome)
            else:
                # Leaving waits for the server to confirm the cancel: a fault that comes
                # meanwhile is still reported (the socket broke under the stream).
                allowed = {"left"} | ({expected.__name__} if expected else set())
                assert outcome in allowed, (key, outcome)
            outcomes[f"{key}/{outcome}"] += 1
        for connection in client._connections.values():
            sock = connection._socket
            if sock is not None:
                assert sock.calls == {}
                assert sock.channels == {}
    await anyio.to_thread.run_sync(server.wait_connections_closed)
    gc.collect()
    after = {
        "tasks": len(anyio.get_running_tasks()),
        "threads": threads(),
        "fds": descriptors(),
        "rss": rss(),
    }
    print(
        f"\nsoak ({anyio_backend[0] if isinstance(anyio_backend, tuple) else anyio_backend}): "
        f"{PREDICTIONS} predictions {dict(sorted(outcomes.items()))}; "
        f"server open channels {server.stats.open_channels}; "
        f"tasks {baseline['tasks']}->{after['tasks']}, threads {baseline['threads']}->"
        f"{after['threads']}, fds {baseline['fds']}->{after['fds']}, "
        f"rss {baseline['rss'] / 2**20:.1f}->{after['rss'] / 2**20:.1f} MiB"
    )
    assert server.stats.open_channels == 0
    assert after["tasks"] == baseline["tasks"]
    assert after["threads"] == baseline["threads"]
    assert after["fds"] == baseline["fds"]
    assert after["rss"] - baseline["rss"] < MEMORY_BOUND
    assert sum(outcomes.values()) == PREDICTIONS
    # Nothing went wrong that the server did not mean (a handler's crash is logged as ERROR).
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def _names() -> tuple[str, ...]:
    return tuple(e.__name__ for e in EXPECTED.values() if e is not None)
