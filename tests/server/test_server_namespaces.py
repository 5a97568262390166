"""The system, files, repository and embedding endpoints."""

from __future__ import annotations

import base64
import math
import os
from collections.abc import Callable

import anyio
from _server_helpers import EMBEDDING, LLM, connect, get_or_load, query

from lmstudio_sdk.protocol.endpoints import embedding, files, repository, system
from lmstudio_sdk.protocol.endpoints.embedding import EmbedStringParameter
from lmstudio_sdk.protocol.endpoints.files import (
    GetLocalFileAbsolutePathParameter,
    ParseDocumentCreationParameter,
    UploadFileBase64Parameter,
)
from lmstudio_sdk.protocol.endpoints.repository import (
    DownloadModelCreationParameter,
    GetModelDownloadOptionsParameter,
    ModelSearchOpts,
    SearchModelsParameter,
)
from lmstudio_sdk.protocol.endpoints.shared import CountTokensParameter, TokenizeParameter
from lmstudio_sdk.protocol.endpoints.system import (
    ListDownloadedModelVariantsParameter,
    NotifyParameter,
)
from lmstudio_sdk.protocol.events import ChannelClosed, ChannelFailed, RpcFailed
from lmstudio_sdk.server import BackgroundServer, Script, scripted_model


async def test_system_endpoints(server: BackgroundServer) -> None:
    async with connect(server, "system") as client:
        version = await client.result(system.VERSION)
        assert version.version.count(".") == 2
        info = await client.result(system.INFO)
        assert info.pid == os.getpid()  # the server runs in this process's thread
        assert await client.result(system.NOTIFY, NotifyParameter("Hello", "from a test")) is None
        variants = await client.result(
            system.LIST_DOWNLOADED_MODEL_VARIANTS, ListDownloadedModelVariantsParameter(LLM)
        )
        assert [v.model_key for v in variants] == [LLM]
        reply = await client.call(
            system.LIST_DOWNLOADED_MODEL_VARIANTS, ListDownloadedModelVariantsParameter("nope")
        )
        assert isinstance(reply, RpcFailed)
        assert reply.error.code == "generic.pathNotFound"


async def test_alive_stays_open_while_the_socket_lives(server: BackgroundServer) -> None:
    async with connect(server, "system") as client:
        channel = await client.open(system.ALIVE)
        with anyio.move_on_after(0.2) as scope:
            await client.next_on(channel)
        assert scope.cancelled_caught, "alive sent something"
        # RPCs on the same socket go on while it is open.
        assert (await client.result(system.VERSION)).version


async def test_embeddings_tokens_and_counts(server: BackgroundServer) -> None:
    async with connect(server, "embedding") as client:
        info = await get_or_load(client, EMBEDDING)
        vectors = []
        for text in ("the cat sat", "the cat sat down", "tax forms are due"):
            result = await client.result(
                embedding.EMBED_STRING, EmbedStringParameter(query(EMBEDDING), text)
            )
            vectors.append(result.embedding)
        assert len({len(v) for v in vectors}) == 1
        assert all(math.isfinite(x) for v in vectors for x in v)

        def cosine(a: list[float], b: list[float]) -> float:
            return sum(x * y for x, y in zip(a, b, strict=True))

        assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])
        tokens = await client.result(
            embedding.TOKENIZE, TokenizeParameter(query(EMBEDDING), "a b c")
        )
        count = await client.result(
            embedding.COUNT_TOKENS, CountTokensParameter(query(EMBEDDING), "a b c")
        )
        assert count.token_count == len(tokens.tokens) == 3
        assert info.context_length > 0


async def test_files_upload_locate_and_parse(server: BackgroundServer) -> None:
    identity = ("guest:files-test", "pass")
    async with connect(server, "files", identity) as client:
        upload = await client.result(
            files.UPLOAD_FILE_BASE64,
            UploadFileBase64Parameter("report.txt", base64.b64encode(b"Quarterly: up.").decode()),
        )
        assert (upload.file_type, upload.size_bytes) == ("text/plain", 14)
        image = await client.result(
            files.UPLOAD_FILE_BASE64,
            UploadFileBase64Parameter("cat.PNG", base64.b64encode(b"\x89PNG").decode()),
        )
        assert image.file_type == "image"
        located = await client.result(
            files.GET_LOCAL_FILE_ABSOLUTE_PATH, GetLocalFileAbsolutePathParameter(upload.identifier)
        )
        assert await anyio.Path(located.path).read_bytes() == b"Quarterly: up."
        channel = await client.open(
            files.PARSE_DOCUMENT, ParseDocumentCreationParameter(upload.identifier)
        )
        packets, end = await client.until_end(channel)
        assert isinstance(end, ChannelClosed)
        assert [p.type for p in packets] == ["parserLoaded", "progress", "result"]
        assert packets[-1].content == "Quarterly: up."

    # Files belong to the identity: another client cannot see them.
    async with connect(server, "files") as other:
        reply = await other.call(
            files.GET_LOCAL_FILE_ABSOLUTE_PATH, GetLocalFileAbsolutePathParameter(upload.identifier)
        )
        assert isinstance(reply, RpcFailed)


async def test_repository_search_options_and_download(server: BackgroundServer) -> None:
    async with connect(server, "repository") as client:
        found = await client.result(
            repository.SEARCH_MODELS, SearchModelsParameter(ModelSearchOpts(search_term="scripted"))
        )
        assert found.results
        entry = found.results[0]
        options = await client.result(
            repository.GET_MODEL_DOWNLOAD_OPTIONS,
            GetModelDownloadOptionsParameter(entry.identifier),
        )
        assert options.results
        option = options.results[0]
        assert option.size_bytes > 0
        channel = await client.open(
            repository.DOWNLOAD_MODEL, DownloadModelCreationParameter(option.download_identifier)
        )
        packets, end = await client.until_end(channel)
        assert isinstance(end, ChannelClosed)
        kinds = [p.type for p in packets]
        assert kinds[-2:] == ["startFinalizing", "success"]
        progress = [p.update.downloaded_bytes for p in packets if p.type == "downloadProgress"]
        assert progress == sorted(progress)
        assert progress[-1] == packets[0].update.total_bytes
        assert packets[-1].default_identifier in server.model_keys

        nothing = await client.result(
            repository.SEARCH_MODELS, SearchModelsParameter(ModelSearchOpts(search_term="zzz"))
        )
        assert nothing.results == []


async def test_a_download_can_be_cancelled(
    server_factory: Callable[..., BackgroundServer],
) -> None:
    server = server_factory(
        models=[
            scripted_model(
                LLM, script=Script(download_progress_steps=100, download_step_seconds=0.05)
            )
        ]
    )
    async with connect(server, "repository") as client:
        found = await client.result(repository.SEARCH_MODELS, SearchModelsParameter())
        options = await client.result(
            repository.GET_MODEL_DOWNLOAD_OPTIONS,
            GetModelDownloadOptionsParameter(found.results[0].identifier),
        )
        channel = await client.open(
            repository.DOWNLOAD_MODEL,
            DownloadModelCreationParameter(options.results[0].download_identifier),
        )
        assert (await client.next_on(channel)).type == "downloadProgress"
        await client.cancel(channel)
        packets, end = await client.until_end(channel)
        assert isinstance(end, ChannelFailed)
        assert "cancelled" in end.error.title
        assert "success" not in [p.type for p in packets]
