"""The worst case of leaving a scope when the server ignores the cancel (#11 item 5).

Each way of leaving a stream's scope costs at most "the deadline that fired + the drain
bound", and ``drain_timeout=`` per call overrides the client's. The server here never
answers a cancel (it sends one packet, then nothing). On Trio's autojump clock over the
in-memory transport, so the virtual times are exact; the shape of each case is also run
once on the real backends with a generous stall bound.
"""

# pytest.raises() wraps whole scopes on purpose: the error comes out of the scope's exit.
# ruff: noqa: PT012

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from _fake_server import FakeServer, ServerChannel, backend, connected, fragment, llm_instance

from lmstudio_sdk import LMStudioTimeoutError
from lmstudio_sdk._async.channel import DEFAULT_DRAIN_TIMEOUT
from lmstudio_sdk.protocol.endpoints import llm

MODEL = "smollm2-135m-instruct"
DRAIN = 0.3  # per call, well under the client's default
DEADLINE = 1.0


@pytest.fixture(params=["autojump", "asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    return backend(request.param)


def deaf_server() -> FakeServer:
    server = FakeServer()

    async def already_loaded(ch: ServerChannel) -> None:
        await ch.send(llm.GetOrLoadAlreadyLoaded(llm_instance(MODEL)))

    async def deaf_predict(ch: ServerChannel) -> None:
        await ch.send(fragment("only"))
        await anyio.sleep_forever()  # ignores the cancel

    async def deaf(ch: ServerChannel) -> None:
        await anyio.sleep_forever()

    server.channels["llm.getOrLoad"] = already_loaded
    server.channels["llm.predict"] = deaf_predict
    server.channels["llm.loadModel"] = deaf
    server.channels["repository.downloadModel"] = deaf
    server.channels["diagnostics.streamLogs"] = deaf
    return server


# Each way out: (leave(model, client), the deadline that fired before the drain began).


async def end_of_block(model: Any, client: Any) -> None:
    async with model.respond_stream("x", drain_timeout=DRAIN) as stream:
        await stream.receive()


async def break_out(model: Any, client: Any) -> None:
    async with model.respond_stream("x", drain_timeout=DRAIN) as stream:
        async for _ in stream:
            break


async def exception(model: Any, client: Any) -> None:
    with pytest.raises(KeyError):
        async with model.respond_stream("x", drain_timeout=DRAIN) as stream:
            await stream.receive()
            raise KeyError("mine")


async def move_on_after(model: Any, client: Any) -> None:
    with anyio.move_on_after(DEADLINE) as scope:
        await model.respond("x", drain_timeout=DRAIN)
    assert scope.cancelled_caught


async def fail_after(model: Any, client: Any) -> None:
    with pytest.raises(TimeoutError):
        with anyio.fail_after(DEADLINE):
            await model.complete("x", drain_timeout=DRAIN)


async def task_group_cancelled(model: Any, client: Any) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: model.respond("x", drain_timeout=DRAIN))
        await anyio.sleep(DEADLINE)
        tg.cancel_scope.cancel()


async def idle_timeout(model: Any, client: Any) -> None:
    with pytest.raises(LMStudioTimeoutError, match="sent nothing"):
        await model.respond("x", timeout=DEADLINE, drain_timeout=DRAIN)


async def load_cut(model: Any, client: Any) -> None:
    with anyio.move_on_after(DEADLINE):
        await client.llm.load(MODEL, drain_timeout=DRAIN)


async def download_cut(model: Any, client: Any) -> None:
    with anyio.move_on_after(DEADLINE):
        await client.repository.download("some/model", drain_timeout=DRAIN)


async def log_stream_cut(model: Any, client: Any) -> None:
    with anyio.move_on_after(DEADLINE):
        async with client.diagnostics.stream_logs(drain_timeout=DRAIN) as logs:
            async for _ in logs:
                pass


WAYS_OUT: list[tuple[Callable[[Any, Any], Awaitable[None]], float]] = [
    (end_of_block, 0.0),
    (break_out, 0.0),
    (exception, 0.0),
    (move_on_after, DEADLINE),
    (fail_after, DEADLINE),
    (task_group_cancelled, DEADLINE),
    (idle_timeout, DEADLINE),
    (load_cut, DEADLINE),
    (download_cut, DEADLINE),
    (log_stream_cut, DEADLINE),
]


@pytest.mark.parametrize(("leave", "deadline"), WAYS_OUT, ids=[w.__name__ for w, _ in WAYS_OUT])
async def test_leaving_costs_at_most_the_deadline_plus_the_drain_bound(
    leave: Callable[[Any, Any], Awaitable[None]],
    deadline: float,
    anyio_backend: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = deaf_server()
    async with connected(server) as client:
        model = await client.llm.model(MODEL)
        with caplog.at_level(logging.WARNING, logger="lmstudio_sdk"):
            begin = anyio.current_time()
            await leave(model, client)
            elapsed = anyio.current_time() - begin
        if anyio_backend[1]:  # the autojump clock: virtual time, exact
            assert deadline + DRAIN <= elapsed < deadline + DRAIN + 0.05
        else:  # real time: a generous stall bound, well under the client's default
            assert elapsed < deadline + DEFAULT_DRAIN_TIMEOUT
        assert len(server.cancels) == 1  # the cancel did go out
        assert any("did not end the channel within 0.3 s" in r.getMessage() for r in caplog.records)
        assert client.llm._connection().connected  # the socket stays open


@pytest.mark.parametrize("anyio_backend", ["autojump"], indirect=True)
async def test_the_client_default_applies_when_the_call_gives_none() -> None:
    server = deaf_server()
    async with connected(server) as client:
        model = await client.llm.model(MODEL)
        begin = anyio.current_time()
        with anyio.move_on_after(DEADLINE):
            await model.respond("x")
        elapsed = anyio.current_time() - begin
    assert DEADLINE + DEFAULT_DRAIN_TIMEOUT <= elapsed < DEADLINE + DEFAULT_DRAIN_TIMEOUT + 0.05


async def test_a_bad_drain_timeout_is_refused_before_anything_is_sent(anyio_backend: Any) -> None:
    server = deaf_server()
    async with connected(server) as client:
        model = await client.llm.model(MODEL)
        for bad in (0, -1, None, "2"):
            with pytest.raises(ValueError, match="drain_timeout must be a number of seconds > 0"):
                model.respond_stream("x", drain_timeout=bad)
    assert server.cancels == []
