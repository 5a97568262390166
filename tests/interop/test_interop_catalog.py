"""LM Studio fidelity with the real models: a catalogue's names, LM Studio's errors, loads.

The official clients run their catalogue scenario (``official_python_catalog.py``,
``interop_catalog.mjs``) against ``docs/examples/catalog.toml``, where SmolLM2 is served as
``llama-3.2-1b-instruct`` and MiniLM as ``text-embedding-nomic-embed-text-v1.5``; our SDK
runs the same checks in-process.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from test_interop import TEST_TIMEOUT, run_passing_scenario

from lmstudio_sdk import AsyncClient, LMStudioModelNotFoundError, LMStudioServerError

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
LLM_KEY = "llama-3.2-1b-instruct"
LLM_PATH = "hugging-quants/llama-3.2-1b-instruct"
EMBEDDING_KEY = "text-embedding-nomic-embed-text-v1.5"
EMBEDDING_PATH = "nomic-ai/nomic-embed-text-v1.5"
MINILM_DIMENSIONS = 384
HELLO_WORLD_TOKENS = 4  # [CLS] hello world [SEP]


def assert_catalogue_results(summary: dict[str, Any]) -> None:
    """What a user of either official client checks after the catalogue scenario."""
    assert summary["llm"]["identifier"] == LLM_KEY
    assert summary["llm"]["text"].strip()
    assert summary["embedding"] == {
        "dimensions": MINILM_DIMENSIONS,
        "tokens": HELLO_WORLD_TOKENS,
        "count": HELLO_WORLD_TOKENS,
    }
    assert summary["loadedAfter"] == []


@pytest.mark.timeout(TEST_TIMEOUT)
def test_official_python_client_finds_catalogue_models(
    catalog_server: Any, python_client_command: list[str]
) -> None:
    host = urlsplit(catalog_server.url).netloc
    script = str(HERE / "official_python_catalog.py")
    summary = run_passing_scenario([python_client_command[0], script, "--host", host])
    assert summary["paths"] == {LLM_KEY: LLM_PATH, EMBEDDING_KEY: EMBEDDING_PATH}
    assert_catalogue_results(summary)
    # The client's own error classes: model-not-found for an unknown identifier.
    assert summary["unloadUnknown"] == "LMStudioModelNotFoundError"
    assert re.search("Model load error.*already exists", summary["identifierTaken"])
    assert "Model does not support images" in summary["imageRefused"]


@pytest.mark.timeout(TEST_TIMEOUT)
def test_official_js_client_finds_catalogue_models(
    catalog_server: Any, js_client_command: list[str]
) -> None:
    script = str(HERE / "interop_catalog.mjs")
    summary = run_passing_scenario([js_client_command[0], script, "--base-url", catalog_server.url])
    assert_catalogue_results(summary)
    # The JS client renders generic.noModelMatchingQuery's display data itself.
    assert "No loaded model satisfies all requirements" in summary["unloadUnknown"]["message"]
    # (It also wraps the title in a box, line breaks included.)
    assert re.search(
        "Model load error.*already.*exists", summary["identifierTaken"]["message"], re.S
    )
    assert "Model does not support images" in summary["imageRefused"]["message"]
    assert summary["sdkLog"] == []


@pytest.mark.timeout(TEST_TIMEOUT)
async def test_our_sdk_finds_catalogue_models_and_maps_the_errors(catalog_server: Any) -> None:
    async with AsyncClient(catalog_server.url) as client:
        by_path = await client.llm.model(LLM_PATH)
        assert by_path.identifier == LLM_KEY
        assert (await client.llm.model(LLM_KEY)) == by_path
        embedder = await client.embedding.model(EMBEDDING_PATH)
        assert embedder.identifier == EMBEDDING_KEY
        assert len(await embedder.embed("Hello world")) == MINILM_DIMENSIONS
        assert len(await embedder.tokenize("Hello world")) == HELLO_WORLD_TOKENS
        assert await embedder.count_tokens("Hello world") == HELLO_WORLD_TOKENS
        with pytest.raises(LMStudioModelNotFoundError):
            await client.llm.unload("nobody")
        twin = await client.llm.load(LLM_KEY, identifier="twin")
        with pytest.raises(LMStudioServerError, match=r"Model load error.*already exists"):
            await client.llm.load(LLM_KEY, identifier="twin")
        await twin.unload()
        await by_path.unload()
        await embedder.unload()


JIT_CATALOG = """
[[model]]
key = "model-a"
path = "acme/model-a"
type = "llm"
source = "smollm2-135m-instruct"

[[model]]
key = "model-b"
path = "acme/model-b"
type = "llm"
source = "smollm2-135m-instruct"

[[model]]
key = "model-c"
path = "acme/model-c"
type = "llm"
source = "smollm2-135m-instruct"
vision = true
"""


@pytest.fixture(scope="module")
def jit_server(tmp_path_factory: pytest.TempPathFactory, real_engines: None) -> Any:
    """Three real LLMs (all SmolLM2) and LM Studio's default Auto-Evict."""
    from lmstudio_sdk.server import BackgroundServer, ServerOptions

    catalog = tmp_path_factory.mktemp("jit") / "catalog.toml"
    catalog.write_text(JIT_CATALOG, encoding="utf-8")
    with BackgroundServer(ServerOptions(port=0, models=(), catalog=catalog)) as server:
        yield server


@pytest.mark.timeout(TEST_TIMEOUT)
@pytest.mark.parametrize("client", ["python", "js"])
def test_official_clients_jit_eviction_and_a_vision_model(
    jit_server: Any, client: str, request: pytest.FixtureRequest
) -> None:
    if client == "python":
        command = request.getfixturevalue("python_client_command")[0]
        script = str(HERE / "official_python_catalog.py")
        summary = run_passing_scenario(
            [command, script, "--jit", "--host", urlsplit(jit_server.url).netloc]
        )
    else:
        command = request.getfixturevalue("js_client_command")[0]
        script = str(HERE / "interop_catalog.mjs")
        summary = run_passing_scenario([command, script, "--jit", "--base-url", jit_server.url])
        assert summary["sdkLog"] == []  # the unloadingOtherJITModel packet is understood
    # The explicitly loaded "pinned" (model-c) stays; the JIT-loaded model-a makes way for b.
    assert summary["jit"] == {"afterA": ["model-a", "pinned"], "afterB": ["model-b", "pinned"]}
    # A model declared vision = true accepts an image (SmolLM2 sees a placeholder).
    assert summary["visionReply"].strip()
    assert jit_server.loaded_identifiers() == []


@pytest.mark.timeout(TEST_TIMEOUT)
async def test_a_cancelled_real_load_leaves_nothing_loaded(catalog_server: Any) -> None:
    async with AsyncClient(catalog_server.url) as client:
        async with client.llm.load_stream(LLM_KEY, identifier="victim") as load:
            async for _progress in load:
                break  # the first report comes as llama.cpp starts: leave (cancel) mid-load
        # The server holds a model's next load until the cancelled one has ended, so this
        # load of the same identifier runs after it: it succeeds only if nothing leaked.
        victim = await client.llm.load(LLM_KEY, identifier="victim")
        assert [m.identifier for m in await client.llm.list_loaded()] == ["victim"]
        await victim.unload()
        assert await client.llm.list_loaded() == []
