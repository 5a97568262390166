"""The ``embedding`` namespace: model management, embeddings, tokens (PROTOCOL.md 3.1, 3.3).

The model-management endpoints are those of ``llm`` with the embedding model-info types;
the packet classes have the same names as in :mod:`.llm`, so code shared by both
namespaces can dispatch on ``packet.type``. There is no batch ``embedStrings``: one RPC per
string.
"""

from __future__ import annotations

from typing import Any, Literal, cast

import attrs

from .._unset import UNSET, UnsetType
from ..codec import Unknown, register_tagged_union
from ..kv import KVConfig
from ..merging import LATEST_PROGRESS
from ._spec import ChannelSpec, RpcSpec
from .shared import (
    CancelPacket,
    CancelToServerPacket,
    CountTokensParameter,
    CountTokensResult,
    EmbeddingModelInfo,
    EmbeddingModelInstanceInfo,
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
    ModelSpecifier,
    TokenizeParameter,
    TokenizeResult,
    UnloadModelParameter,
)

__all__ = [
    "COUNT_TOKENS",
    "EMBED_STRING",
    "ESTIMATE_MODEL_USAGE",
    "GET_BASE_PREDICTION_CONFIG",
    "GET_INSTANCE_PROCESSING_STATE",
    "GET_LOAD_CONFIG",
    "GET_MODEL_INFO",
    "GET_OR_LOAD",
    "LIST_LOADED",
    "LOAD_MODEL",
    "TOKENIZE",
    "UNLOAD_MODEL",
    "EmbedStringParameter",
    "EmbedStringResult",
    "GetOrLoadAlreadyLoaded",
    "GetOrLoadLoadSuccess",
    "GetOrLoadStartLoading",
    "GetOrLoadToClientPacket",
    "LoadModelResolved",
    "LoadModelSuccess",
    "LoadModelToClientPacket",
]

NAMESPACE = "embedding"


@attrs.frozen
class LoadModelResolved:
    """The model key resolved to a file; ``ambiguous`` lists other matches."""

    type: Literal["resolved"] = attrs.field(default="resolved", init=False)
    info: EmbeddingModelInfo
    ambiguous: list[str] | UnsetType = UNSET


@attrs.frozen
class LoadModelSuccess:
    type: Literal["success"] = attrs.field(default="success", init=False)
    info: EmbeddingModelInstanceInfo


LoadModelToClientPacket = LoadModelResolved | LoadModelProgress | LoadModelSuccess | Unknown
register_tagged_union(LoadModelToClientPacket)


@attrs.frozen
class GetOrLoadAlreadyLoaded:
    type: Literal["alreadyLoaded"] = attrs.field(default="alreadyLoaded", init=False)
    info: EmbeddingModelInstanceInfo


@attrs.frozen
class GetOrLoadStartLoading:
    type: Literal["startLoading"] = attrs.field(default="startLoading", init=False)
    identifier: str
    info: EmbeddingModelInfo


@attrs.frozen
class GetOrLoadLoadSuccess:
    type: Literal["loadSuccess"] = attrs.field(default="loadSuccess", init=False)
    info: EmbeddingModelInstanceInfo


GetOrLoadToClientPacket = (
    GetOrLoadAlreadyLoaded
    | GetOrLoadStartLoading
    | GetOrLoadUnloadingOtherJITModel
    | GetOrLoadLoadProgress
    | GetOrLoadLoadSuccess
    | Unknown
)
register_tagged_union(GetOrLoadToClientPacket)


@attrs.frozen
class EmbedStringParameter:
    """Note the key: ``modelSpecifier`` here, where tokenize and countTokens use ``specifier``."""

    model_specifier: ModelSpecifier
    input_string: str


@attrs.frozen
class EmbedStringResult:
    embedding: list[float]


UNLOAD_MODEL: RpcSpec[UnloadModelParameter, None] = RpcSpec(
    NAMESPACE, "unloadModel", UnloadModelParameter, None
)
LIST_LOADED: RpcSpec[None, list[EmbeddingModelInstanceInfo]] = RpcSpec(
    NAMESPACE, "listLoaded", None, list[EmbeddingModelInstanceInfo]
)
# An ``rpcResult`` without ``result`` (not found, throwIfNotFound=false) decodes to None.
GET_MODEL_INFO: RpcSpec[GetModelInfoParameter, EmbeddingModelInstanceInfo | None] = RpcSpec(
    NAMESPACE, "getModelInfo", GetModelInfoParameter, cast(Any, EmbeddingModelInstanceInfo | None)
)
GET_LOAD_CONFIG = RpcSpec(NAMESPACE, "getLoadConfig", GetLoadConfigParameter, KVConfig)
GET_BASE_PREDICTION_CONFIG = RpcSpec(
    NAMESPACE, "getBasePredictionConfig", GetBasePredictionConfigParameter, KVConfig
)
GET_INSTANCE_PROCESSING_STATE = RpcSpec(
    NAMESPACE,
    "getInstanceProcessingState",
    GetInstanceProcessingStateParameter,
    InstanceProcessingState,
)
ESTIMATE_MODEL_USAGE = RpcSpec(
    NAMESPACE, "estimateModelUsage", EstimateModelUsageParameter, EstimatedResourcesUsage
)
EMBED_STRING = RpcSpec(NAMESPACE, "embedString", EmbedStringParameter, EmbedStringResult)
TOKENIZE = RpcSpec(NAMESPACE, "tokenize", TokenizeParameter, TokenizeResult)
COUNT_TOKENS = RpcSpec(NAMESPACE, "countTokens", CountTokensParameter, CountTokensResult)

LOAD_MODEL = ChannelSpec(
    NAMESPACE,
    "loadModel",
    LoadModelCreationParameter,
    LoadModelToClientPacket,
    CancelToServerPacket,
    CancelPacket(),
    merge=LATEST_PROGRESS,
)
GET_OR_LOAD = ChannelSpec(
    NAMESPACE,
    "getOrLoad",
    GetOrLoadCreationParameter,
    GetOrLoadToClientPacket,
    CancelToServerPacket,
    CancelPacket(),
    merge=LATEST_PROGRESS,
)
