"""Model catalogue: downloaded models, loading with progress, specifiers, unloading, TTL."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import anyio
import pytest
from _server_helpers import (
    EMBEDDING,
    LLM,
    SLOW,
    connect,
    get_or_load,
    kv,
    query,
    stack,
)

from lmstudio_sdk.protocol.endpoints import diagnostics, embedding, llm, system
from lmstudio_sdk.protocol.endpoints.diagnostics import ServerLog
from lmstudio_sdk.protocol.endpoints.shared import (
    EmbeddingModelInfo,
    GetLoadConfigParameter,
    GetModelInfoParameter,
    GetOrLoadCreationParameter,
    GetOrLoadLoadProgress,
    LLMInfo,
    LLMInstanceInfo,
    LoadModelCreationParameter,
    LoadModelProgress,
    ModelSpecifierInstanceReference,
    UnloadModelParameter,
)
from lmstudio_sdk.protocol.events import ChannelClosed, ChannelFailed, RpcFailed, RpcSucceeded
from lmstudio_sdk.server import BackgroundServer, Script, scripted_model

BASE_FIELDS = {
    "type",
    "modelKey",
    "format",
    "displayName",
    "publisher",
    "path",
    "sizeBytes",
    "indexedModelIdentifier",
    "deviceIdentifier",
    "paramsString",
    "architecture",
    "quantization",
    "maxContextLength",
}


async def test_downloaded_models_carry_every_field(server: BackgroundServer) -> None:
    async with connect(server, "system") as client:
        models = await client.result(system.LIST_DOWNLOADED_MODELS)
        raw = json.loads(client.frames[-1])["result"]
    by_key = {m.model_key: m for m in models}
    assert isinstance(by_key[LLM], LLMInfo)
    assert isinstance(by_key[EMBEDDING], EmbeddingModelInfo)
    for entry in raw:
        assert set(entry) >= BASE_FIELDS, set(BASE_FIELDS) - set(entry)
        assert entry["deviceIdentifier"] is None  # null: this machine
        assert entry["format"] in ("gguf", "safetensors")  # values the Python 1.x SDK knows
        assert entry["type"] in ("llm", "embedding")
        assert isinstance(entry["sizeBytes"], int)
        if entry["type"] == "llm":
            assert {"vision", "trainedForToolUse"} <= set(entry)


async def test_get_or_load_reports_progress_then_success(server: BackgroundServer) -> None:
    async with connect(server, "llm") as client:
        assert await client.result(llm.LIST_LOADED) == []
        channel = await client.open(
            llm.GET_OR_LOAD,
            GetOrLoadCreationParameter(
                identifier=LLM, load_config_stack=stack(), load_ttl_ms=3_600_000
            ),
        )
        packets, end = await client.until_end(channel)
        assert isinstance(end, ChannelClosed)
        kinds = [p.type for p in packets]
        assert kinds[0] == "startLoading"
        assert kinds[-1] == "loadSuccess"
        progress = [p.progress for p in packets if isinstance(p, GetOrLoadLoadProgress)]
        assert progress, "no loadProgress"
        assert progress == sorted(progress)
        assert progress[-1] == 1.0
        assert set(kinds[1:-1]) == {"loadProgress"}
        info = packets[-1].info
        assert isinstance(info, LLMInstanceInfo)
        assert (info.identifier, info.model_key, info.ttl_ms) == (LLM, LLM, 3_600_000)
        assert info.instance_reference

        # Again: already loaded, no progress.
        channel = await client.open(
            llm.GET_OR_LOAD, GetOrLoadCreationParameter(identifier=LLM, load_config_stack=stack())
        )
        packets, end = await client.until_end(channel)
        assert [p.type for p in packets] == ["alreadyLoaded"]
        assert packets[0].info.instance_reference == info.instance_reference
        loaded = await client.result(llm.LIST_LOADED)
        assert [i.identifier for i in loaded] == [LLM]


async def test_get_or_load_by_path_finds_the_model(server: BackgroundServer) -> None:
    async with connect(server, "llm") as client:
        info = await get_or_load(client, "lmstudio-sdk/scripted")  # a path without its file
        assert info.path.startswith("lmstudio-sdk/scripted/")


async def test_load_model_with_identifier_context_length_and_a_second_instance(
    server: BackgroundServer,
) -> None:
    async with connect(server, "llm") as client:
        channel = await client.open(
            llm.LOAD_MODEL,
            LoadModelCreationParameter(
                model_key=LLM,
                identifier="my-model",
                load_config_stack=stack({"llm.load.contextLength": 1234}),
            ),
        )
        packets, end = await client.until_end(channel)
        assert isinstance(end, ChannelClosed)
        assert packets[0].type == "resolved"
        assert packets[0].info.model_key == LLM
        progress = [p.progress for p in packets if isinstance(p, LoadModelProgress)]
        assert progress[-1] == 1.0
        assert packets[-1].type == "success"
        assert packets[-1].info.identifier == "my-model"
        assert packets[-1].info.context_length == 1234

        # JS reads the context length from getLoadConfig, Python from the model info.
        config = await client.result(llm.GET_LOAD_CONFIG, GetLoadConfigParameter(query("my-model")))
        assert kv(config) == {"llm.load.contextLength": 1234}

        # A second instance of the same model gets a numbered identifier.
        channel = await client.open(
            llm.LOAD_MODEL, LoadModelCreationParameter(model_key=LLM, load_config_stack=stack())
        )
        packets, _ = await client.until_end(channel)
        assert packets[-1].info.identifier == LLM
        channel = await client.open(
            llm.LOAD_MODEL, LoadModelCreationParameter(model_key=LLM, load_config_stack=stack())
        )
        packets, _ = await client.until_end(channel)
        assert packets[-1].info.identifier == f"{LLM}:2"

        # The identifier is taken: a clear error.
        channel = await client.open(
            llm.LOAD_MODEL,
            LoadModelCreationParameter(
                model_key=LLM, identifier="my-model", load_config_stack=stack()
            ),
        )
        _, end = await client.until_end(channel)
        assert isinstance(end, ChannelFailed)
        assert re.search("Model load error.*already exists", end.error.title)  # as LM Studio


async def test_get_model_info_by_every_specifier(server: BackgroundServer) -> None:
    async with connect(server, "llm") as client:
        # Nothing loaded: no result key at all (not null), or an error on request.
        assert (
            await client.result(llm.GET_MODEL_INFO, GetModelInfoParameter(query(), False)) is None
        )
        assert "result" not in json.loads(client.frames[-1])
        reply = await client.call(llm.GET_MODEL_INFO, GetModelInfoParameter(query(LLM), True))
        assert isinstance(reply, RpcFailed)
        assert reply.error.code == "generic.noModelMatchingQuery"
        assert reply.error.display_data == {
            "code": "generic.noModelMatchingQuery",
            "query": {"identifier": LLM},
            "loadedModelsSample": [],
            "totalLoadedModels": 0,
        }

        loaded = await get_or_load(client, LLM)
        for specifier in (
            query(),  # any loaded model
            query(LLM),
            query(path=loaded.path),
            query(domain="llm"),
            ModelSpecifierInstanceReference(loaded.instance_reference),
        ):
            info = await client.result(llm.GET_MODEL_INFO, GetModelInfoParameter(specifier, True))
            assert info.instance_reference == loaded.instance_reference, specifier
            assert info.context_length == loaded.context_length

        reply = await client.call(
            llm.GET_MODEL_INFO,
            GetModelInfoParameter(ModelSpecifierInstanceReference("gone"), True),
        )
        assert isinstance(reply, RpcFailed)
        assert reply.error.code == "generic.specificModelUnloaded"


async def test_unload_is_void_and_unknown_identifiers_are_an_error(
    server: BackgroundServer,
) -> None:
    async with connect(server, "llm") as client:
        await get_or_load(client, LLM)
        reply = await client.call(llm.UNLOAD_MODEL, UnloadModelParameter(LLM))
        assert isinstance(reply, RpcSucceeded)
        assert json.loads(client.frames[-1]) == {"type": "rpcResult", "callId": reply.call_id}
        assert await client.result(llm.LIST_LOADED) == []

        # LM Studio's code for an unknown identifier: the official clients raise their
        # model-not-found error on it.
        reply = await client.call(llm.UNLOAD_MODEL, UnloadModelParameter(LLM))
        assert isinstance(reply, RpcFailed)
        assert reply.error.code == "generic.noModelMatchingQuery"
        assert reply.error.display_data["query"] == {"identifier": LLM}  # type: ignore[index]


async def test_missing_models_get_the_codes_clients_key_on(server: BackgroundServer) -> None:
    async with connect(server, "llm") as client:
        channel = await client.open(
            llm.GET_OR_LOAD,
            GetOrLoadCreationParameter(identifier="no-such-model", load_config_stack=stack()),
        )
        _, end = await client.until_end(channel)
        assert isinstance(end, ChannelFailed)
        assert end.error.code == "generic.pathNotFound"
        assert LLM in end.error.display_data["availablePathsSample"]  # type: ignore[index]

        # An embedding model through the llm namespace.
        channel = await client.open(
            llm.GET_OR_LOAD,
            GetOrLoadCreationParameter(identifier=EMBEDDING, load_config_stack=stack()),
        )
        _, end = await client.until_end(channel)
        assert isinstance(end, ChannelFailed)
        assert end.error.code == "generic.domainMismatch"


async def test_embedding_namespace_manages_its_own_models(server: BackgroundServer) -> None:
    identity = ("guest:embedding-test", "key")
    async with (
        connect(server, "embedding", identity) as emb,
        connect(server, "llm", identity) as lm,
    ):
        info = await get_or_load(emb, EMBEDDING)
        assert info.type == "embedding"
        config = await emb.result(
            embedding.GET_LOAD_CONFIG, GetLoadConfigParameter(query(EMBEDDING))
        )
        assert kv(config) == {"embedding.load.contextLength": info.context_length}
        # Not visible from the llm namespace.
        assert await lm.result(llm.LIST_LOADED) == []
        assert [i.identifier for i in await emb.result(embedding.LIST_LOADED)] == [EMBEDDING]


async def test_cancelling_a_load_ends_the_channel_with_an_error(
    server_factory: Callable[..., BackgroundServer],
) -> None:
    server = server_factory(
        models=[scripted_model(SLOW, script=Script(load_progress_steps=50, load_step_seconds=0.05))]
    )
    async with connect(server, "llm") as client:
        channel = await client.open(
            llm.GET_OR_LOAD, GetOrLoadCreationParameter(identifier=SLOW, load_config_stack=stack())
        )
        assert (await client.next_on(channel)).type == "startLoading"
        assert (await client.next_on(channel)).type == "loadProgress"
        await client.cancel(channel)
        _, end = await client.until_end(channel)
        assert isinstance(end, ChannelFailed)
        assert "cancelled" in end.error.title
        assert await client.result(llm.LIST_LOADED) == []


async def test_idle_models_are_unloaded_after_their_ttl(server: BackgroundServer) -> None:
    async with connect(server, "diagnostics") as logs, connect(server, "llm") as client:
        stream = await logs.open(diagnostics.STREAM_LOGS)
        await get_or_load(client, LLM, load_ttl_ms=200)
        # The server logs the TTL unload: wait for that event, no sleeping.
        with anyio.fail_after(10):
            while True:
                packet = await logs.next_on(stream)
                data = packet.log.data
                if isinstance(data, ServerLog) and "TTL" in data.content:
                    break
        assert LLM in data.content
        assert await client.result(llm.LIST_LOADED) == []
        # The TTL task keeps running: a new load with a TTL expires too.
        await get_or_load(client, LLM, load_ttl_ms=100)
        with anyio.fail_after(10):
            while True:
                data = (await logs.next_on(stream)).log.data
                if isinstance(data, ServerLog) and "TTL" in data.content:
                    break
        assert await client.result(llm.LIST_LOADED) == []


@pytest.mark.parametrize("value", ["big", 0, 1.5, -3])
async def test_a_bad_context_length_is_a_clear_error(
    server: BackgroundServer, value: object
) -> None:
    async with connect(server, "llm") as client:
        channel = await client.open(
            llm.GET_OR_LOAD,
            GetOrLoadCreationParameter(
                identifier=LLM, load_config_stack=stack({"llm.load.contextLength": value})
            ),
        )
        _packets, end = await client.until_end(channel)
        assert isinstance(end, ChannelFailed)
        assert "contextLength" in end.error.title
        assert await client.result(llm.LIST_LOADED) == []
