"""Wire types used by several namespaces.

Model specifiers and queries, model info (on disk and loaded), chat history, tools,
prediction fragments and stats, and the payloads of the model endpoints that ``llm`` and
``embedding`` both have (PROTOCOL.md 3.1, 4.1-4.5). The error payload is
:class:`~lmstudio_sdk.protocol.wire.SerializedError`, re-exported here.

Compatibility with older servers: the July-2025 schema (LM Studio versions the Python SDK
1.x was generated from) lacks some fields the current schema requires: ``publisher``,
``indexedModelIdentifier`` and ``deviceIdentifier`` on model info, ``ttlMs`` and
``lastUsedTime`` on instance info, ``isStructural`` on fragments (and, elsewhere,
``details`` on prompt progress and ``compatibilityType`` on download options). Our classes
make them optional (``UNSET`` when absent) so that older servers keep decoding; a server
must still always send them, since the JS SDK 2.0 requires them (PROTOCOL.md 12, item 9).
"""

from __future__ import annotations

import unicodedata
from typing import Any, Literal

import attrs

from ...errors import LocalProtocolError
from .._unset import UNSET, UnsetType
from ..codec import Unknown, register_tagged_union, variant
from ..kv import KVConfigStack
from ..merging import MergeRule
from ..naming import to_camel
from ..wire import SerializedError
from ._spec import ChannelSpec

__all__ = [
    "AssistantContentPart",
    "AssistantMessage",
    "CancelPacket",
    "CancelToServerPacket",
    "ChatHistoryData",
    "ChatMessage",
    "CountTokensParameter",
    "CountTokensResult",
    "EmbeddingModelInfo",
    "EmbeddingModelInstanceInfo",
    "EstimateModelUsageParameter",
    "EstimatedModelMemoryUsage",
    "EstimatedResourcesUsage",
    "FilePart",
    "GetBasePredictionConfigParameter",
    "GetInstanceProcessingStateParameter",
    "GetLoadConfigParameter",
    "GetModelInfoParameter",
    "GetOrLoadCreationParameter",
    "GetOrLoadLoadProgress",
    "GetOrLoadUnloadingOtherJITModel",
    "InstanceProcessingState",
    "LLMCandidateToken",
    "LLMInfo",
    "LLMInstanceInfo",
    "LLMPredictionFragment",
    "LLMPredictionStats",
    "LLMToken",
    "LLMTool",
    "LLMToolFunction",
    "LoadModelCreationParameter",
    "LoadModelProgress",
    "ModelInfo",
    "ModelInfoBase",
    "ModelInstanceInfo",
    "ModelQuery",
    "ModelSpecifier",
    "ModelSpecifierInstanceReference",
    "ModelSpecifierQuery",
    "Quantization",
    "SerializedError",
    "StopPacket",
    "StopToServerPacket",
    "SystemMessage",
    "TextPart",
    "TokenizeParameter",
    "TokenizeResult",
    "ToolCallRequest",
    "ToolCallRequestPart",
    "ToolCallResultPart",
    "ToolMessage",
    "UnloadModelParameter",
    "UserContentPart",
    "UserMessage",
    "cancellable_channel",
]


# --- validators (the server ignores a request that breaks them: no reply, only a warning) --


