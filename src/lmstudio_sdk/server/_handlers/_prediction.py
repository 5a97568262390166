"""From a prediction request on the wire to an engine request, and back to stats.

* :func:`read_prediction_config` collapses the ``predictionConfigStack`` (later layers win)
  and maps the keys the engines honour to a :class:`GenerationRequest`; a value of the
  wrong shape is a clear error reply naming the key, never a crash. Checkbox keys accept
  ``{"checked", "value"}`` (the wire form) and, leniently, a bare value.
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
from ..engines.base import Finished, GenerationRequest, InvalidRequestError, ReasoningParsing

__all__ = [
    "PredictionSettings",
    "default_prediction_config",
    "history_to_messages",
    "prediction_stats",
    "read_prediction_config",
    "render_manual_template",
]

P = "llm.prediction."

_DEFAULTS: dict[str, Any] = {
    f"{P}temperature": 0.8,
    f"{P}maxPredictedTokens": {"checked": False, "value": 1000},
    f"{P}topKSampling": 40,
    f"{P}topPSampling": {"checked": True, "value": 0.95},
    f"{P}minPSampling": {"checked": True, "value": 0.05},
    f"{P}repeatPenalty": {"checked": True, "value": 1.1},
    f"{P}stopStrings": [],
    f"{P}structured": {"type": "none"},
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


def _number(key: str, value: Any, low: float = 0.0) -> float:
    if not _is_number(value) or value < low:
        raise _invalid(key, value, f"a number >= {low:g}")
    return float(value)


def _checkbox(key: str, value: Any) -> tuple[bool, Any]:
    """``(checked, value)`` of a checkbox value (a bare value counts as checked)."""
    if isinstance(value, Mapping):
        checked = value.get("checked")
        if not isinstance(checked, bool) or "value" not in value:
            raise _invalid(key, value, 'a {"checked": bool, "value": ...} object')
        return checked, value["value"]
    return True, value


def _optional_number(
    key: str, value: Any, low: float = 0.0, high: float | None = None
) -> float | None:
    checked, inner = _checkbox(key, value)
    if not checked:
        return None
    number = _number(key, inner, low)
    if high is not None and number > high:
        raise _invalid(key, inner, f"a number from {low:g} to {high:g}")
    return number


def _string_list(key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise _invalid(key, value, "a list of strings")
    return [s for s in value if s]


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


def read_prediction_config(
    stack: KVConfigStack, *, tools_allowed: bool = True
) -> PredictionSettings:
    """Collapse ``stack`` (later layers win) and map it to engine settings."""
    merged = dict(_DEFAULTS)
    merged.update({k: v for k, v in collapse(stack).items() if v is not UNSET})
    request: dict[str, Any] = {}
    used: dict[str, Any] = {}

    key = f"{P}temperature"
    request["temperature"] = _number(key, merged[key])
    used[key] = merged[key]

    key = f"{P}maxPredictedTokens"
    checked, value = _checkbox(key, merged[key])
    if checked:
        if isinstance(value, bool) or not isinstance(value, int) or value < -1:
            raise _invalid(key, value, "an integer >= -1 (-1: no limit)")
        request["max_tokens"] = None if value == -1 else value
    used[key] = {"checked": checked, "value": value if _is_number(value) else 1000}

    key = f"{P}topKSampling"
    top_k = _number(key, merged[key], low=-1)
    request["top_k"] = max(0, int(top_k))  # <= 0: no top-k filtering
    used[key] = merged[key]

    for wire, name, high in (
        ("topPSampling", "top_p", 1.0),
        ("minPSampling", "min_p", 1.0),
        ("repeatPenalty", "repeat_penalty", None),
    ):
        key = P + wire
        number = _optional_number(key, merged[key], high=high)
        request[name] = number
        placeholder = _checkbox(key, merged[key])[1]
        used[key] = {
            "checked": number is not None,
            # An unchecked value is the client's placeholder: echo it only if it is a number.
            "value": number
            if number is not None
            else (placeholder if _is_number(placeholder) else 0),
        }

    key = f"{P}seed"
    if key in merged:
        checked, value = _checkbox(key, merged[key])
        if checked:
            if isinstance(value, bool) or not isinstance(value, int):
                raise _invalid(key, value, "an integer seed")
            request["seed"] = None if value < 0 else value

    stop_strings = _string_list(f"{P}stopStrings", merged[f"{P}stopStrings"])
    used[f"{P}stopStrings"] = list(stop_strings)

    key = f"{P}structured"
    structured = merged[key]
    if not isinstance(structured, Mapping) or structured.get("type") not in (
        "none",
        "json",
        "gbnf",
    ):
        raise _invalid(key, structured, '{"type": "none" | "json" | "gbnf", ...}')
    if structured["type"] == "json":
        schema = structured.get("jsonSchema")
        if not isinstance(schema, Mapping):
            raise _invalid(key, structured, "a jsonSchema object with type json")
        request["json_schema"] = dict(schema)
    elif structured["type"] == "gbnf":
        grammar = structured.get("gbnfGrammar")
        if not isinstance(grammar, str) or not grammar:
            raise _invalid(key, structured, "a gbnfGrammar string with type gbnf")
        request["gbnf_grammar"] = grammar
    used[key] = dict(structured)

    key = f"{P}reasoning.parsing"
    if key in merged:
        parsing = merged[key]
        if not isinstance(parsing, Mapping) or not isinstance(parsing.get("enabled"), bool):
            raise _invalid(key, parsing, '{"enabled": bool, "startString", "endString"}')
        if parsing["enabled"]:
            start, end = parsing.get("startString"), parsing.get("endString")
            if not isinstance(start, str) or not isinstance(end, str) or not start or not end:
                raise _invalid(key, parsing, "non-empty startString and endString")
            request["reasoning"] = ReasoningParsing(start_string=start, end_string=end)
        else:
            request["reasoning"] = None

    tools = _read_tools(merged) if tools_allowed else ()
    if tools:
        request["tools"] = tools
        choice = merged.get(f"{P}toolChoice")
        if isinstance(choice, Mapping) and choice.get("mode") == "required":
            request["tool_choice"] = "required"

    jinja_template, manual_template = None, None
    key = f"{P}promptTemplate"
    if key in merged:
        template = merged[key]
        if not isinstance(template, Mapping) or template.get("type") not in ("jinja", "manual"):
            raise _invalid(key, template, '{"type": "jinja" | "manual", ...}')
        if template["type"] == "jinja":
            jinja = template.get("jinjaPromptTemplate")
            if not isinstance(jinja, Mapping) or not isinstance(jinja.get("template"), str):
                raise _invalid(key, template, "jinjaPromptTemplate.template (a string)")
            jinja_template = jinja["template"]
        else:
            manual = template.get("manualPromptTemplate")
            if not isinstance(manual, Mapping):
                raise _invalid(key, template, "a manualPromptTemplate object")
            manual_template = manual
        # The template's own stop strings end generation too, as in LM Studio.
        extra = template.get("stopStrings", [])
        stop_strings.extend(
            s for s in _string_list(key + ".stopStrings", extra) if s not in stop_strings
        )
    request["stop_strings"] = tuple(stop_strings)

    system_prompt = merged.get(f"{P}systemPrompt")
    if system_prompt is not None and not isinstance(system_prompt, str):
        raise _invalid(f"{P}systemPrompt", system_prompt, "a string")

    return PredictionSettings(
        request=request,
        jinja_template=jinja_template,
        manual_template=manual_template,
        system_prompt=system_prompt or None,
        tools=tools,
        used=KVConfig([KVConfigField(k, v) for k, v in used.items()]),
    )


def _read_tools(merged: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...]:
    key = f"{P}tools"
    setting = merged.get(key)
    if setting is None:
        return ()
    if not isinstance(setting, Mapping) or setting.get("type") not in ("none", "toolArray"):
        raise _invalid(key, setting, '{"type": "none"} or {"type": "toolArray", "tools": [...]}')
    if setting["type"] == "none":
        return ()
    tools = setting.get("tools", [])
    if not isinstance(tools, list) or not all(
        isinstance(t, Mapping)
        and t.get("type") == "function"
        and isinstance(t.get("function"), Mapping)
        and isinstance(t["function"].get("name"), str)
        for t in tools
    ):
        raise _invalid(
            key, setting, 'tools of the form {"type": "function", "function": {"name": ...}}'
        )
    choice = merged.get(f"{P}toolChoice")
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
            raise _invalid(f"{P}promptTemplate.manualPromptTemplate.{name}", value, "a string")
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
