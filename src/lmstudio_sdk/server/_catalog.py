"""The model catalogue: models on offer, loaded instances, specifiers, loading and TTLs.

One catalogue per server, shared by every connection (all on the server's event loop).

* "Downloaded" models are the server's :class:`ServedModel` list, found by model key or by
  path (``publisher/repo/file``, or a prefix of it that ends at a ``/``).
* Loaded instances have an ``identifier`` (the model key, then ``key:2``, ``key:3``... for
  more instances of one model) and an opaque ``instanceReference``.
* Specifiers (PROTOCOL.md 4.1): ``instanceReference`` selects one instance; a query matches
  loaded instances on identifier (instance identifier or model key), path, domain and
  vision; ``query: {}`` means any loaded model of the namespace.
* TTL: an instance loaded with a TTL is unloaded after that much idle time. Time only
  counts while the instance is not in use (a long prediction is not cut short), and a use
  restarts it. One task per server watches the deadlines; it sleeps until the nearest one
  or until something changes, and is cancelled with the server.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import re
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import anyio
import anyio.lowlevel
import attrs
from anyio.abc import TaskStatus

from ..errors import LMStudioError
from ..protocol.endpoints.shared import (
    EmbeddingModelInfo,
    EmbeddingModelInstanceInfo,
    LLMInfo,
    LLMInstanceInfo,
    ModelQuery,
    ModelSpecifier,
    ModelSpecifierInstanceReference,
    ModelSpecifierQuery,
    Quantization,
)
from ..protocol.kv import KVConfig, KVConfigField
from . import _errors
from ._catalog_file import Preload
from ._logs import LogBus
from ._options import ServedModel
from .engines.base import Domain, EmbeddingEngine, LLMEngine, ModelFacts, ProgressCallback
from .engines.scripted import Faults, Script, ScriptedEmbeddingEngine, ScriptedEngine

__all__ = ["Instance", "ModelCatalog", "instance_info", "model_info"]

logger = logging.getLogger("lmstudio_sdk.server")

Engine = LLMEngine | EmbeddingEngine


def _common_info(facts: ModelFacts) -> dict[str, Any]:
    info: dict[str, Any] = {
        "model_key": facts.model_key,
        "format": facts.format,
        "display_name": facts.display_name,
        "path": facts.path,
        "size_bytes": int(facts.size_bytes),
        "publisher": facts.publisher,
        "indexed_model_identifier": facts.path,
        "device_identifier": None,  # this machine (no LM Link)
        "max_context_length": int(facts.max_context_length),
    }
    if facts.params_string:
        info["params_string"] = facts.params_string
    if facts.architecture:
        info["architecture"] = facts.architecture
    if facts.quantization is not None:
        info["quantization"] = Quantization(facts.quantization.name, int(facts.quantization.bits))
    return info


def model_info(facts: ModelFacts) -> LLMInfo | EmbeddingModelInfo:
    """The wire ``ModelInfo`` of a model on offer (every field of PROTOCOL.md 4.2)."""
    if facts.domain == "llm":
        return LLMInfo(
            **_common_info(facts),
            vision=facts.vision,
            trained_for_tool_use=facts.trained_for_tool_use,
        )
    return EmbeddingModelInfo(**_common_info(facts))


@attrs.define(eq=False)
class Instance:
    """A loaded model instance."""

    model: ServedModel
    engine: Engine
    identifier: str
    reference: str
    ttl_ms: int | None
    loaded_at: float
    context_length: int
    """The loaded context (kept here: it must still be reported after an unload)."""
    last_used_ms: float | None = None
    in_use: int = 0
    generating: int = 0
    deadline: float | None = None  # loop time at which the TTL expires (None: no TTL or busy)
    jit: bool = False
    """Loaded by ``getOrLoad`` (just in time): another JIT load may evict it."""
    seed: int | None = None
    """The load config's seed: the instance's sampling seed (``None``: random)."""
    _seeds: random.Random | None = attrs.field(default=None, init=False)

    def next_seed(self) -> int | None:
        """The seed of a prediction that names none: drawn from a generator seeded with the
        load seed, so two instances loaded with one seed answer a run of prompts alike."""
        if self.seed is None:
            return None
        if self._seeds is None:
            self._seeds = random.Random(self.seed)
        return self._seeds.randrange(2**31)

    @property
    def facts(self) -> ModelFacts:
        return self.model.facts

    @property
    def domain(self) -> Domain:
        return self.model.facts.domain

    def load_config(self) -> KVConfig:
        """What ``getLoadConfig`` returns (and ``success.loadModelConfig``)."""
        # JS reads llm.load.contextLength here and Python reads contextLength from the model
        # info (PROTOCOL.md 12.16): both come from the engine, so they always agree.
        fields = [KVConfigField(f"{self.domain}.load.contextLength", self.context_length)]
        if self.seed is not None:
            fields.append(
                KVConfigField(f"{self.domain}.load.seed", {"checked": True, "value": self.seed})
            )
        return KVConfig(fields)


def instance_info(instance: Instance) -> LLMInstanceInfo | EmbeddingModelInstanceInfo:
    """The wire instance info (``ttlMs``/``lastUsedTime`` are ``null`` when unset)."""
    facts = instance.facts
    extra: dict[str, Any] = {
        "identifier": instance.identifier,
        "instance_reference": instance.reference,
        "context_length": int(instance.context_length),
        "ttl_ms": instance.ttl_ms,
        "last_used_time": instance.last_used_ms,
    }
    if facts.domain == "llm":
        return LLMInstanceInfo(
            **_common_info(facts),
            **extra,
            vision=facts.vision,
            trained_for_tool_use=facts.trained_for_tool_use,
        )
    return EmbeddingModelInstanceInfo(**_common_info(facts), **extra)


_QUANT_SUFFIX = re.compile(
    r"[-._](?:i?q\d\w*|tq\d\w*|bf16|f16|f32|fp16|fp32|mxfp4\w*)$", re.IGNORECASE
)


def _path_forms(path: str) -> set[str]:
    # LM Studio paths name a file (publisher/repo/file.gguf); a specifier may leave out the
    # extension, and then the quantisation suffix too (".../llama-3.2-1b-instruct").
    path = path.lower()
    forms = {path}
    stem = re.sub(r"\.(gguf|safetensors)$", "", path)
    forms.add(stem)
    forms.add(_QUANT_SUFFIX.sub("", stem))
    return forms


def path_matches(path: str, wanted: str) -> bool:
    """Whether a specifier names this LM Studio path (the rules are in docs/server.md).

    Case-insensitive; the full path, the path without its extension or quantisation
    suffix, or a prefix of it that ends at a ``/`` boundary.
    """
    wanted = wanted.lower().replace("\\", "/").strip("/")
    if not wanted:
        return False
    path = path.lower()
    return wanted in _path_forms(path) or path.startswith(wanted + "/")


def model_matches(model: ServedModel, wanted: str) -> bool:
    """Whether ``wanted`` is the model's key, one of its aliases or names its path."""
    lowered = wanted.lower()
    return (
        model.key.lower() == lowered
        or any(alias.lower() == lowered for alias in model.aliases)
        or path_matches(model.facts.path, wanted)
    )


