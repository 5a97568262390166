"""The ``embedding`` namespace: model management, embeddings, tokens (PROTOCOL.md 3.1, 3.3).

The model-management endpoints are those of ``llm`` with the embedding model-info types
(both are declared once, in :mod:`._models`, whose packet classes this module re-exports).
There is no batch ``embedStrings``: one RPC per string.
"""

from __future__ import annotations

import attrs

from ._models import (
    GetOrLoadAlreadyLoaded,
    GetOrLoadLoadSuccess,
    GetOrLoadStartLoading,
    LoadModelResolved,
    LoadModelSuccess,
    model_endpoints,
)
from ._spec import RpcSpec
from .shared import EmbeddingModelInfo, EmbeddingModelInstanceInfo, ModelSpecifier

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
    "LoadModelResolved",
    "LoadModelSuccess",
]

NAMESPACE = "embedding"


@attrs.frozen
class EmbedStringParameter:
    """Note the key: ``modelSpecifier`` here, where tokenize and countTokens use ``specifier``."""

    model_specifier: ModelSpecifier
    input_string: str


@attrs.frozen
class EmbedStringResult:
    embedding: list[float]


_MODELS = model_endpoints(NAMESPACE, EmbeddingModelInfo, EmbeddingModelInstanceInfo)
UNLOAD_MODEL = _MODELS.unload_model
LIST_LOADED = _MODELS.list_loaded
GET_MODEL_INFO = _MODELS.get_model_info
GET_LOAD_CONFIG = _MODELS.get_load_config
GET_BASE_PREDICTION_CONFIG = _MODELS.get_base_prediction_config
GET_INSTANCE_PROCESSING_STATE = _MODELS.get_instance_processing_state
ESTIMATE_MODEL_USAGE = _MODELS.estimate_model_usage
TOKENIZE = _MODELS.tokenize
COUNT_TOKENS = _MODELS.count_tokens
LOAD_MODEL = _MODELS.load_model
GET_OR_LOAD = _MODELS.get_or_load

EMBED_STRING = RpcSpec(NAMESPACE, "embedString", EmbedStringParameter, EmbedStringResult)
