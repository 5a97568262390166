"""The model-management endpoints ``llm`` and ``embedding`` both have (PROTOCOL.md 3.1).

The two namespaces have the same model-management endpoints and packets; only the
model-info types differ (``LLMInfo``/``LLMInstanceInfo`` or ``EmbeddingModelInfo``/
``EmbeddingModelInstanceInfo``). So the packet classes here are generic over those types,
and :func:`model_endpoints` declares one namespace's endpoints with its info types: its
unions decode each ``info`` as that namespace's class. The namespace modules re-export the
packet classes and bind the specs to their module constants (``llm.LOAD_MODEL``...).
"""

from __future__ import annotations

import functools
import operator
import types
from typing import Any, Generic, TypeVar, cast

import attrs

from .._unset import UNSET, UnsetType
from ..codec import Unknown, register_tagged_union, variant
from ..kv import KVConfig
from ..merging import LATEST_PROGRESS
from . import shared
from ._spec import ChannelSpec, RpcSpec

__all__ = [
    "GetOrLoadAlreadyLoaded",
    "GetOrLoadLoadSuccess",
    "GetOrLoadStartLoading",
    "LoadModelResolved",
    "LoadModelSuccess",
    "ModelEndpoints",
    "model_endpoints",
]

InfoT = TypeVar("InfoT")
"""A namespace's info on a model on disk (``LLMInfo``, ``EmbeddingModelInfo``)."""
InstanceT = TypeVar("InstanceT")
"""A namespace's info on a loaded instance (``LLMInstanceInfo``...)."""


@variant("resolved")
class LoadModelResolved(Generic[InfoT]):
    """The model key resolved to a file; ``ambiguous`` lists other matches."""

    info: InfoT
    ambiguous: list[str] | UnsetType = UNSET


@variant("success")
class LoadModelSuccess(Generic[InstanceT]):
    info: InstanceT


@variant("alreadyLoaded")
class GetOrLoadAlreadyLoaded(Generic[InstanceT]):
    info: InstanceT


@variant("startLoading")
class GetOrLoadStartLoading(Generic[InfoT]):
    identifier: str
    info: InfoT


@variant("loadSuccess")
class GetOrLoadLoadSuccess(Generic[InstanceT]):
    info: InstanceT


@attrs.frozen
class ModelEndpoints(Generic[InfoT, InstanceT]):
    """One namespace's model-management endpoints (see :func:`model_endpoints`)."""

    unload_model: RpcSpec[shared.UnloadModelParameter, None]
    list_loaded: RpcSpec[None, list[InstanceT]]
    # An ``rpcResult`` without ``result`` (not found, throwIfNotFound=false) decodes to None.
    get_model_info: RpcSpec[shared.GetModelInfoParameter, InstanceT | None]
    get_load_config: RpcSpec[shared.GetLoadConfigParameter, KVConfig]
    get_base_prediction_config: RpcSpec[shared.GetBasePredictionConfigParameter, KVConfig]
    get_instance_processing_state: RpcSpec[
        shared.GetInstanceProcessingStateParameter, shared.InstanceProcessingState
    ]
    estimate_model_usage: RpcSpec[
        shared.EstimateModelUsageParameter, shared.EstimatedResourcesUsage
    ]
    tokenize: RpcSpec[shared.TokenizeParameter, shared.TokenizeResult]
    count_tokens: RpcSpec[shared.CountTokensParameter, shared.CountTokensResult]
    load_model: ChannelSpec
    get_or_load: ChannelSpec


def _bound(generic: Any, argument: type) -> type:
    """``generic[argument]`` as a class of its own: union tags are read from classes."""

    def body(namespace: dict[str, Any]) -> None:
        namespace["__module__"] = __name__

    return attrs.frozen(types.new_class(generic.__name__, (generic[argument],), exec_body=body))


def _tagged_union(*members: Any) -> Any:
    """``A | B | ... | Unknown``, registered with the converter."""
    union = functools.reduce(operator.or_, (*members, Unknown))
    register_tagged_union(union)
    return union


def model_endpoints(
    namespace: str, info: type[InfoT], instance: type[InstanceT]
) -> ModelEndpoints[InfoT, InstanceT]:
    """The model-management endpoints of ``namespace``, whose model infos are ``info``
    (a model on disk) and ``instance`` (a loaded instance)."""
    load_packets = _tagged_union(
        _bound(LoadModelResolved, info),
        shared.LoadModelProgress,
        _bound(LoadModelSuccess, instance),
    )
    get_or_load_packets = _tagged_union(
        _bound(GetOrLoadAlreadyLoaded, instance),
        _bound(GetOrLoadStartLoading, info),
        shared.GetOrLoadUnloadingOtherJITModel,
        shared.GetOrLoadLoadProgress,
        _bound(GetOrLoadLoadSuccess, instance),
    )

    def channel(name: str, creation_parameter: type, to_client: Any) -> ChannelSpec:
        return shared.cancellable_channel(
            namespace, name, creation_parameter, to_client, merge=LATEST_PROGRESS
        )

    return ModelEndpoints(
        unload_model=RpcSpec(namespace, "unloadModel", shared.UnloadModelParameter, None),
        list_loaded=RpcSpec(
            namespace, "listLoaded", None, cast(Any, types.GenericAlias(list, (instance,)))
        ),
        get_model_info=RpcSpec(
            namespace, "getModelInfo", shared.GetModelInfoParameter, cast(Any, instance) | None
        ),
        get_load_config=RpcSpec(
            namespace, "getLoadConfig", shared.GetLoadConfigParameter, KVConfig
        ),
        get_base_prediction_config=RpcSpec(
            namespace, "getBasePredictionConfig", shared.GetBasePredictionConfigParameter, KVConfig
        ),
        get_instance_processing_state=RpcSpec(
            namespace,
            "getInstanceProcessingState",
            shared.GetInstanceProcessingStateParameter,
            shared.InstanceProcessingState,
        ),
        estimate_model_usage=RpcSpec(
            namespace,
            "estimateModelUsage",
            shared.EstimateModelUsageParameter,
            shared.EstimatedResourcesUsage,
        ),
        tokenize=RpcSpec(namespace, "tokenize", shared.TokenizeParameter, shared.TokenizeResult),
        count_tokens=RpcSpec(
            namespace, "countTokens", shared.CountTokensParameter, shared.CountTokensResult
        ),
        load_model=channel("loadModel", shared.LoadModelCreationParameter, load_packets),
        get_or_load=channel("getOrLoad", shared.GetOrLoadCreationParameter, get_or_load_packets),
    )