class ModelCatalog:
    """See the module docstring."""

    def __init__(
        self, models: Sequence[ServedModel], logs: LogBus, *, llama_threads: int = 2
    ) -> None:
        self._models = list(models)
        self._logs = logs
        self._llama_threads = llama_threads
        self._instances: list[Instance] = []
        self._load_locks: dict[str, anyio.Lock] = {}
        self._changed = anyio.Event()
        self._upstreams: Any = None  # an UpstreamPool once attach_upstreams ran

    async def attach_upstreams(self, pool: Any, facts: Sequence[ModelFacts]) -> None:
        """Offer the models the upstreams list, and load them (the upstreams own them:
        loading here only makes the handle clients see). A key a local model already uses
        stays the local model's (logged)."""
        self._upstreams = pool
        taken = {m.key.lower() for m in self._models}
        for model_facts in facts:
            if model_facts.model_key.lower() in taken:
                logger.warning(
                    "upstream model %r is not offered: a local model has that key",
                    model_facts.model_key,
                )
                continue
            model = ServedModel(model_facts)
            self._models.append(model)
            try:
                await self.load(model, identifier=model.key, context_length=None, ttl_ms=None)
            except LMStudioError as exc:
                # Offered but not loaded: a client's load retries it and gets the error.
                logger.warning("upstream model %r could not be loaded: %s", model.key, exc)

    # ------------------------------------------------------------------ models on offer

    @property
    def models(self) -> tuple[ServedModel, ...]:
        return tuple(self._models)

    def downloaded(self, domain: Domain | None = None) -> list[ServedModel]:
        return [m for m in self._models if domain is None or m.domain == domain]

    def find_model(self, domain: Domain, key_or_path: str) -> ServedModel:
        """The model on offer with this key or path; raises the reference's errors."""
        matches = [m for m in self._models if model_matches(m, key_or_path)]
        for model in matches:
            if model.domain == domain:
                return model
        if matches:
            raise _errors.domain_mismatch(key_or_path, matches[0].domain, domain)
        raise _errors.path_not_found(key_or_path, [m.key for m in self.downloaded(domain)])

    def set_script(
        self, key: str, *, script: Script | None = None, faults: Faults | None = None
    ) -> None:
        """Change what a scripted model says or how it fails, for new and loaded instances."""
        for index, model in enumerate(self._models):
            if model.key != key:
                continue
            if model.facts.engine != "scripted":
                raise ValueError(f"{key!r} is not a scripted model")
            model = attrs.evolve(
                model,
                script=script if script is not None else model.script,
                faults=faults if faults is not None else model.faults,
            )
            self._models[index] = model
            for instance in self._instances:
                if instance.model.key == key:
                    instance.model = model
                    engine = instance.engine
                    if isinstance(engine, (ScriptedEngine, ScriptedEmbeddingEngine)):
                        engine.script = model.script or Script()
                        engine.faults = model.faults or Faults()
            return
        raise KeyError(f"no model with key {key!r}")

    # ------------------------------------------------------------------ loaded instances

    def loaded(self, domain: Domain | None = None) -> list[Instance]:
        return [i for i in self._instances if domain is None or i.domain == domain]

    def _identifiers(self, domain: Domain) -> list[str]:
        return [i.identifier for i in self.loaded(domain)]

    def find_loaded(self, domain: Domain, identifier: str) -> Instance | None:
        """The instance with exactly this identifier, if loaded."""
        for instance in self.loaded(domain):
            if instance.identifier == identifier:
                return instance
        return None

    def loaded_instance_of(self, domain: Domain, key_or_path: str) -> Instance | None:
        """A loaded instance whose identifier, model key or path matches."""
        found = self.find_loaded(domain, key_or_path)
        if found is not None:
            return found
        return next((i for i in self.loaded(domain) if model_matches(i.model, key_or_path)), None)

    def _matches(self, instance: Instance, query: ModelQuery) -> bool:
        if isinstance(query.domain, str) and query.domain != instance.domain:
            return False
        if isinstance(query.device_identifier, str):
            return False  # no LM Link devices here
        if isinstance(query.identifier, str):
            wanted = query.identifier
            if not (instance.identifier == wanted or model_matches(instance.model, wanted)):
                return False
        if isinstance(query.path, str) and not path_matches(instance.facts.path, query.path):
            return False
        return not (isinstance(query.vision, bool) and instance.facts.vision != query.vision)

    def find(self, domain: Domain, specifier: ModelSpecifier) -> Instance | None:
        """The instance a specifier selects, or ``None``."""
        if isinstance(specifier, ModelSpecifierInstanceReference):
            return next(
                (i for i in self.loaded(domain) if i.reference == specifier.instance_reference),
                None,
            )
        if isinstance(specifier, ModelSpecifierQuery):
            return next((i for i in self.loaded(domain) if self._matches(i, specifier.query)), None)
        return None

    def resolve(self, domain: Domain, specifier: ModelSpecifier) -> Instance:
        """The instance a specifier selects; raises the reference's not-found errors."""
        found = self.find(domain, specifier)
        if found is not None:
            return found
        if isinstance(specifier, ModelSpecifierInstanceReference):
            raise _errors.specific_model_unloaded()
        query = specifier.query if isinstance(specifier, ModelSpecifierQuery) else ModelQuery()
        raise _errors.no_model_matching_query(query, self._identifiers(domain))

    # ------------------------------------------------------------------ load / unload

    def new_identifier(self, model: ServedModel) -> str:
        """``key``, or ``key:2``, ``key:3``... if taken."""
        taken = {i.identifier for i in self._instances}
        if model.key not in taken:
            return model.key
        return next(
            f"{model.key}:{n}" for n in itertools.count(2) if f"{model.key}:{n}" not in taken
        )

    def load_lock(self, model: ServedModel) -> anyio.Lock:
        """Held while a model loads, so that two getOrLoad of one model load it once."""
        return self._load_locks.setdefault(model.key, anyio.Lock())

    def _create_engine(self, model: ServedModel) -> Engine:
        facts = model.facts
        if facts.engine == "llama" and facts.domain == "embedding":
            from .engines.llama_embedding import LlamaEmbeddingEngine

            return LlamaEmbeddingEngine(facts, n_threads=self._llama_threads)
        if facts.engine == "llama":
            from .engines.llama import LlamaEngine

            return LlamaEngine(facts, n_threads=self._llama_threads)
        if facts.engine == "sentence":
            from .engines.sentence import SentenceEngine

            # numpy's BLAS gets the same thread budget as llama.cpp (no oversubscription).
            return SentenceEngine(facts, n_threads=self._llama_threads)
        if facts.engine == "upstream":
            from .upstream._engines import create_upstream_engine

            return create_upstream_engine(facts, self._upstreams)
        from .engines import create_engine

        return create_engine(facts, script=model.script, faults=model.faults)

    async def load(
        self,
        model: ServedModel,
        *,
        identifier: str,
        context_length: int | None,
        ttl_ms: int | None,
        progress: ProgressCallback | None = None,
        jit: bool = False,
        seed: int | None = None,
    ) -> Instance:
        """Load a new instance (the caller checked that ``identifier`` is free).

        A load cancelled at any point leaves nothing loaded: an engine whose work ends in a
        thread that cannot be interrupted (llama.cpp) finishes, and is then closed here.
        """
        engine = self._create_engine(model)
        self._logs.server_log(f"Loading {model.key} as {identifier!r}")
        try:
            await engine.load(context_length, progress=progress)
            # A thread-bound load returns even when cancelled meanwhile: look before
            # registering, or the instance would leak (its client already gave up on it).
            await anyio.lowlevel.checkpoint_if_cancelled()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await engine.aclose()
            raise
        if self.find_loaded(model.domain, identifier) is not None:
            # Someone took the identifier while we loaded (two loadModel with one name).
            with anyio.CancelScope(shield=True):
                await engine.aclose()
            raise _errors.identifier_taken(identifier)
        instance = Instance(
            model=model,
            engine=engine,
            identifier=identifier,
            reference=secrets.token_urlsafe(18),
            ttl_ms=ttl_ms,
            loaded_at=time.time(),
            context_length=engine.context_length,
            jit=jit,
            seed=seed,
        )
        self._instances.append(instance)
        self._touch(instance)
        self._logs.server_log(f"Loaded {model.key} as {identifier!r}")
        return instance

    async def unload(self, instance: Instance, *, reason: str = "") -> None:
        """Unload an instance (running generations end with ``modelUnloaded``)."""
        if instance not in self._instances:
            return
        self._instances.remove(instance)
        self._changed.set()
        with anyio.CancelScope(shield=True):
            await instance.engine.aclose()
        self._logs.server_log(f"Unloaded {instance.identifier!r}{reason}")

    async def unload_identifier(self, domain: Domain, identifier: str) -> None:
        """``unloadModel``: unload by exact identifier.

        An unknown one is LM Studio's ``generic.noModelMatchingQuery`` (the official clients
        raise their model-not-found error on it).
        """
        instance = self.find_loaded(domain, identifier)
        if instance is None:
            raise _errors.no_model_matching_query(
                ModelQuery(identifier=identifier), self._identifiers(domain)
            )
        await self.unload(instance)

    def jit_loaded(self, domain: Domain) -> list[Instance]:
        """Instances of a domain that ``getOrLoad`` loaded, oldest first."""
        return [i for i in self.loaded(domain) if i.jit]

    async def preload(self, preloads: Sequence[Preload]) -> None:
        """Load a catalogue's ``preload`` models (server start; explicit, never evicted)."""
        for preload in preloads:
            model = next(m for m in self._models if m.key == preload.key)
            await self.load(
                model, identifier=preload.identifier, context_length=None, ttl_ms=preload.ttl_ms
            )

    async def unload_all(self) -> None:
        for instance in list(self._instances):
            await self.unload(instance)

    # ------------------------------------------------------------------ use and TTL

    @contextmanager
    def use(self, instance: Instance, *, generating: bool = False) -> Iterator[Instance]:
        """Mark the instance busy for the block (no TTL unload); a use restarts its TTL."""
        instance.in_use += 1
        instance.generating += int(generating)
        instance.deadline = None
        instance.last_used_ms = float(int(time.time() * 1000))
        try:
            yield instance
        finally:
            instance.in_use -= 1
            instance.generating -= int(generating)
            self._touch(instance)

    def _touch(self, instance: Instance) -> None:
        if instance.ttl_ms is not None and instance.in_use == 0:
            instance.deadline = anyio.current_time() + instance.ttl_ms / 1000.0
        self._changed.set()

    async def run_ttl(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Unload idle instances whose TTL expired; runs until cancelled (server shutdown)."""
        task_status.started()
        while True:
            self._changed = anyio.Event()
            now = anyio.current_time()
            for instance in list(self._instances):
                if instance.deadline is not None and instance.deadline <= now:
                    await self.unload(
                        instance, reason=f" (idle for its TTL of {instance.ttl_ms} ms)"
                    )
            deadlines = [i.deadline for i in self._instances if i.deadline is not None]
            delay = min(deadlines) - anyio.current_time() if deadlines else math.inf
            with anyio.move_on_after(max(delay, 0.0)):
                await self._changed.wait()

    async def aclose(self) -> None:
        """Unload everything (server shutdown)."""
        await self.unload_all()
        if self._upstreams is not None:
            await self._upstreams.aclose()
