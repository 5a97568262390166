"""GGUF embedding models (BERT and the like) run by llama.cpp in embedding mode.

A catalogue entry with ``type = "embedding"`` and a ``.gguf`` source is served by this
engine (``engine = "llama"``, like LM Studio, whose llama.cpp engine runs both kinds). The
facts come from the GGUF header (:func:`gguf_embedding_facts`): the architecture, the
context length (``<arch>.context_length``) and the vector length
(``<arch>.embedding_length``). llama.cpp pools the token vectors the way the GGUF says
(``<arch>.pooling_type``, written by the converter from the sentence-transformers pooling
config) and the vector is L2-normalised, as llama.cpp's own server does by default and as
sentence-transformers' MiniLM does, so cosine similarity is a dot product.

Tokenizing adds the special tokens the model sees (``[CLS]``/``[SEP]`` for BERT), as LM
Studio reports them and as the ``sentence`` engine does.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from lmstudio_sdk.server.engines._llama_model import LlamaModel, gguf_model_facts
from lmstudio_sdk.server.engines._models import (
    GGUFError,
    read_gguf_facts,
    read_gguf_metadata,
)
from lmstudio_sdk.server.engines.base import (
    EmbeddingEngine,
    InvalidRequestError,
    ModelFacts,
    ProgressCallback,
)

__all__ = [
    "LlamaEmbeddingEngine",
    "gguf_embedding_facts",
    "is_embedding_file",
    "is_embedding_gguf",
]

# llama.cpp's enum llama_pooling_type; NONE and RANK give no single sentence vector.
_POOLING_NONE, _POOLING_RANK = 0, 4


def is_embedding_gguf(metadata: dict[str, Any]) -> bool:
    """Whether a GGUF header describes an embedding model (a pooling type, no causal mask)."""
    architecture = metadata.get("general.architecture")
    pooling = metadata.get(f"{architecture}.pooling_type")
    causal = metadata.get(f"{architecture}.attention.causal")
    return pooling not in (None, _POOLING_NONE, _POOLING_RANK) or causal is False


def is_embedding_file(file_path: str | Path) -> bool:
    """Whether a file is a readable GGUF embedding model (``False`` for anything else)."""
    try:
        return is_embedding_gguf(read_gguf_metadata(file_path))
    except GGUFError:
        return False


def gguf_embedding_facts(
    file_path: str | Path, *, model_key: str | None = None, display_name: str | None = None
) -> ModelFacts:
    """Model facts of a local GGUF embedding model, read from its header."""
    file, metadata, architecture, context = read_gguf_facts(file_path)
    dimensions = metadata.get(f"{architecture}.embedding_length")
    if not isinstance(dimensions, int) or not is_embedding_gguf(metadata):
        raise InvalidRequestError(
            f"{file} is not an embedding model (its metadata has no pooling type).",
            suggestion='Serve it with type = "llm", or use a GGUF converted from an embedding '
            "model.",
        )
    return gguf_model_facts(
        file,
        metadata,
        architecture,
        context,
        domain="embedding",
        model_key=model_key,
        display_name=display_name,
    )


class LlamaEmbeddingEngine(LlamaModel, EmbeddingEngine):
    """A GGUF embedding model run by llama.cpp (one call at a time, in a worker thread).

    The whole context is one batch (``n_batch = n_ubatch = n_ctx``): llama.cpp embeds a
    non-causal model's text in a single micro-batch. Longer texts are embedded from their
    first ``n_ctx`` tokens (llama-cpp-python's truncation).
    """

    def __init__(self, facts: ModelFacts, *, n_threads: int = 2) -> None:
        if facts.engine != "llama" or facts.domain != "embedding" or facts.file_path is None:
            raise InvalidRequestError(f"{facts.model_key} is not a llama.cpp embedding model.")
        self.facts = facts
        self._n_threads = n_threads
        self._llm: Any = None
        self._lock = anyio.Lock()

    @property
    def dimensions(self) -> int:
        return int(self._require_llm().n_embd())

    async def load(
        self, context_length: int | None = None, *, progress: ProgressCallback | None = None
    ) -> None:
        length = self._start_load(context_length, self.facts.max_context_length, progress)
        llm = await self._build_llama(
            length, "GGUF embedding model", embedding=True, n_batch=length, n_ubatch=length
        )
        self._llm = llm
        if progress is not None:
            progress(1.0)

    async def aclose(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            # Wait for a running call (milliseconds) before freeing the model under it.
            with anyio.CancelScope(shield=True):
                async with self._lock:
                    llm.close()

    async def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` with the model's special tokens, not truncated."""
        self._require_llm()
        async with self._lock:
            # Looked up under the lock: an unload that came first has freed the model.
            llm = self._require_llm()
            call = functools.partial(
                llm.tokenize, text.encode("utf-8"), add_bos=True, special=False
            )
            return list(await anyio.to_thread.run_sync(call))

    async def embed(self, text: str) -> list[float]:
        self._require_llm()
        async with self._lock:
            llm = self._require_llm()
            return await anyio.to_thread.run_sync(functools.partial(_embed, llm, text))


def _embed(llm: Any, text: str) -> list[float]:
    # Llama.embed tokenizes with the special tokens, truncates to n_batch (= the context)
    # and reads the pooled vector of the sequence.
    vector = llm.embed(text, normalize=True, truncate=True)
    return [float(x) for x in vector]