def _check_key_string(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A model identifier or path: 1-1024 characters, no control characters, not ``__proto__``."""
    if value is UNSET or not isinstance(value, str):
        return
    if (
        not 1 <= len(value) <= 1024
        or value == "__proto__"
        or any(unicodedata.category(ch).startswith("C") for ch in value)
    ):
        raise LocalProtocolError(
            f"{to_camel(attribute.name)} must be 1 to 1024 characters without control "
            f"characters (and not '__proto__'), got {value!r}; the server would ignore the request"
        )


def _check_positive_int(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """An optional integer that must be at least 1 (TTLs)."""
    if value is UNSET or isinstance(value, bool) or not isinstance(value, int):
        return
    if value < 1:
        raise LocalProtocolError(
            f"{to_camel(attribute.name)} must be a positive integer, got {value!r}"
        )


# --- model specifiers --------------------------------------------------------------------


@attrs.frozen
class ModelQuery:
    """Which model to use; every criterion is optional, ``ModelQuery()`` means "any".

    ``domain`` is one of ``llm``, ``embedding``, ``drafter``, ``imageGen``, ``transcription``,
    ``tts`` (newer servers may add more). ``device_identifier`` is an LM Link device, ``None``
    meaning this machine.
    """

    domain: str | UnsetType = UNSET
    device_identifier: str | UnsetType | None = UNSET
    identifier: str | UnsetType = attrs.field(default=UNSET, validator=_check_key_string)
    path: str | UnsetType = attrs.field(default=UNSET, validator=_check_key_string)
    vision: bool | UnsetType = UNSET


@variant("query")
class ModelSpecifierQuery:
    """Select a model by query (what the Python SDK always sends)."""

    query: ModelQuery


@variant("instanceReference")
class ModelSpecifierInstanceReference:
    """Select one loaded instance by its opaque ``instanceReference``."""

    instance_reference: str


ModelSpecifier = ModelSpecifierQuery | ModelSpecifierInstanceReference | Unknown
register_tagged_union(ModelSpecifier)


# --- model info --------------------------------------------------------------------------


@attrs.frozen
class Quantization:
    """A quantization, e.g. ``Quantization("Q4_K_M", 4)``."""

    name: str
    bits: int


@attrs.frozen(kw_only=True)
class ModelInfoBase:
    """Fields every model on disk has (PROTOCOL.md 4.2).

    ``format`` is ``gguf``, ``safetensors``, ``onnx``, ``ggml``, ``pte``, ``mlx_placeholder``
    or ``torch_safetensors`` today. ``publisher``, ``indexed_model_identifier`` and
    ``device_identifier`` are required by the current schema but missing from older servers,
    hence ``UNSET`` defaults; ``device_identifier=None`` means "this machine".
    """

    model_key: str
    format: str
    display_name: str
    path: str
    size_bytes: int
    publisher: str | UnsetType = UNSET
    indexed_model_identifier: str | UnsetType = UNSET
    device_identifier: str | UnsetType | None = UNSET
    params_string: str | UnsetType = UNSET
    architecture: str | UnsetType = UNSET
    quantization: Quantization | UnsetType = UNSET
    variants: list[str] | UnsetType = UNSET
    selected_variant: str | UnsetType = UNSET


# The two model-info variants spell their tag field out instead of using ``variant``: the
# client reads ``info.type``, and a type checker only sees the fields a class declares.
@attrs.frozen(kw_only=True)
class LLMInfo(ModelInfoBase):
    """An LLM on disk."""

    type: Literal["llm"] = attrs.field(default="llm", init=False)
    vision: bool
    trained_for_tool_use: bool
    max_context_length: int


@attrs.frozen(kw_only=True)
class LLMInstanceInfo(LLMInfo):
    """A loaded LLM instance.

    ``context_length`` is the loaded context; ``ttl_ms`` and ``last_used_time`` (ms since the
    epoch) are nullable, and ``UNSET`` only when an older server left them out.
    """

    identifier: str
    instance_reference: str
    context_length: int
    ttl_ms: float | UnsetType | None = UNSET
    last_used_time: float | UnsetType | None = UNSET


@attrs.frozen(kw_only=True)
class EmbeddingModelInfo(ModelInfoBase):
    """An embedding model on disk."""

    type: Literal["embedding"] = attrs.field(default="embedding", init=False)
    max_context_length: int


@attrs.frozen(kw_only=True)
class EmbeddingModelInstanceInfo(EmbeddingModelInfo):
    """A loaded embedding model instance (see :class:`LLMInstanceInfo` for the fields)."""

    identifier: str
    instance_reference: str
    context_length: int
    ttl_ms: float | UnsetType | None = UNSET
    last_used_time: float | UnsetType | None = UNSET


ModelInfo = LLMInfo | EmbeddingModelInfo | Unknown
ModelInstanceInfo = LLMInstanceInfo | EmbeddingModelInstanceInfo | Unknown
register_tagged_union(ModelInfo)
register_tagged_union(ModelInstanceInfo)


# --- tools -------------------------------------------------------------------------------


@variant("function")
class ToolCallRequest:
    """A tool call the model made. ``arguments`` may be absent (treat it as ``{}``)."""

    name: str
    id: str | UnsetType = UNSET
    arguments: dict[str, Any] | UnsetType = UNSET


@attrs.frozen
class LLMToolFunction:
    """A function tool: ``parameters`` is a JSON Schema object (``{"type": "object", ...}``)."""

    name: str
    description: str | UnsetType = UNSET
    parameters: dict[str, Any] | UnsetType = UNSET


@variant("function")
class LLMTool:
    """A tool offered to the model (``{"type": "function", "function": {...}}``)."""

    function: LLMToolFunction


# --- chat history ------------------------------------------------------------------------


@variant("text")
class TextPart:
    text: str


@variant("file")
class FilePart:
    """A file uploaded with ``files.uploadFileBase64``; ``file_type`` as the upload returned it."""

    name: str
    identifier: str
    size_bytes: int
    file_type: str


@variant("toolCallRequest")
class ToolCallRequestPart:
    tool_call_request: ToolCallRequest


@variant("toolCallResult")
class ToolCallResultPart:
    """A tool's result; ``content`` is the JSON-encoded return value."""

    content: str
    tool_call_id: str | UnsetType = UNSET
    name: str | UnsetType = UNSET


# Which parts a message may hold depends on its role (the server rejects the others).
UserContentPart = TextPart | FilePart | Unknown
AssistantContentPart = TextPart | FilePart | ToolCallRequestPart | Unknown
register_tagged_union(UserContentPart)
register_tagged_union(AssistantContentPart)


class _MessageText:
    """``.text`` of a chat message: what a reader of the message wants, without the parts."""

    __slots__ = ()
    role: str  # the union's tag, a field of every message class (see ``variant``)
    content: list[Any]

    @property
    def text(self) -> str:
        """The message's text parts joined; for a tool message its results, one a line."""
        if self.role == "tool":
            return "\n".join(part.content for part in self.content)
        return "".join(part.text for part in self.content if isinstance(part, TextPart))


@variant("user", tag="role")
class UserMessage(_MessageText):
    content: list[UserContentPart]


@variant("system", tag="role")
class SystemMessage(_MessageText):
    content: list[UserContentPart]


@variant("assistant", tag="role")
class AssistantMessage(_MessageText):
    content: list[AssistantContentPart]


@variant("tool", tag="role")
class ToolMessage(_MessageText):
    content: list[ToolCallResultPart]


ChatMessage = UserMessage | SystemMessage | AssistantMessage | ToolMessage | Unknown
register_tagged_union(ChatMessage, tag="role")


@attrs.frozen
class ChatHistoryData:
    """A conversation, oldest message first."""

    messages: list[ChatMessage]


# --- predictions -------------------------------------------------------------------------


@attrs.frozen
class LLMCandidateToken:
    text: str
    id: int
    log_prob: float


@attrs.frozen
class LLMToken:
    """A generated token, with its log-probability and candidates when ``logProbs`` is on."""

    text: str
    id: int
    log_prob: float | UnsetType = UNSET
    candidates: list[LLMCandidateToken] | UnsetType = UNSET


@attrs.frozen
class LLMPredictionFragment:
    """A piece of generated text.

    ``reasoning_type`` is ``none``, ``reasoning``, ``reasoningStartTag`` or
    ``reasoningEndTag``. ``is_structural`` (the fragment is a reasoning tag, not content) is
    ``UNSET`` only from servers older than the current schema.
    """

    content: str
    tokens_count: int
    contains_drafted: bool
    reasoning_type: str
    is_structural: bool | UnsetType = UNSET
    tokens: list[LLMToken] | UnsetType = UNSET


@attrs.frozen(kw_only=True)
class LLMPredictionStats:
    """Statistics of a finished prediction.

    ``stop_reason``: ``userStopped`` (also after a cancel), ``modelUnloaded``, ``failed``,
    ``eosFound``, ``stopStringFound``, ``toolCalls``, ``maxPredictedTokensReached``,
    ``contextLengthReached``; newer servers may add more.
    """

    stop_reason: str
    stop_string: str | UnsetType = UNSET
    tokens_per_second: float | UnsetType = UNSET
    num_gpu_layers: float | UnsetType = UNSET
    time_to_first_token_sec: float | UnsetType = UNSET
    total_time_sec: float | UnsetType = UNSET
    prompt_tokens_count: int | UnsetType = UNSET
    predicted_tokens_count: int | UnsetType = UNSET
    total_tokens_count: int | UnsetType = UNSET
    used_draft_model_key: str | UnsetType = UNSET
    total_draft_tokens_count: int | UnsetType = UNSET
    accepted_draft_tokens_count: int | UnsetType = UNSET
    rejected_draft_tokens_count: int | UnsetType = UNSET
    ignored_draft_tokens_count: int | UnsetType = UNSET


# --- channel packets without payload -----------------------------------------------------


@variant("cancel")
class CancelPacket:
    """``{"type": "cancel"}``: asks the server to end a prediction, load or download early."""


@variant("stop")
class StopPacket:
    """``{"type": "stop"}``: ends ``streamLogs`` and ``retrieve``."""


CancelToServerPacket = CancelPacket | Unknown
StopToServerPacket = StopPacket | Unknown
register_tagged_union(CancelToServerPacket)
register_tagged_union(StopToServerPacket)


def cancellable_channel(
    namespace: str, name: str, creation_parameter: Any, to_client: Any, *, merge: MergeRule
) -> ChannelSpec:
    """A channel whose only client packet is :class:`CancelPacket`, to end it early."""
    return ChannelSpec(
        namespace,
        name,
        creation_parameter,
        to_client,
        CancelToServerPacket,
        CancelPacket(),
        merge=merge,
    )


# --- model endpoints shared by llm and embedding (PROTOCOL.md 3.1) -----------------------


@attrs.frozen
class UnloadModelParameter:
    identifier: str
    device_identifier: str | UnsetType | None = UNSET


@attrs.frozen
class GetModelInfoParameter:
    """``ModelSpecifierQuery(ModelQuery())`` asks for any loaded model."""

    specifier: ModelSpecifier
    throw_if_not_found: bool


@attrs.frozen
class GetLoadConfigParameter:
    specifier: ModelSpecifier


@attrs.frozen
class GetBasePredictionConfigParameter:
    specifier: ModelSpecifier
    ignore_server_session_config: bool | UnsetType = UNSET


@attrs.frozen
class GetInstanceProcessingStateParameter:
    specifier: ModelSpecifier
    throw_if_not_found: bool


@attrs.frozen
class InstanceProcessingState:
    """``status``: ``idle``, ``processingPrompt``, ``generating`` or ``computingEmbedding``."""

    status: str
    queued: int


@attrs.frozen
class EstimateModelUsageParameter:
    model_key: str
    load_config_stack: KVConfigStack
    device_identifier: str | UnsetType | None = UNSET


@attrs.frozen(kw_only=True)
class EstimatedModelMemoryUsage:
    """Estimated memory use in bytes; ``confidence`` is ``high`` or ``low``."""

    confidence: str
    model_vram_bytes: float
    context_vram_bytes: float
    total_vram_bytes: float
    model_bytes: float
    context_bytes: float
    total_bytes: float


@attrs.frozen
class EstimatedResourcesUsage:
    memory: EstimatedModelMemoryUsage
    passes_guardrails: bool


@attrs.frozen
class TokenizeParameter:
    specifier: ModelSpecifier
    input_string: str


@attrs.frozen
class TokenizeResult:
    tokens: list[int]


@attrs.frozen
class CountTokensParameter:
    specifier: ModelSpecifier
    input_string: str


@attrs.frozen
class CountTokensResult:
    token_count: int


@attrs.frozen
class LoadModelCreationParameter:
    """Load ``model_key`` as a new instance; ``ttl_ms`` unloads it after that much idle time."""

    model_key: str
    load_config_stack: KVConfigStack
    identifier: str | UnsetType = UNSET
    device_identifier: str | UnsetType | None = UNSET
    ttl_ms: int | UnsetType = attrs.field(default=UNSET, validator=_check_positive_int)


@attrs.frozen
class GetOrLoadCreationParameter:
    """Use the instance ``identifier`` (an instance identifier, model key or path), loading it
    if needed."""

    identifier: str
    load_config_stack: KVConfigStack
    device_identifier: str | UnsetType | None = UNSET
    load_ttl_ms: int | UnsetType = attrs.field(default=UNSET, validator=_check_positive_int)


@variant("progress")
class LoadModelProgress:
    """``loadModel`` progress, 0 to 1."""

    progress: float


@variant("loadProgress")
class GetOrLoadLoadProgress:
    """``getOrLoad`` progress, 0 to 1."""

    progress: float


@variant("unloadingOtherJITModel")
class GetOrLoadUnloadingOtherJITModel:
    """The server unloads another just-in-time loaded model (of either domain) first."""

    info: ModelInstanceInfo
