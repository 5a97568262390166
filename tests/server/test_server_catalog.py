"""LM Studio fidelity of the model catalogue: catalogue files, names, JIT loading, errors.

Scripted models stand in for the real ones here (``source = "scripted"``); the same behaviour
through the official clients and the real models is in ``tests/interop``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from _server_helpers import connect, get_or_load, stack
from hypothesis import given
from hypothesis import strategies as st

from lmstudio_sdk import AsyncClient, Chat, LMStudioModelNotFoundError, LMStudioServerError
from lmstudio_sdk.protocol.endpoints import embedding, llm, system
from lmstudio_sdk.protocol.endpoints.shared import (
    GetOrLoadCreationParameter,
    GetOrLoadUnloadingOtherJITModel,
    LoadModelCreationParameter,
)
from lmstudio_sdk.protocol.events import ChannelClosed, ChannelFailed
from lmstudio_sdk.server import (
    BackgroundServer,
    Catalog,
    CatalogError,
    ServedModel,
    load_catalog,
    scripted_model,
)
from lmstudio_sdk.server._catalog import ModelCatalog, path_matches
from lmstudio_sdk.server._catalog_file import parse_catalog
from lmstudio_sdk.server._logs import LogBus

CHAT_PATH = "acme/Chat-Model-GGUF/chat-model-Q4_K_M.gguf"
CATALOG_TOML = f"""
[[model]]
key = "chat-model"
path = "{CHAT_PATH}"
type = "llm"
source = "scripted"
display_name = "Chat Model"
context_length = 4096
aliases = ["my-chat"]

[[model]]
key = "seeing-model"
path = "acme/seeing-model"
type = "llm"
source = "scripted"
vision = true
preload = {{ identifier = "eyes", ttl = 600 }}

