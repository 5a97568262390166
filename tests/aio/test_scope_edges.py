"""Leaving a scope at its edges (#11 hole 1): a channel the server never saw.

A stream started inside a scope that is already cancelled, or cancelled while it waits to
write its ``channelCreate``, was never seen by the server: leaving it sends no cancel and
waits for nothing. A channel whose create may have gone out still gets the cancel and the
bounded wait for the server's end. Over the in-memory transport with the fake server, on
asyncio, Trio and Trio's autojump clock.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from _fake_server import FakeServer, ServerChannel, backend, connected, llm_instance
from _fake_server import stream_until_cancelled as predict_until_cancelled

from lmstudio_sdk.protocol.endpoints import llm

# pytest.raises() wraps a whole task group on purpose: the failure comes out of its exit.
# ruff: noqa: PT012

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import ExceptionGroup

MODEL = "smollm2-135m-instruct"
BACKENDS = pytest.mark.parametrize("anyio_backend", ["asyncio", "trio", "autojump"], indirect=True)
#: A generous stall bound (seconds): the bug took the whole 5 s drain bound.
PROMPT = 2.0


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    return backend(request.param)


def fake_server() -> FakeServer:
    server = FakeServer()

    async def already_loaded(ch: ServerChannel) -> None:
        await ch.send(llm.GetOrLoadAlreadyLoaded(llm_instance(MODEL)))

    async def wait_for_cancel(ch: ServerChannel) -> None:
        await ch.cancelled.wait()

    server.channels["llm.getOrLoad"] = already_loaded
    server.channels["llm.predict"] = predict_until_cancelled
    server.channels["llm.loadModel"] = wait_for_cancel
    server.channels["repository.downloadModel"] = wait_for_cancel
    server.channels["diagnostics.streamLogs"] = wait_for_cancel
    return server


def creates(server: FakeServer, namespace: str, endpoint: str) -> int:
    return sum(
        1
        for frame in server.received(namespace)
        if frame.get("type") == "channelCreate" and frame.get("endpoint") == endpoint
    )


async def respond(model: Any) -> None:
    await model.respond("x")


async def respond_stream(model: Any) -> None:
    async with model.respond_stream("x") as stream:
        async for _ in stream:
            pass


async def complete(model: Any) -> None:
    await model.complete("x")


@BACKENDS
@pytest.mark.parametrize("start", [respond, respond_stream, complete])
async def test_a_prediction_started_in_a_cancelled_scope_returns_at_once_and_silently(
    start: Callable[[Any], Awaitable[None]], caplog: pytest.LogCaptureFixture
) -> None:
    server = fake_server()
    async with connected(server) as client:
        model = await client.llm.model(MODEL)
        with caplog.at_level(logging.WARNING, logger="lmstudio_sdk"):
            begin = anyio.current_time()
            with anyio.CancelScope() as scope:
                scope.cancel()
                await start(model)
            elapsed = anyio.current_time() - begin
        assert elapsed < PROMPT
        assert caplog.records == []
        assert creates(server, "llm", "predict") == 0
        assert server.cancels == []
        # The socket is fine and the withdrawn channel left nothing behind.
        assert client.llm._connection()._socket.channels == {}
        assert client.llm._connection()._socket.session.open_channels == ()


async def load(client: Any) -> None:
    async with client.llm.load_stream(MODEL) as loading:
        async for _ in loading:
            pass


async def download(client: Any) -> None:
    await client.repository.download("some/model")


async def stream_logs(client: Any) -> None:
    async with client.diagnostics.stream_logs() as logs:
        async for _ in logs:
            pass


@BACKENDS
@pytest.mark.parametrize(
    ("start", "namespace"),
    [(load, "llm"), (download, "repository"), (stream_logs, "diagnostics")],
)
async def test_loads_downloads_and_log_streams_in_a_cancelled_scope_send_nothing(
    start: Callable[[Any], Awaitable[None]], namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = fake_server()
    async with connected(server) as client:
        await getattr(client, namespace)._connection()._get_socket()  # connected already
        with caplog.at_level(logging.WARNING, logger="lmstudio_sdk"):
            begin = anyio.current_time()
            with anyio.CancelScope() as scope:
                scope.cancel()
                await start(client)
            elapsed = anyio.current_time() - begin
        assert elapsed < PROMPT
        assert caplog.records == []
        assert server.cancels == []
        assert all(frame.get("type") != "channelCreate" for frame in server.received(namespace))


@BACKENDS
async def test_a_task_group_whose_child_fails_while_predictions_start_exits_promptly(
    anyio_backend: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = fake_server()
    async with connected(server) as client:
        model = await client.llm.model(MODEL)

        async def fail() -> None:
            raise ValueError("a sibling failed")

        with caplog.at_level(logging.WARNING, logger="lmstudio_sdk"):
            begin = anyio.current_time()
            with pytest.raises(ExceptionGroup) as caught:
                async with anyio.create_task_group() as tg:
                    for _ in range(3):
                        tg.start_soon(model.respond, "x")
                    tg.start_soon(fail)
            elapsed = anyio.current_time() - begin
        assert caught.group_contains(ValueError, match="a sibling failed")
        if anyio_backend[1]:  # the autojump clock: the Done-when figure of #11, exactly
            assert elapsed < 0.5
        else:
            assert elapsed < PROMPT
        assert caplog.records == []
        # Every create that reached the server was cancelled; the others never went out.
        assert len(server.cancels) == creates(server, "llm", "predict")
        assert client.llm._connection()._socket.channels == {}
