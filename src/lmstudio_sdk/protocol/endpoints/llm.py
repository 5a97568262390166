"""The ``llm`` namespace: model management, prediction, templates, tokens (PROTOCOL.md 3.1, 3.2).

A prediction (``predict`` or ``completeRawText``) streams ``promptProcessingProgress``,
``fragment`` and tool-call packets, and always ends with ``success``, also after the client
sent ``cancel`` (then ``stats.stop_reason == "userStopped"``). Every
``toolCallGenerationStart`` is closed by exactly one ``...End`` or ``...Failed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from .._unset import UNSET, UnsetType
from ..codec import Unknown, register_tagged_union, variant
from ..kv import KVConfig, KVConfigStack
from ..merging import Merge, MergeRule, progress_merge
from ._models import (
    GetOrLoadAlreadyLoaded,
    GetOrLoadLoadSuccess,
    GetOrLoadStartLoading,
    LoadModelResolved,
    LoadModelSuccess,
    model_endpoints,
)
from ._spec import RpcSpec
from .shared import (
    ChatHistoryData,
    LLMInfo,
    LLMInstanceInfo,
    LLMPredictionFragment,
    LLMPredictionStats,
    LLMTool,
    ModelSpecifier,
    SerializedError,
    ToolCallRequest,
    cancellable_channel,
)

__all__ = [
    "APPLY_PROMPT_TEMPLATE",
    "COMPLETE_RAW_TEXT",
    "COUNT_TOKENS",
    "ESTIMATE_MODEL_USAGE",
    "GET_BASE_PREDICTION_CONFIG",
    "GET_INSTANCE_PROCESSING_STATE",
    "GET_LOAD_CONFIG",
    "GET_MODEL_INFO",
    "GET_OR_LOAD",
    "LIST_LOADED",
    "LOAD_MODEL",
    "PREDICT",
    "PREDICTION_MERGE",
    "PRELOAD_DRAFT_MODEL",
    "TOKENIZE",
    "UNLOAD_MODEL",
    "ApplyPromptTemplateOpts",
    "ApplyPromptTemplateParameter",
    "ApplyPromptTemplateResult",
    "CompleteRawTextCreationParameter",
    "CompleteRawTextToClientPacket",
    "GetOrLoadAlreadyLoaded",
    "GetOrLoadLoadSuccess",
    "GetOrLoadStartLoading",
    "LoadModelResolved",
    "LoadModelSuccess",
    "PredictCreationParameter",
    "PredictFragment",
    "PredictPromptProcessingProgress",
    "PredictSuccess",
    "PredictToClientPacket",
    "PredictToolCallGenerationArgumentFragmentGenerated",
    "PredictToolCallGenerationEnd",
    "PredictToolCallGenerationFailed",
    "PredictToolCallGenerationNameReceived",
    "PredictToolCallGenerationStart",
    "PreloadDraftModelParameter",
    "PromptProcessingDetails",
]

NAMESPACE = "llm"


# --- prediction --------------------------------------------------------------------------


@attrs.frozen
class PredictCreationParameter:
    """Predict the next assistant message of ``history``.

    ``fuzzy_preset_identifier`` names a preset layered below the stack's ``apiOverride``.
    """

    model_specifier: ModelSpecifier
    history: ChatHistoryData
    prediction_config_stack: KVConfigStack
    fuzzy_preset_identifier: str | UnsetType = UNSET
    ignore_server_session_config: bool | UnsetType = UNSET


@attrs.frozen
class CompleteRawTextCreationParameter:
    """Continue ``raw_prompt`` as is, with no chat template (what JS 2.0 ``complete()`` uses)."""

    model_specifier: ModelSpecifier
    raw_prompt: str
    prediction_config_stack: KVConfigStack
    fuzzy_preset_identifier: str | UnsetType = UNSET
    ignore_server_session_config: bool | UnsetType = UNSET


@attrs.frozen(kw_only=True)
class PromptProcessingDetails:
    cached_token_count: int
    total_prompt_token_count: int
    processed_prompt_token_count: int
    unprocessed_prompt_token_count: int


@variant("fragment")
class PredictFragment:
    fragment: LLMPredictionFragment


@variant("promptProcessingProgress")
class PredictPromptProcessingProgress:
    """Prompt processing, 0 to 1, before the first token.

    ``details`` is required by the current schema (and JS 2.0) but unknown to older servers.
    """

    progress: float
    details: PromptProcessingDetails | UnsetType = UNSET


@variant("toolCallGenerationStart")
class PredictToolCallGenerationStart:
    tool_call_id: str | UnsetType = UNSET


@variant("toolCallGenerationNameReceived")
class PredictToolCallGenerationNameReceived:
    name: str


@variant("toolCallGenerationArgumentFragmentGenerated")
class PredictToolCallGenerationArgumentFragmentGenerated:
    """Raw argument text as it streams (not necessarily valid JSON)."""

    content: str


@variant("toolCallGenerationEnd")
class PredictToolCallGenerationEnd:
    """One complete tool call; clients may run the tool at once, mid-stream."""

    tool_call_request: ToolCallRequest
    raw_content: str | UnsetType = UNSET


@variant("toolCallGenerationFailed")
class PredictToolCallGenerationFailed:
    """The model produced a tool call that could not be parsed; there is nothing to answer."""

    error: SerializedError
    raw_content: str | UnsetType = UNSET


@variant("success", kw_only=True)
class PredictSuccess:
    """The last packet of a prediction, with the configs the server actually used."""

    stats: LLMPredictionStats
    model_info: LLMInstanceInfo
    load_model_config: KVConfig
    prediction_config: KVConfig


PredictToClientPacket = (
    PredictFragment
    | PredictPromptProcessingProgress
    | PredictToolCallGenerationStart
    | PredictToolCallGenerationNameReceived
    | PredictToolCallGenerationArgumentFragmentGenerated
    | PredictToolCallGenerationEnd
    | PredictToolCallGenerationFailed
    | PredictSuccess
    | Unknown
)
CompleteRawTextToClientPacket = (
    PredictFragment | PredictPromptProcessingProgress | PredictSuccess | Unknown
)
register_tagged_union(PredictToClientPacket)
register_tagged_union(CompleteRawTextToClientPacket)


# --- templates and drafts ----------------------------------------------------------------


@attrs.frozen
class ApplyPromptTemplateOpts:
    omit_bos_token: bool | UnsetType = UNSET
    omit_eos_token: bool | UnsetType = UNSET
    tool_definitions: list[LLMTool] | UnsetType = UNSET


@attrs.frozen
class ApplyPromptTemplateParameter:
    specifier: ModelSpecifier
    history: ChatHistoryData
    prediction_config_stack: KVConfigStack
    opts: ApplyPromptTemplateOpts = attrs.Factory(ApplyPromptTemplateOpts)


@attrs.frozen
class ApplyPromptTemplateResult:
    formatted: str


@attrs.frozen
class PreloadDraftModelParameter:
    specifier: ModelSpecifier
    draft_model_key: str


# --- endpoints ---------------------------------------------------------------------------

_MODELS = model_endpoints(NAMESPACE, LLMInfo, LLMInstanceInfo)
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

APPLY_PROMPT_TEMPLATE = RpcSpec(
    NAMESPACE, "applyPromptTemplate", ApplyPromptTemplateParameter, ApplyPromptTemplateResult
)
PRELOAD_DRAFT_MODEL: RpcSpec[PreloadDraftModelParameter, None] = RpcSpec(
    NAMESPACE, "preloadDraftModel", PreloadDraftModelParameter, None
)


def _prediction_merge(previous: Any, new: Any) -> Merge:
    """Fragments with equal reasoning type, structure and token detail join; so do tool-call
    argument fragments; progress keeps the latest."""
    if type(previous) is not type(new):
        return Merge.NO
    if isinstance(new, PredictFragment):
        a, b = previous.fragment, new.fragment
        if (
            a.reasoning_type != b.reasoning_type
            or a.is_structural != b.is_structural
            # token details on one side only: joining would lose the alignment
            or (a.tokens is UNSET) != (b.tokens is UNSET)
        ):
            return Merge.NO
        return Merge.JOIN
    if isinstance(new, PredictToolCallGenerationArgumentFragmentGenerated):
        return Merge.JOIN
    return progress_merge(previous, new)


def _join_prediction(parts: Sequence[Any]) -> Any:
    """One packet for a run of joined fragments: the text joined once, counts summed."""
    first = parts[0]
    if isinstance(first, PredictToolCallGenerationArgumentFragmentGenerated):
        return PredictToolCallGenerationArgumentFragmentGenerated(
            "".join(part.content for part in parts)
        )
    fragments = [part.fragment for part in parts]
    head = fragments[0]
    return PredictFragment(
        attrs.evolve(
            head,
            content="".join(f.content for f in fragments),
            tokens_count=sum(f.tokens_count for f in fragments),
            contains_drafted=any(f.contains_drafted for f in fragments),
            tokens=UNSET if head.tokens is UNSET else [t for f in fragments for t in f.tokens],
        )
    )


PREDICTION_MERGE = MergeRule(_prediction_merge, _join_prediction)
"""``predict``/``completeRawText``: text and argument fragments join; latest progress."""

PREDICT = cancellable_channel(
    NAMESPACE, "predict", PredictCreationParameter, PredictToClientPacket, merge=PREDICTION_MERGE
)
COMPLETE_RAW_TEXT = cancellable_channel(
    NAMESPACE,
    "completeRawText",
    CompleteRawTextCreationParameter,
    CompleteRawTextToClientPacket,
    merge=PREDICTION_MERGE,
)
