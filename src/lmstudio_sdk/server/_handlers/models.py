"""Model management, shared by ``llm`` and ``embedding`` (PROTOCOL.md 3.1).

``getOrLoad``: ``alreadyLoaded``, or ``startLoading`` -> ``loadProgress``\\* -> ``loadSuccess``.
``loadModel``: ``resolved`` -> ``progress``\\* -> ``success``. Progress is monotonic and
always ends with a report of 1.0, so even a load that takes 0.1 s reports progress. A
``cancel`` during the load aborts it and ends the channel with ``channelError``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import anyio

from ...config import LOAD_OPTIONS
from ...protocol._unset import UNSET
from ...protocol.endpoints import embedding as embedding_ep
from ...protocol.endpoints import llm as llm_ep
from ...protocol.endpoints.shared import (
    CountTokensParameter,
    CountTokensResult,
    EstimatedModelMemoryUsage,
    EstimatedResourcesUsage,
    EstimateModelUsageParameter,
    GetBasePredictionConfigParameter,
    GetInstanceProcessingStateParameter,
    GetLoadConfigParameter,
    GetModelInfoParameter,
    GetOrLoadCreationParameter,
    GetOrLoadLoadProgress,
    GetOrLoadUnloadingOtherJITModel,
    InstanceProcessingState,
    LoadModelCreationParameter,
    LoadModelProgress,
    TokenizeParameter,
    TokenizeResult,
    UnloadModelParameter,
)
from ...protocol.kv import KVConfig, KVConfigStack, collapse
from .._catalog import Instance, instance_info, model_info
from .._connection import CallContext, ChannelContext
from .._errors import bad_request, describe, identifier_taken
from .._options import ServedModel
from ..engines.base import Domain
from ._prediction import default_prediction_config
from ._table import TABLE, domain_of

__all__: list[str] = []


def _ns(domain: Domain) -> Any:
    return llm_ep if domain == "llm" else embedding_ep


def _load_option(stack: KVConfigStack, domain: Domain, name: str) -> Any:
    """Load option ``name`` of a config stack as the SDK reads it (``None``: not given)."""
    option = LOAD_OPTIONS[name]  # the SDK's declaration: key and check
    key = option.keys[domain]
    value = collapse(stack).get(key, UNSET)
    if value is UNSET or value is None:
        return None
    try:
        return option.read(name, value)
    except ValueError as exc:
        raise bad_request(f"Invalid value for {key}: {describe(value)}.", cause=f"{exc}.") from None


def context_length_of(stack: KVConfigStack, domain: Domain) -> int | None:
    """The requested context length of a load config stack (``None``: engine default)."""
    length: int | None = _load_option(stack, domain, "context_length")
    return length


def seed_of(stack: KVConfigStack, domain: Domain) -> int | None:
    """The load config's seed (``None``: none given, unchecked, or -1 for a random one)."""
    seed = _load_option(stack, domain, "seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 else None


def _ttl(value: int | Any) -> int | None:
    return value if isinstance(value, int) else None


# --- queries ---------------------------------------------------------------------------------


@TABLE.rpc(llm_ep.LIST_LOADED, embedding_ep.LIST_LOADED)
async def list_loaded(context: CallContext, parameter: None) -> list[Any]:
    return [instance_info(i) for i in context.server.catalog.loaded(domain_of(context))]


@TABLE.rpc(llm_ep.GET_MODEL_INFO, embedding_ep.GET_MODEL_INFO)
async def get_model_info(context: CallContext, parameter: GetModelInfoParameter) -> Any:
    catalog = context.server.catalog
    domain = domain_of(context)
    instance = catalog.find(domain, parameter.specifier)
    if instance is None:
        if parameter.throw_if_not_found:
            catalog.resolve(domain, parameter.specifier)  # raises the not-found error
        return None  # an rpcResult without "result" (z.void on the client side)
    return instance_info(instance)


@TABLE.rpc(llm_ep.GET_LOAD_CONFIG, embedding_ep.GET_LOAD_CONFIG)
async def get_load_config(context: CallContext, parameter: GetLoadConfigParameter) -> KVConfig:
    instance = context.server.catalog.resolve(domain_of(context), parameter.specifier)
    return instance.load_config()


@TABLE.rpc(llm_ep.GET_BASE_PREDICTION_CONFIG, embedding_ep.GET_BASE_PREDICTION_CONFIG)
async def get_base_prediction_config(
    context: CallContext, parameter: GetBasePredictionConfigParameter
) -> KVConfig:
    domain = domain_of(context)
    context.server.catalog.resolve(domain, parameter.specifier)
    return default_prediction_config() if domain == "llm" else KVConfig()


@TABLE.rpc(llm_ep.GET_INSTANCE_PROCESSING_STATE, embedding_ep.GET_INSTANCE_PROCESSING_STATE)
async def get_instance_processing_state(
    context: CallContext, parameter: GetInstanceProcessingStateParameter
) -> InstanceProcessingState:
    instance = context.server.catalog.resolve(domain_of(context), parameter.specifier)
    if instance.generating:
        # Generations of one engine run one at a time: the others wait in a queue.
        return InstanceProcessingState("generating", max(0, instance.generating - 1))
    status = "computingEmbedding" if instance.in_use and instance.domain == "embedding" else "idle"
    return InstanceProcessingState(status, 0)


@TABLE.rpc(llm_ep.ESTIMATE_MODEL_USAGE, embedding_ep.ESTIMATE_MODEL_USAGE)
async def estimate_model_usage(
    context: CallContext, parameter: EstimateModelUsageParameter
) -> EstimatedResourcesUsage:
    domain = domain_of(context)
    model = context.server.catalog.find_model(domain, parameter.model_key)
    length = context_length_of(parameter.load_config_stack, domain) or min(
        4096, model.facts.max_context_length
    )
    # CPU only: no VRAM. The context estimate is rough (a KV cache of ~64 KiB per token
    # for these small models), hence confidence "low".
    model_bytes = float(model.facts.size_bytes)
    context_bytes = float(length * 64 * 1024)
    return EstimatedResourcesUsage(
        EstimatedModelMemoryUsage(
            confidence="low",
            model_vram_bytes=0.0,
            context_vram_bytes=0.0,
            total_vram_bytes=0.0,
            model_bytes=model_bytes,
            context_bytes=context_bytes,
            total_bytes=model_bytes + context_bytes,
        ),
        passes_guardrails=True,
    )


@TABLE.rpc(llm_ep.TOKENIZE, embedding_ep.TOKENIZE)
async def tokenize(context: CallContext, parameter: TokenizeParameter) -> TokenizeResult:
    catalog = context.server.catalog
    instance = catalog.resolve(domain_of(context), parameter.specifier)
    with catalog.use(instance):
        return TokenizeResult(
            [int(t) for t in await instance.engine.tokenize(parameter.input_string)]
        )


@TABLE.rpc(llm_ep.COUNT_TOKENS, embedding_ep.COUNT_TOKENS)
async def count_tokens(context: CallContext, parameter: CountTokensParameter) -> CountTokensResult:
    catalog = context.server.catalog
    instance = catalog.resolve(domain_of(context), parameter.specifier)
    with catalog.use(instance):
        return CountTokensResult(int(await instance.engine.count_tokens(parameter.input_string)))


@TABLE.rpc(llm_ep.UNLOAD_MODEL, embedding_ep.UNLOAD_MODEL)
async def unload_model(context: CallContext, parameter: UnloadModelParameter) -> None:
    await context.server.catalog.unload_identifier(domain_of(context), parameter.identifier)


# --- loading ---------------------------------------------------------------------------------


async def load_with_progress(
    context: ChannelContext,
    model: ServedModel,
    *,
    identifier: str,
    stack: KVConfigStack,
    ttl_ms: int | None,
    progress_packet: Callable[[float], Any],
    jit: bool = False,
) -> Instance:
    """Load ``model``, streaming monotonic progress packets that end with 1.0.

    A ``cancel`` from the client aborts the load (``channelError``).
    """
    domain = model.domain
    length = context_length_of(stack, domain)
    send_progress, receive_progress = anyio.create_memory_object_stream[float](math.inf)
    sent = -1.0

    def on_progress(value: float) -> None:
        # Called by the engine on the loop thread; never blocks.
        if isinstance(value, (int, float)) and math.isfinite(value):
            send_progress.send_nowait(min(1.0, max(0.0, float(value))))

    async def forward() -> None:
        nonlocal sent
        async with receive_progress:
            async for value in receive_progress:
                if value > sent:
                    sent = value
                    await context.send(progress_packet(value))

    instance: Instance | None = None
    async with anyio.create_task_group() as outer:
        outer.start_soon(forward)
        try:
            async with anyio.create_task_group() as inner:

                async def cancel_on_request() -> None:
                    await context.cancel_requested.wait()
                    inner.cancel_scope.cancel()

                inner.start_soon(cancel_on_request)
                context.server.check_load_quota(context.client_identifier)
                instance = await context.server.catalog.load(
                    model,
                    identifier=identifier,
                    context_length=length,
                    seed=seed_of(stack, domain),
                    ttl_ms=ttl_ms,
                    progress=on_progress,
                    jit=jit,
                )
                context.server.record_load(context.client_identifier, instance.identifier)
                inner.cancel_scope.cancel()
        finally:
            send_progress.close()
    if instance is None:
        # Nothing was registered (the catalogue closed the engine); say so to the client.
        raise bad_request(
            f"Loading {model.key} was cancelled.", cause="The client cancelled the load."
        )
    if sent < 1.0:
        await context.send(progress_packet(1.0))
    return instance


async def unload_other_jit_models(context: ChannelContext, domain: Domain) -> None:
    """LM Studio's default (Auto-Evict): a JIT load first unloads the earlier JIT loads.

    Only instances ``getOrLoad`` loaded go, each announced with an ``unloadingOtherJITModel``
    packet; explicitly loaded ones stay. Only those of the same domain: an application that
    JIT-loads an LLM and an embedding model (RAG, the official clients' examples) keeps both.
    """
    catalog = context.server.catalog
    for other in catalog.jit_loaded(domain):
        await context.send(GetOrLoadUnloadingOtherJITModel(instance_info(other)))
        await catalog.unload(other, reason=" (another model was loaded just in time)")


@TABLE.channel(llm_ep.GET_OR_LOAD, embedding_ep.GET_OR_LOAD)
async def get_or_load(context: ChannelContext, parameter: GetOrLoadCreationParameter) -> None:
    domain = domain_of(context)
    ns = _ns(domain)
    catalog = context.server.catalog
    instance = catalog.loaded_instance_of(domain, parameter.identifier)
    if instance is not None:
        await context.send(ns.GetOrLoadAlreadyLoaded(instance_info(instance)))
        return
    model = catalog.find_model(domain, parameter.identifier)
    async with catalog.load_lock(model):
        # Another client may have loaded it while we waited for the lock.
        instance = catalog.loaded_instance_of(domain, model.key)
        if instance is not None:
            await context.send(ns.GetOrLoadAlreadyLoaded(instance_info(instance)))
            return
        identifier = catalog.new_identifier(model)
        await context.send(ns.GetOrLoadStartLoading(identifier, model_info(model.facts)))
        if context.server.options.jit_unload_previous:
            await unload_other_jit_models(context, domain)
        instance = await load_with_progress(
            context,
            model,
            identifier=identifier,
            stack=parameter.load_config_stack,
            ttl_ms=_ttl(parameter.load_ttl_ms),
            progress_packet=GetOrLoadLoadProgress,
            jit=True,
        )
    await context.send(ns.GetOrLoadLoadSuccess(instance_info(instance)))


@TABLE.channel(llm_ep.LOAD_MODEL, embedding_ep.LOAD_MODEL)
async def load_model(context: ChannelContext, parameter: LoadModelCreationParameter) -> None:
    domain = domain_of(context)
    ns = _ns(domain)
    catalog = context.server.catalog
    model = catalog.find_model(domain, parameter.model_key)
    await context.send(ns.LoadModelResolved(model_info(model.facts)))
    async with catalog.load_lock(model):
        if isinstance(parameter.identifier, str):
            identifier = parameter.identifier
            if catalog.find_loaded(domain, identifier) is not None:
                raise identifier_taken(identifier)
        else:
            identifier = catalog.new_identifier(model)
        instance = await load_with_progress(
            context,
            model,
            identifier=identifier,
            stack=parameter.load_config_stack,
            ttl_ms=_ttl(parameter.ttl_ms),
            progress_packet=LoadModelProgress,
        )
    await context.send(ns.LoadModelSuccess(instance_info(instance)))
