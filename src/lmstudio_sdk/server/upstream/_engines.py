"""The engine for a model an upstream lists."""

from __future__ import annotations

from ..engines.base import EmbeddingEngine, LLMEngine, ModelFacts
from ._embedding import UpstreamEmbeddingEngine
from ._llm import UpstreamLLMEngine
from ._pool import UpstreamPool

__all__ = ["create_upstream_engine"]


def create_upstream_engine(
    facts: ModelFacts, pool: UpstreamPool | None
) -> LLMEngine | EmbeddingEngine:
    """A new (unloaded) engine forwarding to ``pool`` for ``facts``."""
    if pool is None:  # pragma: no cover - the catalogue attaches the pool first
        raise RuntimeError("upstream model without upstreams")
    if facts.domain == "embedding":
        return UpstreamEmbeddingEngine(facts, pool)
    return UpstreamLLMEngine(facts, pool)
