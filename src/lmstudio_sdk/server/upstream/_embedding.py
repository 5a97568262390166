"""An embedding model served by upstreams, through ``/embeddings``.

Requests that arrive together are sent together: the first caller waits one turn of the
event loop for others, then posts every text queued so far (up to :data:`MAX_BATCH`) in
one ``input`` list, and hands each caller its vector.
"""

from __future__ import annotations

import math
from typing import Any

import anyio
import anyio.lowlevel
import attrs

from ..engines.base import (
    ContextLengthState,
    EmbeddingEngine,
    ModelFacts,
    ModelNotLoadedError,
    ProgressCallback,
)
from ._pool import UpstreamError, UpstreamPool

__all__ = ["MAX_BATCH", "UpstreamEmbeddingEngine"]

MAX_BATCH = 64


@attrs.define(eq=False)
class _Slot:
    text: str
    done: anyio.Event = attrs.Factory(anyio.Event)
    vector: list[float] | None = None
    error: BaseException | None = None


class UpstreamEmbeddingEngine(ContextLengthState, EmbeddingEngine):
    """See the module docstring; loading asks for one embedding to learn the dimensions."""

    def __init__(self, facts: ModelFacts, pool: UpstreamPool) -> None:
        self.facts = facts
        self._pool = pool
        self._dimensions = 0
        self._queue: list[_Slot] = []
        self.batches_sent = 0
        """How many ``/embeddings`` requests went out (tests check the batching)."""

    @property
    def dimensions(self) -> int:
        return self._dimensions

    async def load(
        self, context_length: int | None = None, *, progress: ProgressCallback | None = None
    ) -> None:
        context = self._check_context_length(context_length, self.facts.max_context_length)
        self._context_length = context
        try:
            self._dimensions = len(await self.embed("dimensions"))
        except BaseException:
            self._context_length = None
            raise
        if progress is not None:
            progress(1.0)

    async def tokenize(self, text: str) -> list[int]:
        return await self._pool.tokenize(self.facts.model_key, text)

    async def embed(self, text: str) -> list[float]:
        if self._context_length is None:
            raise ModelNotLoadedError(f"{self.facts.model_key} is not loaded.")
        slot = _Slot(text)
        self._queue.append(slot)
        if len(self._queue) == 1:
            await self._lead()  # nobody is collecting a batch: this call does
        await slot.done.wait()
        if slot.error is not None:
            raise slot.error
        assert slot.vector is not None
        return slot.vector

    async def _lead(self) -> None:
        """Wait a turn for company, then send everything queued, in batches. The sending is
        shielded: the other callers wait on its answer."""
        try:
            await anyio.lowlevel.checkpoint()
        finally:
            with anyio.CancelScope(shield=True):
                while self._queue:
                    batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                    await self._send(batch)

    async def _send(self, batch: list[_Slot]) -> None:
        try:
            vectors = await self._request([slot.text for slot in batch])
        except BaseException as exc:
            for slot in batch:
                slot.error = exc
                slot.done.set()
            return
        for slot, vector in zip(batch, vectors, strict=False):
            slot.vector = vector
            slot.done.set()
        self.batches_sent += 1

    async def _request(self, texts: list[str]) -> list[list[float]]:
        body: dict[str, Any] = {"model": self.facts.model_key, "input": texts}
        answer = await self._pool.post_json(self.facts.model_key, "/embeddings", body)
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list) or len(data) != len(texts):
            raise UpstreamError(
                f"The upstream answered /embeddings for {self.facts.model_key} with "
                f"{len(data) if isinstance(data, list) else 'no'} vectors for {len(texts)} inputs."
            )
        vectors: list[list[float]] = [[] for _ in texts]
        for position, item in enumerate(data):
            index = item.get("index", position) if isinstance(item, dict) else position
            vector = item.get("embedding") if isinstance(item, dict) else None
            if (
                not isinstance(vector, list)
                or not isinstance(index, int)
                or not 0 <= index < len(texts)
                or not all(isinstance(x, (int, float)) and math.isfinite(x) for x in vector)
            ):
                raise UpstreamError(
                    f"The upstream sent a malformed embedding for {self.facts.model_key}."
                )
            vectors[index] = [float(x) for x in vector]
        return vectors
