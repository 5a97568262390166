"""Tracebacks of SDK errors stop at the SDK boundary (blocking and async API alike).

What a user sees for a wrong model key: their own line, at most a few frames inside
lmstudio_sdk, and the message. ``LMSTUDIO_SDK_DEBUG_TRACEBACKS=1`` keeps the internals.
User exceptions (from a callback) keep their full traceback.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import lmstudio_sdk
from lmstudio_sdk import AsyncClient, Client, LMStudioModelNotFoundError
from lmstudio_sdk.server import BackgroundServer, ServerOptions, scripted_model

PACKAGE = str(Path(lmstudio_sdk.__file__).parent)
MESSAGE = "lmstudio_sdk.errors.LMStudioModelNotFoundError: llm.getOrLoad: No downloaded model"
MOST_SDK_FRAMES = 3


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(ServerOptions(port=0, models=(scripted_model(),))) as running:
        yield running


def sdk_frames(exc: BaseException) -> int:
    return sum(
        frame.filename.startswith(PACKAGE) for frame in traceback.extract_tb(exc.__traceback__)
    )


def last_line(exc: BaseException) -> str:
    return traceback.format_exception(exc)[-1]


def test_blocking_api_errors_are_short_and_end_with_the_message(
    server: BackgroundServer,
) -> None:
    with Client(server.url) as client:
        with pytest.raises(LMStudioModelNotFoundError) as call:
            client.llm.model("nothing-like-this")
        model = client.llm.model("scripted-llm")
        client.llm.unload(model.identifier)
        with (
            pytest.raises(lmstudio_sdk.LMStudioServerError) as stream,
            model.respond_stream("Hi") as events,
        ):
            list(events)
    assert 1 <= sdk_frames(call.value) <= MOST_SDK_FRAMES
    assert last_line(call.value).startswith(MESSAGE)
    assert 1 <= sdk_frames(stream.value) <= MOST_SDK_FRAMES


async def test_async_api_errors_are_short_and_end_with_the_message(
    server: BackgroundServer, anyio_backend: Any
) -> None:
    async with AsyncClient(server.url) as client:
        with pytest.raises(LMStudioModelNotFoundError) as call:
            await client.llm.model("nothing-like-this")
        model = await client.llm.model("scripted-llm")
        await client.llm.unload(model.identifier)
        with pytest.raises(lmstudio_sdk.LMStudioServerError) as stream:  # noqa: PT012
            async with model.respond_stream("Hi") as events:
                async for _ in events:
                    pass
    assert 1 <= sdk_frames(call.value) <= MOST_SDK_FRAMES
    assert last_line(call.value).startswith(MESSAGE)
    assert 1 <= sdk_frames(stream.value) <= MOST_SDK_FRAMES


async def test_the_debug_variable_keeps_the_internal_frames(
    server: BackgroundServer, anyio_backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LMSTUDIO_SDK_DEBUG_TRACEBACKS", "1")
    async with AsyncClient(server.url) as client:
        with pytest.raises(LMStudioModelNotFoundError) as call:
            await client.llm.model("nothing-like-this")
    assert sdk_frames(call.value) > MOST_SDK_FRAMES
    assert last_line(call.value).startswith(MESSAGE)


def test_a_callback_s_own_error_keeps_its_traceback(server: BackgroundServer) -> None:
    def on_progress(progress: float) -> None:
        raise KeyError("mine")

    with Client(server.url) as client, pytest.raises(KeyError) as raised:
        client.llm.load("scripted-llm", on_progress=on_progress)
    frames = traceback.extract_tb(raised.value.__traceback__)
    assert frames[-1].name == "on_progress"
