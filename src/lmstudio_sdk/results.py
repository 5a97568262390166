"""Public result and event types of predictions, with dot access.

These are views of the wire classes with plain Python values: an optional wire field the
server left out reads as ``None`` here (never the protocol's ``UNSET``). Build them with the
``from_wire`` class methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from .errors import LMStudioServerError
from .protocol._unset import UNSET, UnsetType
from .protocol.endpoints import shared
from .protocol.session import endpoint_label
from .protocol.wire import decode_payload

if TYPE_CHECKING:  # annotations only: a client listing models needs neither module
    from .config import LoadModelConfig, PredictionConfig
    from .protocol.endpoints._spec import RpcSpec
    from .protocol.endpoints.llm import PredictPromptProcessingProgress

__all__ = [
    "ModelInfo",
    "ModelInstanceInfo",
    "PredictionEvent",
    "PredictionFragment",
    "PredictionResult",
    "PredictionStats",
    "PromptProcessingProgress",
    "Quantization",
    "TokenCandidate",
    "TokenInfo",
    "ToolCallArgumentsFragment",
    "ToolCallGenerated",
    "ToolCallGenerationFailed",
    "ToolCallGenerationStarted",
    "ToolCallNameReceived",
    "ToolCallRequest",
    "instance_infos",
]

Quantization = shared.Quantization


def _opt(value: Any) -> Any:
    """``UNSET`` (key absent on the wire) -> ``None``."""
    return None if isinstance(value, UnsetType) else value


def _same_named(cls: type, wire: Any) -> dict[str, Any]:
    """The fields of the public class ``cls`` read from the wire object of the same field
    names; ``UNSET`` and a field ``wire`` lacks read as ``None``."""
    return {f.name: _opt(getattr(wire, f.name, None)) for f in attrs.fields(cls)}


# --- stats -------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class PredictionStats:
    """Statistics of a finished prediction, as the server reported them.

    ``stop_reason`` is one of ``userStopped`` (also after a cancel), ``modelUnloaded``,
    ``failed``, ``eosFound``, ``stopStringFound``, ``toolCalls``,
    ``maxPredictedTokensReached``, ``contextLengthReached`` (newer servers may add more).
    Every other field is ``None`` when the server did not report it.
    """

    stop_reason: str
    tokens_per_second: float | None = None
    time_to_first_token_sec: float | None = None
    total_time_sec: float | None = None
    prompt_tokens_count: int | None = None
    predicted_tokens_count: int | None = None
    total_tokens_count: int | None = None
    num_gpu_layers: float | None = None
    stop_string: str | None = None
    used_draft_model_key: str | None = None
    total_draft_tokens_count: int | None = None
    accepted_draft_tokens_count: int | None = None
    rejected_draft_tokens_count: int | None = None
    ignored_draft_tokens_count: int | None = None

    @classmethod
    def from_wire(cls, stats: shared.LLMPredictionStats) -> PredictionStats:
        """The public view of a wire ``LLMPredictionStats``."""
        return cls(**_same_named(cls, stats))


# --- streamed events ---------------------------------------------------------------------


@attrs.frozen
class TokenCandidate:
    """An alternative token the model considered, with its log-probability."""

    text: str
    id: int
    log_prob: float


@attrs.frozen
class TokenInfo:
    """A generated token (only sent when ``log_probs`` is requested)."""

    text: str
    id: int
    log_prob: float | None = None
    candidates: tuple[TokenCandidate, ...] = ()

    @classmethod
    def from_wire(cls, token: shared.LLMToken) -> TokenInfo:
        candidates = _opt(token.candidates) or ()
        return cls(
            token.text,
            token.id,
            _opt(token.log_prob),
            tuple(TokenCandidate(c.text, c.id, c.log_prob) for c in candidates),
        )


@attrs.frozen
class PredictionFragment:
    """A piece of generated text.

    ``reasoning_type`` is ``"none"``, ``"reasoning"``, ``"reasoningStartTag"`` or
    ``"reasoningEndTag"``; ``is_structural`` marks text that is markup (such as the
    reasoning tags) rather than content.
    """

    content: str
    tokens_count: int
    reasoning_type: str = "none"
    contains_drafted: bool = False
    is_structural: bool = False
    tokens: tuple[TokenInfo, ...] = ()

    @classmethod
    def from_wire(cls, fragment: shared.LLMPredictionFragment) -> PredictionFragment:
        """The public view of a wire fragment (``is_structural`` absent reads as False)."""
        tokens = fragment.tokens
        return cls(
            fragment.content,
            fragment.tokens_count,
            fragment.reasoning_type,
            fragment.contains_drafted,
            fragment.is_structural is True,
            () if isinstance(tokens, UnsetType) else tuple(map(TokenInfo.from_wire, tokens)),
        )


@attrs.frozen(kw_only=True)
class PromptProcessingProgress:
    """Prompt processing before the first token: ``progress`` from 0 to 1.

    The token counts are ``None`` when the server did not send details (older servers).
    """

    progress: float
    cached_token_count: int | None = None
    total_prompt_token_count: int | None = None
    processed_prompt_token_count: int | None = None
    unprocessed_prompt_token_count: int | None = None

    @classmethod
    def from_wire(cls, packet: PredictPromptProcessingProgress) -> PromptProcessingProgress:
        details = _opt(packet.details)
        if details is None:
            return cls(progress=packet.progress)
        return cls(
            progress=packet.progress,
            cached_token_count=details.cached_token_count,
            total_prompt_token_count=details.total_prompt_token_count,
            processed_prompt_token_count=details.processed_prompt_token_count,
            unprocessed_prompt_token_count=details.unprocessed_prompt_token_count,
        )


@attrs.frozen
class ToolCallRequest:
    """A tool call the model made: call ``name`` with ``arguments``.

    ``id`` is the call id to answer with (``None`` for models without call ids).
    """

    name: str
    arguments: dict[str, Any] = attrs.Factory(dict)
    id: str | None = None

    @classmethod
    def from_wire(cls, request: shared.ToolCallRequest) -> ToolCallRequest:
        """The public view; absent arguments read as ``{}`` (PROTOCOL.md 12, item 21)."""
        return cls(request.name, _opt(request.arguments) or {}, _opt(request.id))

    def to_wire(self) -> shared.ToolCallRequest:
        """The wire ``ToolCallRequest`` (for the assistant message of the next round)."""
        if self.id is None:
            return shared.ToolCallRequest(self.name, arguments=self.arguments)
        return shared.ToolCallRequest(self.name, self.id, self.arguments)


@attrs.frozen
class ToolCallGenerationStarted:
    """The model began writing a tool call."""

    tool_call_id: str | None = None


@attrs.frozen
class ToolCallNameReceived:
    """The name of the tool call being written (sent early by some engines)."""

    name: str


@attrs.frozen
class ToolCallArgumentsFragment:
    """Raw text of the tool call's arguments as it streams (not necessarily valid JSON)."""

    content: str


