"""The namespace facades (``client.system``, ``.llm``, ``.embedding``, ``.files``,
``.repository``, ``.diagnostics``) against the real local server with scripted models,
over loopback, on asyncio and Trio."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from lmstudio_sdk import (
    AsyncClient,
    AsyncEmbeddingModel,
    AsyncLLM,
    FileHandle,
    LMStudioModelNotFoundError,
    LMStudioServerError,
    ModelInfo,
    ModelInstanceInfo,
)
from lmstudio_sdk.protocol.endpoints import diagnostics
from lmstudio_sdk.server import BackgroundServer, Script, ServerOptions, scripted_model

LLM = "scripted-llm"
EMBEDDING = "scripted-embedding"
SLOW_LOAD = Script(load_progress_steps=50, load_step_seconds=0.02)
SLOW_DOWNLOAD = Script(download_progress_steps=50, download_step_seconds=0.02)


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    models = (
        scripted_model(LLM),
        scripted_model(domain="embedding"),
        scripted_model("slow-llm", script=SLOW_LOAD),
        scripted_model("slow-download", script=SLOW_DOWNLOAD),
    )
    with BackgroundServer(ServerOptions(port=0, models=models)) as running:
        yield running


@pytest.fixture
async def client(server: BackgroundServer) -> Any:
    server.unload_all()
    async with AsyncClient(server.url) as opened:
        yield opened


async def test_system(client: AsyncClient, server: BackgroundServer) -> None:
    version = await client.system.version()
    assert version.version.count(".") == 2
    info = await client.system.info()
    assert info.pid == os.getpid()  # the server runs in a thread of this process
    models = await client.system.list_downloaded_models()
    assert all(isinstance(m, ModelInfo) for m in models)
    assert {m.model_key for m in models} == set(server.model_keys)
    assert {m.model_key for m in await client.system.list_downloaded_models("embedding")} == {
        EMBEDDING
    }
    with pytest.raises(ValueError, match="domain"):
        await client.system.list_downloaded_models("images")


async def test_notify_shows_up_in_the_log_stream(client: AsyncClient) -> None:
    async with client.diagnostics.stream_logs() as logs:
        await client.system.notify("Hello", "from the tests")
        with anyio.fail_after(10):
            async for event in logs:
                if isinstance(event.data, diagnostics.ServerLog):
                    assert "Hello" in event.data.content
                    break


async def test_model_loads_once_and_handles_work(client: AsyncClient) -> None:
    model = await client.llm.model(LLM)
    assert isinstance(model, AsyncLLM)
    assert model.identifier == LLM
    assert isinstance(model.info, ModelInstanceInfo)
    again = await client.llm.model(LLM)  # already loaded: the same instance
    assert again == model
    assert [m.identifier for m in await client.llm.list_loaded()] == [LLM]
    assert (await client.llm.model()).identifier == LLM  # any loaded model
    info = await model.get_info()
    assert info.identifier == LLM
    assert info.context_length > 0
    assert (await client.llm.get_model_info(LLM)).model_key == LLM
    await model.unload()
    assert await client.llm.list_loaded() == []
    with pytest.raises(LMStudioModelNotFoundError):
        await model.get_info()


async def test_no_model_loaded_and_unknown_model_are_model_not_found(client: AsyncClient) -> None:
    with pytest.raises(LMStudioModelNotFoundError):
        await client.llm.model()
    with pytest.raises(LMStudioModelNotFoundError):
        await client.llm.get_model_info("nothing-like-this")
    with pytest.raises(LMStudioServerError):
        await client.llm.model("nothing-like-this")
    with pytest.raises(ValueError, match="give a model key"):
        await client.llm.model(ttl=60)


async def test_load_reports_progress_and_accepts_config(client: AsyncClient) -> None:
    seen: list[float] = []

    async def on_progress(progress: float) -> None:  # coroutine callbacks are awaited
        seen.append(progress)

    model = await client.llm.load(
        "slow-llm",
        identifier="mine",
        ttl=600,
        config={"contextLength": 1024},
        on_progress=on_progress,
    )
    assert model.identifier == "mine"
    assert model.info.context_length == 1024
    assert seen == sorted(seen)
    assert seen[-1] == 1.0
    assert len(seen) > 1
    await client.llm.unload("mine")
    assert await client.llm.list_loaded() == []


async def test_load_stream_and_leaving_early_cancels_the_load(
    client: AsyncClient, server: BackgroundServer
) -> None:
    async with client.llm.load_stream("slow-llm") as load:
        async for progress in load:
            assert 0 <= progress <= 1
    assert load.result().identifier == "slow-llm"
    assert load.resolved is not None
    assert load.resolved.model_key == "slow-llm"
    await client.llm.unload("slow-llm")

    async with client.llm.load_stream("slow-llm", identifier="abandoned") as load:
        async for _ in load:
            break
    with pytest.raises(RuntimeError, match="has not finished"):
        load.result()
    assert "abandoned" not in server.loaded_identifiers()


async def test_bad_load_arguments_are_refused_before_sending(client: AsyncClient) -> None:
    with pytest.raises(ValueError, match="ttl"):
        await client.llm.load(LLM, ttl=0)
    with pytest.raises(ValueError, match="unknown load option"):
        await client.llm.load(LLM, config={"contextLenght": 10})
    with pytest.raises(ValueError, match="key"):
        await client.llm.model("")
    # A keyword the method does not take is Python's TypeError, naming it (never ignored).
    with pytest.raises(TypeError, match=r"load\(\) got an unexpected keyword argument 'tl'"):
        await client.llm.load(LLM, tl=60)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"model\(\) .* 'context_length'; it takes config, "):
        await client.embedding.model(EMBEDDING, context_length=512)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"load_stream\(\) .* 'on_progress'"):
        client.llm.load_stream(LLM, on_progress=print)  # type: ignore[call-arg]
    assert await client.llm.list_loaded() == await client.embedding.list_loaded() == []


async def test_misspelt_prediction_keywords_name_the_keyword_meant(client: AsyncClient) -> None:
    model = await client.llm.model(LLM)
    # Not a prediction option, but close to one of respond()'s own keywords: say which.
    with pytest.raises(TypeError, match=r"'respons_format'; did you mean 'response_format'\?"):
        await model.respond("hi", respons_format={"type": "object"})  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"'on_mesage'; did you mean 'on_message'\?"):
        await model.respond("hi", on_mesage=print)  # type: ignore[call-arg]
    # Close to an option: the option is suggested, in either spelling.
    with pytest.raises(TypeError, match=r"'max_token'; did you mean 'max_tokens'\?"):
        await model.respond("hi", max_token=3)  # type: ignore[call-arg]
    result = await model.respond("hi", maxTokens=3)  # type: ignore[call-arg]
    assert result.stats.predicted_tokens_count is None or result.stats.predicted_tokens_count <= 3


async def test_embedding_namespace(client: AsyncClient) -> None:
    model = await client.embedding.model(EMBEDDING)
    assert isinstance(model, AsyncEmbeddingModel)
    assert [m.identifier for m in await client.embedding.list_loaded()] == [EMBEDDING]
    assert await client.llm.list_loaded() == []
    await model.unload()


async def test_files_upload(client: AsyncClient) -> None:
    handle = await client.files.upload("notes.txt", b"hello world")
    assert isinstance(handle, FileHandle)
    assert handle.name == "notes.txt"
    assert handle.size_bytes == 11
    assert handle.file_type == "text/plain"
    with pytest.raises(TypeError, match="bytes"):
        await client.files.upload("notes.txt", "text")  # type: ignore[arg-type]


async def test_repository_search_options_and_download(client: AsyncClient) -> None:
    results = await client.repository.search_models("slow-download", limit=5)
    assert len(results) == 1
    option = await slow_download_option(client)
    updates: list[Any] = []
    key = await client.repository.download(option, on_progress=updates.append)
    assert key == "slow-download"
    assert updates[-1].downloaded_bytes == updates[-1].total_bytes


async def test_cancelling_a_download_stops_it(client: AsyncClient) -> None:
    option = await slow_download_option(client)
    updates: list[Any] = []
    with anyio.move_on_after(0.2) as scope:
        await client.repository.download(option, on_progress=updates.append)
    assert scope.cancelled_caught
    assert 0 < len(updates) < 50
    assert updates[-1].downloaded_bytes < updates[-1].total_bytes


async def slow_download_option(client: AsyncClient) -> Any:
    (result,) = await client.repository.search_models("slow-download")
    options = await client.repository.get_download_options(result)
    return next(o for o in options if o.download_identifier.endswith("slow-download.gguf"))
