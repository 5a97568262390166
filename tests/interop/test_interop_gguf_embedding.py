"""LM Studio fidelity of a GGUF embedding model served by the llama engine (embedding mode).

The model is all-MiniLM-L6-v2 converted to GGUF by llama.cpp's own converter
(``tools/minilm_gguf.py``, cached), served from a catalogue as an LM Studio-named
``type = "embedding"`` entry. Both official clients (``gguf_embedding_python.py``,
``gguf_embedding.mjs``) and our SDK list it, load it, embed, tokenize, count tokens and read
its context length; the vectors they receive are the engine's own.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from test_interop import TEST_TIMEOUT, run_passing_scenario

from lmstudio_sdk import AsyncClient

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
KEY = "text-embedding-all-minilm-l6-v2"
PATH = "second-state/All-MiniLM-L6-v2-Embedding-GGUF/all-MiniLM-L6-v2-F32.gguf"
DIMENSIONS = 384
CONTEXT_LENGTH = 512  # bert.context_length of the GGUF (MiniLM's position embeddings)
HELLO_WORLD_IDS = [101, 7592, 2088, 102]  # [CLS] hello world [SEP]


@pytest.fixture(scope="module")
def minilm_gguf(real_engines: None) -> Path:
    """The cached MiniLM GGUF (converted on first use; needs the `model` tox env)."""
    for module in ("torch", "transformers"):
        pytest.importorskip(module, reason=f"{module} is needed to convert MiniLM to GGUF")
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "minilm_gguf.py")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def gguf_server(minilm_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from lmstudio_sdk.server import BackgroundServer, ServerOptions

    catalog = tmp_path_factory.mktemp("gguf") / "catalog.toml"
    catalog.write_text(
        f'[[model]]\nkey = "{KEY}"\npath = "{PATH}"\ntype = "embedding"\n'
        f'source = "{minilm_gguf}"\nengine = "llama"\n',
        encoding="utf-8",
    )
    with BackgroundServer(
        ServerOptions(host="127.0.0.1", port=0, models=(), catalog=catalog)
    ) as server:
        yield server


@pytest.fixture(scope="module")
def reference_head(minilm_gguf: Path) -> list[float]:
    """The first values of "Hello world"'s vector, from the engine itself (no server)."""
    import anyio

    from lmstudio_sdk.server.engines.llama_embedding import (
        LlamaEmbeddingEngine,
        gguf_embedding_facts,
    )

    async def embed() -> list[float]:
        async with LlamaEmbeddingEngine(gguf_embedding_facts(minilm_gguf)) as engine:
            return (await engine.embed("Hello world"))[:8]

    return anyio.run(embed)


def assert_gguf_results(
    summary: dict[str, Any], reference_head: list[float], key: str = KEY
) -> None:
    """What a user of either official client checks."""
    assert summary["listed"] == {
        "type": "embedding",
        "format": "gguf",
        "architecture": "bert",
        "maxContextLength": CONTEXT_LENGTH,
    }
    assert summary["embedding"]["dimensions"] == DIMENSIONS
    for got, expected in zip(summary["embedding"]["head"], reference_head, strict=True):
        assert math.isclose(got, expected, abs_tol=1e-6)
    assert summary["batch"] == [DIMENSIONS] * 3
    assert summary["tokens"] == HELLO_WORLD_IDS
    assert summary["count"] == len(HELLO_WORLD_IDS)
    assert summary["contextLength"] == CONTEXT_LENGTH
    assert summary["identifier"] == key
    assert summary["loadedAfter"] == []


@pytest.mark.timeout(TEST_TIMEOUT)
def test_official_python_client_uses_a_gguf_embedding_model(
    gguf_server: Any, python_client_command: list[str], reference_head: list[float]
) -> None:
    summary = run_python_client(gguf_server, python_client_command, KEY)
    assert_gguf_results(summary, reference_head)


def run_python_client(server: Any, python_client_command: list[str], key: str) -> dict[str, Any]:
    """``gguf_embedding_python.py`` (the official Python client) against ``server``."""
    host = urlsplit(server.url).netloc
    script = str(HERE / "gguf_embedding_python.py")
    return run_passing_scenario([python_client_command[0], script, "--host", host, "--key", key])


@pytest.mark.timeout(TEST_TIMEOUT)
def test_official_js_client_uses_a_gguf_embedding_model(
    gguf_server: Any, js_client_command: list[str], reference_head: list[float]
) -> None:
    script = str(HERE / "gguf_embedding.mjs")
    summary = run_passing_scenario(
        [js_client_command[0], script, "--base-url", gguf_server.url, "--key", KEY]
    )
    assert_gguf_results(summary, reference_head)
    assert summary["sdkLog"] == []


@pytest.mark.timeout(TEST_TIMEOUT)
async def test_our_sdk_uses_a_gguf_embedding_model(
    gguf_server: Any, reference_head: list[float]
) -> None:
    async with AsyncClient(gguf_server.url) as client:
        (listed,) = await client.system.list_downloaded_models("embedding")
        assert (listed.model_key, listed.path, listed.format) == (KEY, PATH, "gguf")
        assert (listed.architecture, listed.max_context_length) == ("bert", CONTEXT_LENGTH)
        model = await client.embedding.model(PATH)
        assert model.identifier == KEY
        vector = await model.embed("Hello world")
        assert len(vector) == DIMENSIONS
        assert vector[:8] == pytest.approx(reference_head, abs=1e-6)
        assert math.isclose(math.fsum(x * x for x in vector), 1.0, abs_tol=1e-5)
        assert await model.tokenize("Hello world") == HELLO_WORLD_IDS
        assert await model.count_tokens("Hello world") == len(HELLO_WORLD_IDS)
        assert await model.get_context_length() == CONTEXT_LENGTH
        await model.unload()
        assert await client.embedding.list_loaded() == []


CLI_KEY = "minilm-gguf"


@pytest.fixture(scope="module")
def cli_server(minilm_gguf: Path) -> Iterator[Any]:
    """``lmsdk serve --model minilm-gguf=PATH.gguf``: the options the command line builds."""
    from lmstudio_sdk.cli import build_parser
    from lmstudio_sdk.cli.serve import build_options
    from lmstudio_sdk.server import BackgroundServer

    argv = ["serve", "--host", "127.0.0.1", "--port", "0", "--model", f"{CLI_KEY}={minilm_gguf}"]
    with BackgroundServer(build_options(build_parser().parse_args(argv))) as server:
        yield server


@pytest.mark.timeout(TEST_TIMEOUT)
def test_lmsdk_serve_model_serves_an_embedding_gguf_as_an_embedding_model(
    cli_server: Any, python_client_command: list[str], reference_head: list[float]
) -> None:
    # The file header decides, as in a catalogue: bert with a pooling type is an embedding
    # model, on llama.cpp's embedding mode (the official Python client is the judge).
    summary = run_python_client(cli_server, python_client_command, CLI_KEY)
    assert_gguf_results(summary, reference_head, key=CLI_KEY)