@attrs.frozen
class ToolCallGenerated:
    """A complete tool call; it can be run at once, while the prediction goes on."""

    request: ToolCallRequest
    raw_content: str | None = None


@attrs.frozen
class ToolCallGenerationFailed:
    """The model wrote a tool call that could not be parsed; there is nothing to answer."""

    error: LMStudioServerError = attrs.field(eq=False)
    raw_content: str | None = None

    @property
    def message(self) -> str:
        """What went wrong, as the server described it."""
        return str(self.error)


PredictionEvent = (
    PredictionFragment
    | PromptProcessingProgress
    | ToolCallGenerationStarted
    | ToolCallNameReceived
    | ToolCallArgumentsFragment
    | ToolCallGenerated
    | ToolCallGenerationFailed
)
"""What a prediction stream yields."""


# --- model info --------------------------------------------------------------------------


def _info_fields(cls: type, info: shared.ModelInfoBase) -> dict[str, Any]:
    # An embedding model has no ``vision`` or ``trained_for_tool_use``: they read as None.
    fields = _same_named(cls, info)
    fields["variants"] = tuple(fields["variants"] or ())
    return fields


@attrs.frozen(kw_only=True)
class ModelInfo:
    """A model on disk. ``type`` is ``"llm"`` or ``"embedding"``.

    ``vision`` and ``trained_for_tool_use`` are ``None`` for embedding models;
    ``device_identifier`` is ``None`` for this machine (or when the server did not say).
    """

    type: str
    model_key: str
    format: str
    display_name: str
    path: str
    size_bytes: int
    publisher: str | None = None
    indexed_model_identifier: str | None = None
    device_identifier: str | None = None
    params_string: str | None = None
    architecture: str | None = None
    quantization: Quantization | None = None
    variants: tuple[str, ...] = ()
    selected_variant: str | None = None
    max_context_length: int | None = None
    vision: bool | None = None
    trained_for_tool_use: bool | None = None

    @classmethod
    def from_wire(cls, info: shared.LLMInfo | shared.EmbeddingModelInfo) -> ModelInfo:
        """The public view of a wire ``LLMInfo`` or ``EmbeddingModelInfo``."""
        return cls(**_info_fields(cls, info))


@attrs.frozen(kw_only=True)
class ModelInstanceInfo(ModelInfo):
    """A loaded model instance.

    ``identifier`` names it in requests; ``context_length`` is the loaded context;
    ``ttl_ms`` and ``last_used_time`` (ms since the epoch) are ``None`` when unset.
    """

    identifier: str
    instance_reference: str
    context_length: int
    ttl_ms: float | None = None
    last_used_time: float | None = None

    @classmethod
    def from_wire(  # type: ignore[override]
        cls, info: shared.LLMInstanceInfo | shared.EmbeddingModelInstanceInfo
    ) -> ModelInstanceInfo:
        """The public view of a wire ``LLMInstanceInfo`` or ``EmbeddingModelInstanceInfo``."""
        return cls(**_info_fields(cls, info))


