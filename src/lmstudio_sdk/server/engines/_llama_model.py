"""What the two llama.cpp engines share: GGUF facts and the ``Llama`` object's life.

:class:`~.llama.LlamaEngine` (text generation) and
:class:`~.llama_embedding.LlamaEmbeddingEngine` both read their facts from a GGUF header and
both hold one ``llama_cpp.Llama``, built in a worker thread; they differ in the options they
build it with and in what they do with it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from lmstudio_sdk.server.engines._llama_thread import _import_llama_cpp
from lmstudio_sdk.server.engines._models import gguf_quantization
from lmstudio_sdk.server.engines.base import (
    Domain,
    EngineError,
    InvalidRequestError,
    ModelFacts,
    ModelNotLoadedError,
    ProgressCallback,
    Quantization,
    _Engine,
)

__all__ = ["LlamaModel", "gguf_model_facts"]


def gguf_model_facts(
    file: Path,
    metadata: dict[str, Any],
    architecture: str,
    context_length: int,
    *,
    domain: Domain,
    model_key: str | None = None,
    display_name: str | None = None,
    publisher: str | None = None,
    path: str | None = None,
    **extra: Any,
) -> ModelFacts:
    """The facts of a GGUF served by llama.cpp, from what ``read_gguf_facts`` read.

    Names default to the header's (``general.name``, ``general.organization``) or the file's
    stem; ``path`` (what clients see) to ``<publisher>/<stem>/<file name>``. ``extra`` are
    further :class:`ModelFacts` fields.
    """
    publisher = publisher or metadata.get("general.organization") or "local"
    quantization = gguf_quantization(metadata, file.name)
    return ModelFacts(
        model_key=model_key or file.stem.lower(),
        display_name=display_name or metadata.get("general.name") or file.stem,
        publisher=publisher,
        domain=domain,
        engine="llama",
        format="gguf",
        path=path or f"{publisher}/{file.stem}/{file.name}",
        file_path=str(file),
        size_bytes=file.stat().st_size,
        max_context_length=context_length,
        architecture=architecture,
        params_string=metadata.get("general.size_label"),
        quantization=Quantization(*quantization) if quantization else None,
        **extra,
    )


class LlamaModel(_Engine):
    """Load state of an engine that holds one ``llama_cpp.Llama`` (``_llm``, ``None`` when
    unloaded). Mix in before :class:`LLMEngine` or :class:`EmbeddingEngine`."""

    _llm: Any = None
    _n_threads: int

    @property
    def loaded(self) -> bool:
        """Whether the engine is loaded."""
        return self._llm is not None

    @property
    def context_length(self) -> int:
        """The loaded context length (llama.cpp may round a small one up)."""
        return int(self._require_llm().n_ctx())

    def _require_llm(self) -> Any:
        if self._llm is None:
            raise ModelNotLoadedError(f"{self.facts.model_key} is not loaded.")
        return self._llm

    def _start_load(
        self, context_length: int | None, default: int, progress: ProgressCallback | None
    ) -> int:
        """Check that a load may start (not loaded, a valid length, llama-cpp-python there),
        report progress 0 and return the context length to build with."""
        if self._llm is not None:
            raise InvalidRequestError(f"{self.facts.model_key} is already loaded.")
        length = self._check_context_length(context_length, default)
        _import_llama_cpp()
        if progress is not None:
            progress(0.0)
        return length

    async def _build_llama(self, length: int, kind: str, **options: Any) -> Any:
        """A new ``Llama`` of this model with ``length`` tokens of context, built in a worker
        thread; ``kind`` names the model in the error for a file llama.cpp cannot load.

        If this is cancelled, the thread still finishes and the model it built is dropped
        (``Llama`` frees itself when collected).
        """
        build = functools.partial(
            _import_llama_cpp().Llama,
            model_path=self.facts.file_path,
            n_ctx=length,
            n_threads=self._n_threads,
            n_threads_batch=self._n_threads,
            verbose=False,
            **options,
        )
        try:
            return await anyio.to_thread.run_sync(build)
        except ValueError as exc:
            raise EngineError(
                f"llama.cpp could not load {self.facts.file_path}: {exc}",
                suggestion=f"Check that the file is a complete {kind}.",
            ) from exc
