"""From a :class:`GenerationRequest` to an OpenAI-compatible request body.

Chat predictions go to ``/chat/completions`` with the messages (images as ``image_url``
data URLs); raw completion (a prompt already rendered: ``completeRawText`` or a completion
template) goes to ``/completions``. Settings the OpenAI API lacks are sent under the names
vLLM and llama.cpp accept (``top_k``, ``min_p``, ``repeat_penalty`` and
``repetition_penalty``, ``grammar``); servers that do not know them ignore them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..engines.base import GenerationRequest, InvalidRequestError

__all__ = ["build_body", "json_object_format"]


def _message(message: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message["role"]}
    images = message.get("images") or []
    if images:
        parts: list[dict[str, Any]] = []
        if message["content"]:
            parts.append({"type": "text", "text": message["content"]})
        parts.extend({"type": "image_url", "image_url": {"url": url}} for url in images)
        out["content"] = parts
    else:
        out["content"] = message["content"]
    if message.get("tool_calls"):
        import json

        # OpenAI wants the arguments as a JSON string, chat templates as an object.
        out["tool_calls"] = [
            {
                "id": call.get("id"),
                "type": "function",
                "function": {
                    "name": call["function"]["name"],
                    "arguments": json.dumps(call["function"].get("arguments", {})),
                },
            }
            for call in message["tool_calls"]
        ]
    for key in ("tool_call_id", "name"):
        if key in message:
            out[key] = message[key]
    return out


def _tool_choice(request: GenerationRequest) -> Any:
    if request.tool_choice == "required" and len(request.tools) == 1:
        # One tool, required: name it. Every OpenAI-compatible server takes this form
        # (llama-cpp-python refuses "required" but forces a named function).
        return {"type": "function", "function": {"name": request.tools[0]["function"]["name"]}}
    return request.tool_choice


def json_object_format(schema: Mapping[str, Any]) -> dict[str, Any]:
    """llama-cpp-python's structured-output form (it refuses ``json_schema``)."""
    return {"type": "json_object", "schema": dict(schema)}


def build_body(
    model_id: str,
    request: GenerationRequest,
    *,
    json_object_dialect: bool = False,
    extensions: bool = True,
) -> tuple[str, dict[str, Any]]:
    """``(path, body)`` of the streaming request for ``request`` (``extensions``: also the
    settings the OpenAI API lacks)."""
    body: dict[str, Any] = {"model": model_id, "stream": True}
    if request.messages is not None:
        path = "/chat/completions"
        body["messages"] = [_message(m) for m in request.messages]
        # vLLM (and OpenAI) then send token usage in a last chunk; others ignore it.
        body["stream_options"] = {"include_usage": True}
        if request.tools:
            body["tools"] = [dict(t) for t in request.tools]
            body["tool_choice"] = _tool_choice(request)
    else:
        path = "/completions"
        body["prompt"] = request.prompt
        body["stream_options"] = {"include_usage": True}
    body["temperature"] = request.temperature
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if extensions and request.top_k:
        body["top_k"] = request.top_k
    if extensions and request.min_p is not None:
        body["min_p"] = request.min_p
    if extensions and request.repeat_penalty is not None:
        body["repeat_penalty"] = request.repeat_penalty  # llama.cpp
        body["repetition_penalty"] = request.repeat_penalty  # vLLM
    if request.seed is not None:
        body["seed"] = request.seed
    if request.stop_strings:
        body["stop"] = list(request.stop_strings)
    if request.json_schema is not None:
        if json_object_dialect:
            body["response_format"] = json_object_format(request.json_schema)
        else:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": dict(request.json_schema)},
            }
    if request.gbnf_grammar is not None:
        if not extensions:
            raise InvalidRequestError(
                "This upstream takes no GBNF grammar (sampling_extensions is off).",
                suggestion="Use a JSON schema for structured output instead.",
            )
        body["grammar"] = request.gbnf_grammar
    return path, body