# --- the result ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class PredictionResult:
    """A finished prediction.

    ``content`` is all generated text, reasoning and its tags included (``str(result)``
    gives it); ``reasoning_content`` is the reasoning alone and ``non_reasoning_content``
    the answer alone. ``parsed`` is the structured value when a ``response_format`` was
    given, else ``None``. ``tool_call_requests`` lists the tool calls the model made.
    ``load_config`` and ``prediction_config`` are the configs the server actually used.
    """

    content: str
    reasoning_content: str
    non_reasoning_content: str
    stats: PredictionStats
    model_info: ModelInstanceInfo
    load_config: LoadModelConfig
    prediction_config: PredictionConfig
    parsed: Any = None
    tool_call_requests: tuple[ToolCallRequest, ...] = ()

    @property
    def stop_reason(self) -> str:
        """Why the prediction stopped (``stats.stop_reason``)."""
        return self.stats.stop_reason

    def __str__(self) -> str:
        return self.content


# --- model info straight from the JSON ---------------------------------------------------
#
# Why: listing loaded models is the most common RPC, and structuring each entry as a wire
# class only to copy it into a ModelInstanceInfo doubled the decoding (benchmarks/analysis.md
# item 10). An entry whose every field has exactly the JSON type the wire class takes is
# built here in one step; anything else (a missing field, an integral float, a null...)
# goes through the wire classes, which either accept it or name the field that is wrong.

_REQUIRED: tuple[tuple[str, str, type], ...] = (
    ("modelKey", "model_key", str),
    ("format", "format", str),
    ("displayName", "display_name", str),
    ("path", "path", str),
    ("sizeBytes", "size_bytes", int),
    ("maxContextLength", "max_context_length", int),
    ("identifier", "identifier", str),
    ("instanceReference", "instance_reference", str),
    ("contextLength", "context_length", int),
)
_REQUIRED_LLM: tuple[tuple[str, str, type], ...] = (
    ("vision", "vision", bool),
    ("trainedForToolUse", "trained_for_tool_use", bool),
)
_ABSENT_OR_STR: tuple[tuple[str, str], ...] = (
    ("publisher", "publisher"),
    ("indexedModelIdentifier", "indexed_model_identifier"),
    ("paramsString", "params_string"),
    ("architecture", "architecture"),
    ("selectedVariant", "selected_variant"),
)
_ABSENT_NULL_OR_NUMBER: tuple[tuple[str, str], ...] = (
    ("ttlMs", "ttl_ms"),
    ("lastUsedTime", "last_used_time"),
)


class _NotExact(Exception):
    """The fast path does not take this entry; the wire classes decide."""


def _instance_from_json(raw: Any, kind: str) -> ModelInstanceInfo:
    if type(raw) is not dict:
        raise _NotExact
    fields: dict[str, Any] = {"type": kind}
    try:
        for key, name, tp in _REQUIRED + _REQUIRED_LLM if kind == "llm" else _REQUIRED:
            value = fields[name] = raw[key]
            if type(value) is not tp:
                raise _NotExact
    except KeyError:
        raise _NotExact from None
    for key, name in _ABSENT_OR_STR:
        value = fields[name] = raw.get(key)
        if type(value) is not str and (value is not None or key in raw):
            raise _NotExact
    for key, name in _ABSENT_NULL_OR_NUMBER:
        value = raw.get(key)
        if type(value) is int:
            value = float(value)
        elif value is not None and type(value) is not float:
            raise _NotExact
        fields[name] = value
    device = fields["device_identifier"] = raw.get("deviceIdentifier")
    variants = raw.get("variants", [])
    quantization = raw.get("quantization")
    if (device is not None and type(device) is not str) or type(variants) is not list:
        raise _NotExact
    if any(type(variant) is not str for variant in variants):
        raise _NotExact
    fields["variants"] = tuple(variants)
    if "quantization" in raw:
        if type(quantization) is not dict:
            raise _NotExact
        label, bits = quantization.get("name"), quantization.get("bits")
        if type(label) is not str or type(bits) is not int:
            raise _NotExact
        quantization = Quantization(label, bits)
    fields["quantization"] = quantization
    return ModelInstanceInfo(**fields)


def instance_infos(raw: Any, spec: RpcSpec) -> list[ModelInstanceInfo]:
    """The public views of a ``listLoaded`` result (``spec``) given as parsed JSON.

    :raises RemoteProtocolError: an entry does not fit ``spec.result``, naming the field.
    """
    kind = spec.namespace
    try:
        if type(raw) is list:
            return [_instance_from_json(entry, kind) for entry in raw]
    except _NotExact:
        pass
    what = f"result of {endpoint_label(spec)}"
    wire = decode_payload(UNSET if raw is None else raw, spec.result, what=what)
    return [ModelInstanceInfo.from_wire(entry) for entry in wire]
