"""From a prediction request on the wire to an engine request, and back to stats.

* :func:`read_prediction_config` collapses the ``predictionConfigStack`` (later layers win)
  and maps the keys the engines honour to a :class:`GenerationRequest`; a value of the
  wrong shape is a clear error reply naming the key, never a crash. Keys, checkbox or plain,
  and value checks come from the SDK's one declaration of each option
  (``lmstudio_sdk.config.PREDICTION_OPTIONS``); checkbox keys also accept a bare value
  (taken as checked), as LM Studio does.
* :func:`history_to_messages` turns ``ChatHistoryData`` into chat-template messages.
* :func:`prediction_stats` turns the engine's :class:`Finished` into ``LLMPredictionStats``
  with integer counts and finite numbers only (NaN or Infinity would make the JS client
  drop the frame and hang).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from ...config import PREDICTION_OPTIONS
from ...errors import LMStudioServerError
from ...protocol._unset import UNSET
from ...protocol.codec import Unknown
from ...protocol.endpoints.shared import (
    AssistantMessage,
    ChatHistoryData,
    FilePart,
    LLMPredictionStats,
    SystemMessage,
    TextPart,
    ToolCallRequestPart,
    ToolMessage,
    UserMessage,
)
from ...protocol.kv import KVConfig, KVConfigField, KVConfigStack, collapse
from .._errors import bad_request, describe
from ..engines.base import GenerationRequest, InvalidRequestError, ReasoningParsing
from ..engines.events import Finished

__all__ = [
    "PredictionSettings",
    "default_prediction_config",
    "history_to_messages",
    "prediction_stats",
    "read_prediction_config",
    "render_manual_template",
]


def _key(name: str) -> str:
    """The KV key of prediction option ``name`` (declared once, in the SDK's config)."""
    return PREDICTION_OPTIONS[name].keys["llm"]


# The server's base layer: what LM Studio's own defaults are for the keys it honours.
_DEFAULTS: dict[str, Any] = {
    _key("temperature"): 0.8,
    _key("max_tokens"): {"checked": False, "value": 1000},
    _key("top_k_sampling"): 40,
    _key("top_p_sampling"): {"checked": True, "value": 0.95},
    _key("min_p_sampling"): {"checked": True, "value": 0.05},
    _key("repeat_penalty"): {"checked": True, "value": 1.1},
    _key("stop_strings"): [],
    _key("structured"): {"type": "none"},
}


def default_prediction_config() -> KVConfig:
    """The server's base prediction config (``getBasePredictionConfig``)."""
    return KVConfig([KVConfigField(key, value) for key, value in _DEFAULTS.items()])


def _invalid(key: str, value: Any, expected: str) -> LMStudioServerError:
    return bad_request(
        f"Invalid value for {key}: {describe(value)}.", cause=f"Expected {expected}."
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_STRUCTURED_TYPES = ("none", "json", "gbnf")


def _lenient(merged: Mapping[str, Any]) -> dict[str, Any]:
    """What LM Studio accepts beyond the SDK's own checks: a bare value for a checkbox key
    (taken as checked), empty stop strings (ignored), and keys other than ``template`` in a
    Jinja template (the official Python SDK's completion template sends ``bosToken``,
    ``eosToken`` and ``inputConfig``; ignored)."""
    lenient = dict(merged)
    template = lenient.get(_key("prompt_template"))
    if isinstance(template, Mapping) and isinstance(template.get("jinjaPromptTemplate"), Mapping):
        jinja = template["jinjaPromptTemplate"]
        kept = {"template": jinja["template"]} if "template" in jinja else {}
        lenient[_key("prompt_template")] = {**template, "jinjaPromptTemplate": kept}
    for option in PREDICTION_OPTIONS.values():
        key = option.keys["llm"]
        if option.checkbox and key in lenient and not isinstance(lenient[key], Mapping):
            lenient[key] = {"checked": True, "value": lenient[key]}
    stop = lenient.get(_key("stop_strings"))
    if isinstance(stop, list):
        lenient[_key("stop_strings")] = [s for s in stop if s != ""]
    return lenient


class _Reader:
    """Reads options out of a collapsed config with the SDK's one declaration of each
    (``lmstudio_sdk.config.PREDICTION_OPTIONS``): key, checkbox or plain, value check."""

    def __init__(self, merged: Mapping[str, Any]) -> None:
        self.merged = _lenient(merged)

    def has(self, name: str) -> bool:
        return _key(name) in self.merged

    def wire(self, name: str) -> Any:
        return self.merged[_key(name)]

    def __call__(self, name: str) -> Any:
        """The SDK value of option ``name`` (``False``: an unchecked box); a clear error
        reply naming the key when the value does not pass the option's check."""
        value = self.wire(name)
        try:
            return PREDICTION_OPTIONS[name].read(name, value)
        except ValueError as exc:
            # The official Python client types topKSampling as a float (sends 40.0); LM
            # Studio takes a whole float for an integer setting.
            if isinstance(value, float) and value.is_integer():
                return self._integral(name, int(value), exc)
            raise bad_request(
                f"Invalid value for {_key(name)}: {describe(value)}.", cause=f"{exc}."
            ) from None

    def _integral(self, name: str, value: int, original: ValueError) -> Any:
        try:
            return PREDICTION_OPTIONS[name].read(name, value)
        except ValueError:
            raise bad_request(
                f"Invalid value for {_key(name)}: {describe(float(value))}.",
                cause=f"{original}.",
            ) from None


@attrs.frozen(kw_only=True)
class PredictionSettings:
    """What the server does with a collapsed prediction config."""

    request: dict[str, Any]
    """Keyword arguments of :class:`GenerationRequest` (all but ``prompt``)."""
    jinja_template: str | None = None
    manual_template: Mapping[str, Any] | None = None
    system_prompt: str | None = None
    tools: tuple[Mapping[str, Any], ...] = ()
    used: KVConfig = attrs.Factory(KVConfig)
    """The effective values of the keys the server honoured (``success.predictionConfig``)."""

    def generation_request(
        self, prompt: str, messages: Sequence[Mapping[str, Any]] | None = None
    ) -> GenerationRequest:
        try:
            return GenerationRequest(prompt=prompt, messages=messages, **self.request)
        except InvalidRequestError as exc:
            raise bad_request(exc.title) from None


def _checkbox_used(read: _Reader, name: str, value: Any, placeholder: Any) -> dict[str, Any]:
    """The ``{checked, value}`` echoed for a checkbox key (an unchecked box echoes the
    client's placeholder if it is a number)."""
    if value is not False:
        return {"checked": True, "value": value}
    sent = read.wire(name)["value"]
    return {"checked": False, "value": sent if _is_number(sent) else placeholder}


def read_prediction_config(
    stack: KVConfigStack, *, tools_allowed: bool = True
) -> PredictionSettings:
    """Collapse ``stack`` (later layers win) and map it to engine settings."""
    merged = dict(_DEFAULTS)
    merged.update({k: v for k, v in collapse(stack).items() if v is not UNSET})
    read = _Reader(merged)
    request: dict[str, Any] = {}
    used: dict[str, Any] = {}

    request["temperature"] = float(read("temperature"))
    used[_key("temperature")] = read.wire("temperature")

    max_tokens = read("max_tokens")
    if max_tokens is not False:
        request["max_tokens"] = None if max_tokens == -1 else max_tokens
    used[_key("max_tokens")] = _checkbox_used(read, "max_tokens", max_tokens, 1000)

    request["top_k"] = max(0, int(read("top_k_sampling")))  # <= 0: no top-k filtering
    used[_key("top_k_sampling")] = read.wire("top_k_sampling")

    for name, field in (
        ("top_p_sampling", "top_p"),
        ("min_p_sampling", "min_p"),
        ("repeat_penalty", "repeat_penalty"),
    ):
        value = read(name)
        request[field] = None if value is False else float(value)
        used[_key(name)] = _checkbox_used(read, name, value, 0)

    if read.has("presence_penalty"):
        presence = read("presence_penalty")
        request["presence_penalty"] = None if presence is False else float(presence)
        used[_key("presence_penalty")] = _checkbox_used(read, "presence_penalty", presence, 0)

    if read.has("context_overflow_policy"):
        request["context_overflow"] = read("context_overflow_policy")
        used[_key("context_overflow_policy")] = request["context_overflow"]

    if read.has("seed"):
        seed = read("seed")
        if seed is not False:
            request["seed"] = None if seed < 0 else seed

    if read.has("log_probs"):
        log_probs = read("log_probs")
        if log_probs is not False:
            request["log_probs"] = log_probs
        used[_key("log_probs")] = _checkbox_used(read, "log_probs", log_probs, 0)

    stop_strings = list(read("stop_strings"))
    used[_key("stop_strings")] = list(stop_strings)

    structured = read("structured")
    if not isinstance(structured, Mapping) or structured.get("type") not in _STRUCTURED_TYPES:
        # (The SDK's check also takes a bare JSON schema; the wire form is a setting.)
        raise _invalid(_key("structured"), structured, '{"type": "none" | "json" | "gbnf", ...}')
    structured = dict(structured)
    # The engines need a schema to constrain the output to (the SDK also allows none).
    if structured["type"] == "json":
        if not isinstance(structured.get("jsonSchema"), Mapping):
            raise _invalid(_key("structured"), structured, "a jsonSchema object with type json")
        request["json_schema"] = dict(structured["jsonSchema"])
    elif structured["type"] == "gbnf":
        request["gbnf_grammar"] = structured["gbnfGrammar"]
    used[_key("structured")] = structured

    if read.has("reasoning_parsing"):
        parsing = read("reasoning_parsing")
        if parsing["enabled"]:
            start, end = parsing["startString"], parsing["endString"]
            if not start or not end:
                raise _invalid(
                    _key("reasoning_parsing"), parsing, "non-empty startString and endString"
                )
            request["reasoning"] = ReasoningParsing(start_string=start, end_string=end)
        else:
            request["reasoning"] = None

    tools = _read_tools(read) if tools_allowed else ()
    if tools:
        request["tools"] = tools
        choice = read.wire("tool_choice") if read.has("tool_choice") else None
        if isinstance(choice, Mapping) and choice.get("mode") == "required":
            request["tool_choice"] = "required"

    jinja_template, manual_template = None, None
    if read.has("prompt_template"):
        template = PREDICTION_OPTIONS["prompt_template"].encode(read("prompt_template"))
        if template["type"] == "jinja":
            jinja_template = template["jinjaPromptTemplate"]["template"]
        else:
            manual_template = template["manualPromptTemplate"]
        # The template's own stop strings end generation too, as in LM Studio.
        stop_strings.extend(s for s in template["stopStrings"] if s and s not in stop_strings)
    request["stop_strings"] = tuple(stop_strings)

    system_prompt = read("system_prompt") if read.has("system_prompt") else None

    return PredictionSettings(
        request=request,
        jinja_template=jinja_template,
        manual_template=manual_template,
        system_prompt=system_prompt or None,
        tools=tools,
        used=KVConfig([KVConfigField(k, v) for k, v in used.items()]),
    )


def _read_tools(read: _Reader) -> tuple[Mapping[str, Any], ...]:
    if not read.has("raw_tools") or read.wire("raw_tools") is None:
        return ()
    setting = read("raw_tools")
    if setting["type"] == "none":
        return ()
    tools = setting.get("tools", [])
    if not all(isinstance(t["function"].get("name"), str) for t in tools):
        raise _invalid(
            _key("raw_tools"),
            setting,
            'tools of the form {"type": "function", "function": {"name": ...}}',
        )
    choice = read.merged.get(_key("tool_choice"))
    if isinstance(choice, Mapping) and choice.get("mode") == "none":
        return ()
    return tuple(dict(t) for t in tools)


# --- chat history ----------------------------------------------------------------------------

FileReader = Callable[[str], "str | None"]
"""Returns the text of an uploaded file by identifier, or ``None`` (not text, or unknown)."""


def _content_text(parts: Sequence[Any], read_file: FileReader, index: int) -> str:
    texts: list[str] = []
    files: list[str] = []
    for part in parts:
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif isinstance(part, FilePart):
            content = read_file(part.identifier)
            if content is None:
                files.append(f"[attached file: {part.name}]")
            else:
                files.append(f"[attached file: {part.name}]\n{content}")
        elif isinstance(part, Unknown):
            raise bad_request(
                f"messages[{index}] has a content part of unknown type {part.type!r}."
            )
    return "\n\n".join([*files, "".join(texts)]) if files else "".join(texts)


def history_to_messages(
    history: ChatHistoryData,
    read_file: FileReader,
    system_prompt: str | None = None,
    *,
    read_image: FileReader | None = None,
) -> list[dict[str, Any]]:
    """Chat-template messages (Hugging Face conventions) from the wire history.

    With ``read_image`` (file identifier to ``data:`` URL), a message with attached images
    also gets ``"images": [url, ...]`` (for engines that take images: upstreams).
    """
    messages: list[dict[str, Any]] = []
    for index, message in enumerate(history.messages):
        if isinstance(message, (UserMessage, SystemMessage)):
            entry: dict[str, Any] = {
                "role": message.role,
                "content": _content_text(message.content, read_file, index),
            }
            if read_image is not None:
                images = [
                    url
                    for part in message.content
                    if isinstance(part, FilePart) and part.file_type == "image"
                    for url in [read_image(part.identifier)]
                    if url is not None
                ]
                if images:
                    entry["images"] = images
            messages.append(entry)
        elif isinstance(message, AssistantMessage):
            calls = [
                {
                    "id": part.tool_call_request.id
                    if isinstance(part.tool_call_request.id, str)
                    else f"call_{n}",
                    "type": "function",
                    "function": {
                        "name": part.tool_call_request.name,
                        "arguments": part.tool_call_request.arguments
                        if isinstance(part.tool_call_request.arguments, dict)
                        else {},
                    },
                }
                for n, part in enumerate(message.content)
                if isinstance(part, ToolCallRequestPart)
            ]
            text_parts = [p for p in message.content if not isinstance(p, ToolCallRequestPart)]
            entry = {
                "role": "assistant",
                "content": _content_text(text_parts, read_file, index),
            }
            if calls:
                entry["tool_calls"] = calls
            messages.append(entry)
        elif isinstance(message, ToolMessage):
            for part in message.content:
                tool: dict[str, Any] = {"role": "tool", "content": part.content}
                if isinstance(part.tool_call_id, str):
                    tool["tool_call_id"] = part.tool_call_id
                if isinstance(part.name, str):
                    tool["name"] = part.name
                messages.append(tool)
        else:
            role = message.raw.get("role") if isinstance(message, Unknown) else None
            raise bad_request(f"messages[{index}] has an unknown role {role!r}.")
    if system_prompt and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


def render_manual_template(
    template: Mapping[str, Any], messages: Sequence[Mapping[str, Any]]
) -> str:
    """A prompt from LM Studio's manual template (before/after strings per role)."""

    def piece(name: str) -> str:
        value = template.get(name, "")
        if not isinstance(value, str):
            raise _invalid(
                f"{_key('prompt_template')}.manualPromptTemplate.{name}", value, "a string"
            )
        return value

    out: list[str] = []
    for message in messages:
        role = {"system": "System", "assistant": "Assistant"}.get(message["role"], "User")
        out.append(piece(f"before{role}") + str(message["content"]) + piece(f"after{role}"))
    out.append(piece("beforeAssistant"))
    return "".join(out)


# --- stats -----------------------------------------------------------------------------------


def _finite(value: float | None, default: float = 0.0) -> float:
    if value is None or not math.isfinite(value):
        return default
    return max(0.0, float(value))


def prediction_stats(finished: Finished) -> LLMPredictionStats:
    """``LLMPredictionStats`` with every field users read filled, also after a cancel."""
    total_time = _finite(finished.total_time)
    return LLMPredictionStats(
        stop_reason=finished.stop_reason,
        stop_string=finished.stop_string if finished.stop_string else UNSET,
        tokens_per_second=_finite(finished.tokens_per_second),
        # No token was generated: the time to "first token" is the whole time spent.
        time_to_first_token_sec=_finite(finished.time_to_first_token, total_time),
        total_time_sec=total_time,
        prompt_tokens_count=int(finished.prompt_tokens),
        predicted_tokens_count=int(finished.predicted_tokens),
        total_tokens_count=int(finished.prompt_tokens) + int(finished.predicted_tokens),
    )
