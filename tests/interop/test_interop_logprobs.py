"""Log probabilities (``llm.prediction.logProbs``) from the real SmolLM2, read through our
SDK: neither official client surfaces them (``@lmstudio/sdk`` 1.5.0's fragment schema drops
``tokens``; ``lmstudio`` 1.5.0 has no option to ask for them), so the official JS client only
shows that asking for them works (``test_interop_settings.py``)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from test_interop import LLM_KEY, TEST_TIMEOUT

from lmstudio_sdk import AsyncClient, PredictionFragment, PredictionResult

pytestmark = [pytest.mark.interop, pytest.mark.model]

PROMPT = "Write one short sentence about the sea."


async def _stream(server: Any, **options: Any) -> tuple[list[PredictionFragment], PredictionResult]:
    async with AsyncClient(server.url) as client:
        model = await client.llm.model(LLM_KEY)
        async with model.respond_stream(PROMPT, temperature=0, max_tokens=24, **options) as stream:
            fragments = [fragment async for fragment in stream.fragments()]
        return fragments, stream.result()


@pytest.mark.timeout(TEST_TIMEOUT)
async def test_each_generated_token_has_its_log_probability_and_candidates(
    interop_server: Any,
) -> None:
    # No repeat penalty: the values are the model's distribution, before any penalty, so
    # greedy decoding then takes the most likely candidate.
    fragments, result = await _stream(interop_server, log_probs=3, repeat_penalty=False)
    tokens = [token for fragment in fragments for token in fragment.tokens]
    assert len(tokens) == result.stats.predicted_tokens_count > 0
    assert "".join(token.text for token in tokens) == result.content
    for token in tokens:
        assert token.log_prob is not None
        assert token.log_prob <= 0
        assert len(token.candidates) == 3
        probabilities = [c.log_prob for c in token.candidates]
        assert probabilities == sorted(probabilities, reverse=True)
        assert all(p <= 0 for p in probabilities)
        assert sum(math.exp(p) for p in probabilities) <= 1 + 1e-6
        assert (token.candidates[0].id, token.candidates[0].text) == (token.id, token.text)
        assert token.candidates[0].log_prob == pytest.approx(token.log_prob)


@pytest.mark.timeout(TEST_TIMEOUT)
async def test_log_probabilities_only_when_asked_and_candidates_only_when_counted(
    interop_server: Any,
) -> None:
    plain, plain_result = await _stream(interop_server)
    assert plain
    assert all(fragment.tokens == () for fragment in plain)
    bare, bare_result = await _stream(interop_server, log_probs=0)
    tokens = [token for fragment in bare for token in fragment.tokens]
    assert len(tokens) == bare_result.stats.predicted_tokens_count
    assert all(token.candidates == () and token.log_prob is not None for token in tokens)
    # Asking for them does not change the reply.
    assert bare_result.content == plain_result.content