[[model]]
key = "text-embedding-acme"
path = "acme/embed-v1"
type = "embedding"
source = "scripted"
"""

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text(CATALOG_TOML, encoding="utf-8")
    return path


@pytest.fixture
def catalog_server(
    server_factory: Callable[..., BackgroundServer], catalog_file: Path
) -> BackgroundServer:
    return server_factory(models=(), catalog=catalog_file)


# --- the file ---------------------------------------------------------------------------------


def test_a_catalogue_file_names_models_the_lm_studio_way(catalog_file: Path) -> None:
    catalog = load_catalog(catalog_file)
    chat, seeing, embed = catalog.models
    assert (chat.key, chat.facts.path, chat.facts.publisher) == ("chat-model", CHAT_PATH, "acme")
    assert (chat.facts.display_name, chat.facts.max_context_length) == ("Chat Model", 4096)
    assert chat.aliases == ("my-chat",)
    assert seeing.facts.vision
    assert not chat.facts.vision
    assert embed.domain == "embedding"
    assert [(p.key, p.identifier, p.ttl_ms) for p in catalog.preloads] == [
        ("seeing-model", "eyes", 600_000)
    ]


BASE = {"key": "m", "type": "llm", "source": "scripted"}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({**BASE, "kye": "typo"}, r"unknown fields \['kye'\]"),
        ({"type": "llm", "source": "scripted"}, "key is required"),
        ({**BASE, "type": "vlm"}, "type must be 'llm' or 'embedding'"),
        ({**BASE, "source": "gpt-5"}, "source must be a .gguf file, 'scripted' or a bundled"),
        ({**BASE, "source": "missing.gguf"}, "There is no model file"),
        ({**BASE, "engine": "llama"}, "runs on the 'scripted' engine, not 'llama'"),
        ({**BASE, "context_length": "big"}, "context_length must be an integer"),
        ({**BASE, "context_length": 0}, "context_length must be >= 1"),
        ({**BASE, "context_length": True}, "context_length must be an integer"),
        ({**BASE, "vision": "yes"}, "vision must be true or false"),
        ({**BASE, "type": "embedding", "vision": True}, "vision only applies to llm"),
        ({**BASE, "aliases": [""]}, "aliases must be a list of non-empty strings"),
        ({**BASE, "preload": {"ttl": -1}}, "preload ttl must be >= 1 second"),
        ({**BASE, "preload": "yes"}, "preload must be true or a table"),
    ],
)
def test_a_bad_entry_is_refused_saying_what_is_wrong(
    entry: dict[str, Any], message: str, tmp_path: Path
) -> None:
    with pytest.raises(CatalogError, match=message) as info:
        parse_catalog({"model": [entry]}, source="cat.toml", base_dir=tmp_path)
    assert str(info.value).startswith("cat.toml: model #1")


def test_names_must_be_unique_and_the_file_must_parse(tmp_path: Path) -> None:
    twice = [BASE, {**BASE, "key": "other", "aliases": ["M"]}]
    with pytest.raises(CatalogError, match="the name 'M' is already used by 'm'"):
        parse_catalog({"model": twice})
    with pytest.raises(CatalogError, match="no \\[\\[model\\]\\] or \\[\\[upstream\\]\\] entry"):
        parse_catalog({})
    bad = tmp_path / "bad.toml"
    bad.write_text("[[model]\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"bad\.toml is not valid TOML"):
        load_catalog(bad)
    with pytest.raises(CatalogError, match="cannot read the catalogue"):
        load_catalog(tmp_path / "nowhere.toml")


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        (CHAT_PATH, True),
        (CHAT_PATH.upper(), True),  # case-insensitive
        ("acme/chat-model-gguf", True),  # a directory prefix, at a "/" boundary
        ("acme", True),
        ("acme/chat-model-gguf/chat-model-q4_k_m", True),  # without the extension
        ("acme/chat-model-gguf/chat-model", True),  # ...and without the quantisation
        ("acme/chat", False),  # a prefix that ends inside a name
        ("acme/chat-model-gguf/chat-model-q8_0", False),  # another quantisation
        ("chat-model-q4_k_m.gguf", False),  # the file name alone
        ("", False),
    ],
)
def test_path_matching(wanted: str, expected: bool) -> None:
    assert path_matches(CHAT_PATH, wanted) is expected


def test_the_cli_serves_a_catalogue(catalog_file: Path) -> None:
    from lmstudio_sdk.cli import build_parser
    from lmstudio_sdk.cli.serve import UsageError, build_options

    def args(catalog: Path) -> argparse.Namespace:
        return build_parser().parse_args(["serve", "--port", "0", "--catalog", str(catalog)])

    options = build_options(args(catalog_file))
    assert isinstance(options.catalog, Catalog)
    assert [m.key for m in options.resolved_models()] == [
        "chat-model",
        "seeing-model",
        "text-embedding-acme",
    ]
    with pytest.raises(UsageError, match="--catalog: cannot read the catalogue"):
        build_options(args(catalog_file.with_name("missing.toml")))


# --- served ---------------------------------------------------------------------------------


async def test_models_are_found_by_key_path_and_alias(catalog_server: BackgroundServer) -> None:
    async with connect(catalog_server, "system") as client:
        listed = {m.model_key: m for m in await client.result(system.LIST_DOWNLOADED_MODELS)}
    assert listed["chat-model"].path == CHAT_PATH
    assert listed["text-embedding-acme"].path == "acme/embed-v1"
    async with connect(catalog_server, "llm") as client:
        for name in (
            "chat-model",
            "ACME/chat-model-gguf",
            "acme/chat-model-gguf/chat-model",
            "my-chat",
        ):
            info = await get_or_load(client, name)
            assert (info.model_key, info.identifier) == ("chat-model", "chat-model"), name
        channel = await client.open(
            llm.GET_OR_LOAD,
            GetOrLoadCreationParameter(identifier="acme/chat", load_config_stack=stack()),
        )
        _, end = await client.until_end(channel)
        assert isinstance(end, ChannelFailed)
        assert end.error.code == "generic.pathNotFound"


async def test_preloaded_models_are_loaded_at_start(catalog_server: BackgroundServer) -> None:
    async with AsyncClient(catalog_server.url) as client:
        loaded = await client.llm.list_loaded()
        assert [(m.identifier, m.info.model_key, m.info.ttl_ms) for m in loaded] == [
            ("eyes", "seeing-model", 600_000)
        ]


async def test_our_sdk_maps_lm_studios_errors(catalog_server: BackgroundServer) -> None:
    async with AsyncClient(catalog_server.url) as client:
        # Unloading an unknown identifier: generic.noModelMatchingQuery, a model-not-found.
        with pytest.raises(LMStudioModelNotFoundError):
            await client.llm.unload("nobody")
        await client.llm.load("chat-model", identifier="twin")
        with pytest.raises(LMStudioServerError, match=r"Model load error.*already exists"):
            await client.llm.load("chat-model", identifier="twin")
        assert sorted(m.identifier for m in await client.llm.list_loaded()) == ["eyes", "twin"]


async def test_images_need_a_vision_model(catalog_server: BackgroundServer) -> None:
    async with AsyncClient(catalog_server.url) as client:
        image = await client.files.prepare_image(PNG, name="photo")
        chat = Chat()
        chat.add_user_message("What is this?", images=[image])
        blind = await client.llm.model("chat-model")
        with pytest.raises(LMStudioServerError, match="Model does not support images"):
            await blind.respond(chat)
        # A vision model takes it (a placeholder until a small vision model is bundled).
        seeing = await client.llm.model("eyes")
        assert (await seeing.respond(chat)).content
        # Text alone still works with the first one.
        assert (await blind.respond("Hello")).content


async def _jit_load(client: Any, identifier: str) -> list[Any]:
    channel = await client.open(
        llm.GET_OR_LOAD,
        GetOrLoadCreationParameter(identifier=identifier, load_config_stack=stack()),
    )
    packets, end = await client.until_end(channel)
    assert isinstance(end, ChannelClosed), end
    return packets


async def test_a_jit_load_unloads_the_previous_jit_model(
    server_factory: Callable[..., BackgroundServer],
) -> None:
    models = [scripted_model("a"), scripted_model("b"), scripted_model("c")]
    server = server_factory(models=models, jit_unload_previous=True)  # LM Studio's default
    async with connect(server, "llm") as client:
        channel = await client.open(
            llm.LOAD_MODEL, LoadModelCreationParameter(model_key="c", load_config_stack=stack())
        )
        assert isinstance((await client.until_end(channel))[1], ChannelClosed)
        assert not any(
            isinstance(p, GetOrLoadUnloadingOtherJITModel) for p in await _jit_load(client, "a")
        )
        packets = await _jit_load(client, "b")
        evicted = [
            p.info.identifier for p in packets if isinstance(p, GetOrLoadUnloadingOtherJITModel)
        ]
        assert evicted == ["a"]
        # Announced after startLoading and before the load's progress, as LM Studio does.
        kinds = [type(p).__name__ for p in packets]
        assert kinds.index("GetOrLoadStartLoading") < kinds.index("GetOrLoadUnloadingOtherJITModel")
        # The explicitly loaded "c" stays; getOrLoad of a loaded model evicts nothing.
        loaded = await client.result(llm.LIST_LOADED)
        assert sorted(i.identifier for i in loaded) == ["b", "c"]
        assert len(await _jit_load(client, "c")) == 1  # alreadyLoaded
        assert sorted(i.identifier for i in await client.result(llm.LIST_LOADED)) == ["b", "c"]


async def test_jit_eviction_keeps_other_domains_and_can_be_turned_off(
    server_factory: Callable[..., BackgroundServer],
) -> None:
    models = [scripted_model("a"), scripted_model("b"), scripted_model("e", domain="embedding")]
    for evict in (True, False):
        server = server_factory(models=models, jit_unload_previous=evict)
        async with connect(server, "llm") as llm_client, connect(server, "embedding") as emb:
            await get_or_load(llm_client, "a")
            # An embedding model next to the LLM (RAG): nothing is evicted.
            channel = await emb.open(
                embedding.GET_OR_LOAD,
                GetOrLoadCreationParameter(identifier="e", load_config_stack=stack()),
            )
            packets, _ = await emb.until_end(channel)
            assert not [p for p in packets if isinstance(p, GetOrLoadUnloadingOtherJITModel)]
            packets = await _jit_load(llm_client, "b")
            evicted = [p for p in packets if isinstance(p, GetOrLoadUnloadingOtherJITModel)]
            assert [p.info.identifier for p in evicted] == (["a"] if evict else [])
            still = [i.identifier for i in await llm_client.result(llm.LIST_LOADED)]
            assert still == (["b"] if evict else ["a", "b"])
            assert [i.identifier for i in await emb.result(embedding.LIST_LOADED)] == ["e"]


# --- a load cancelled while its engine works in a thread -----------------------------------


class _ThreadBoundEngine:
    """Loads in a worker thread that cannot be interrupted, like llama.cpp."""

    context_length = 128

    def __init__(self, release: Callable[[], None]) -> None:
        self.release = release
        self.closed = False
        self.thread_started = anyio.Event()

    async def load(self, context_length: int | None, *, progress: Any = None) -> None:
        self.thread_started.set()
        await anyio.to_thread.run_sync(self.release)

    async def aclose(self) -> None:
        self.closed = True


async def test_a_cancelled_load_leaves_nothing_loaded() -> None:
    import threading

    gate = threading.Event()
    engine = _ThreadBoundEngine(lambda: gate.wait(10))
    model: ServedModel = scripted_model("slow-loader")
    catalog = ModelCatalog([model], LogBus())
    catalog._create_engine = lambda _model: engine  # type: ignore[assignment,method-assign,return-value]
    async with anyio.create_task_group() as tg:

        async def load() -> None:
            await catalog.load(model, identifier="slow-loader", context_length=None, ttl_ms=None)

        tg.start_soon(load)
        await engine.thread_started.wait()
        tg.cancel_scope.cancel()  # the client cancels while the thread still loads
        gate.set()
    assert engine.closed
    assert catalog.loaded() == []


_segment = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._", min_size=1, max_size=12)


@given(st.lists(_segment, min_size=1, max_size=4), st.data())
def test_path_matching_properties(segments: list[str], data: st.DataObject) -> None:
    path = "/".join(segments)
    # The whole path matches, whatever the case.
    assert path_matches(path, path.upper())
    # Every prefix that ends at a "/" matches; a name cut short inside a segment does not
    # (unless what is left is the quantisation suffix or extension).
    cut = data.draw(st.integers(1, len(segments)))
    assert path_matches(path, "/".join(segments[:cut]))
    last = segments[cut - 1]
    if len(last) > 1 and cut < len(segments):
        assert not path_matches(path, "/".join([*segments[: cut - 1], last[:-1]]))
