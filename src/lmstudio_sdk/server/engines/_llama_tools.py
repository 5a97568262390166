"""Tool use for llama.cpp models without native tool-call support (SmolLM2 among them).

LM Studio gives such a model a tool-use prompt and constrains its output with a grammar; we
do the same, in the Hermes format SmolLM2's instruction data used:

* :func:`tool_use_messages` adds the tool-use instructions (with the tools as JSON) to the
  system message, and writes earlier tool calls and results into the chat as text, so that a
  chat template that knows nothing of tools renders them.
* :func:`tool_use_grammar` is a GBNF grammar admitting either free text (not starting with
  ``<``) or exactly one ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, whose
  name is one of the tools and whose arguments follow that tool's parameter schema; or
  (``required``) only the call. LM Studio admits both; but a model this small never starts
  a call of its own accord under that grammar, and once it has called, it calls again
  after the results (measured on SmolLM2 with several tool prompts). So the engine
  requires the call on a turn that answers the user, and generates text after tool
  results (``toolChoice: required`` calls then too). ``toolChoice: none`` (or no tools)
  gives plain text.
* :class:`ToolCallSplitter` (decode thread) turns the generated pieces into text events or,
  once the reply starts with ``<tool_call>``, into tool-call events.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from . import events
from .base import InvalidRequestError

__all__ = [
    "TOOL_CALL_END",
    "TOOL_CALL_START",
    "ToolCallSplitter",
    "tool_use_grammar",
    "tool_use_messages",
]

TOOL_CALL_START = "<tool_call>"
TOOL_CALL_END = "</tool_call>"

_INSTRUCTIONS = (
    "You can call functions (tools). Their signatures are given in JSON Schema within "
    "<tools></tools>:\n<tools>\n{tools}\n</tools>\n"
    "To call a function, reply with nothing else than a JSON object with the function's "
    "name and arguments within <tool_call></tool_call>, for example:\n"
    '<tool_call>\n{{"name": "{example}", "arguments": {{...}}}}\n</tool_call>\n'
    "Call a function whenever it helps to answer. A function's result is given to you in a "
    "message of role tool; then answer the user in plain text."
)


def _function(tool: Mapping[str, Any]) -> Mapping[str, Any]:
    function = tool.get("function")
    return function if isinstance(function, Mapping) else {}


def _call_text(name: str, arguments: Any) -> str:
    body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"{TOOL_CALL_START}\n{body}\n{TOOL_CALL_END}"


def tool_use_messages(
    messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """``messages`` with the tool-use instructions and earlier calls written as text."""
    listing = "\n".join(json.dumps(dict(_function(t)), ensure_ascii=False) for t in tools)
    example = str(_function(tools[0]).get("name", "name")) if tools else "name"
    instructions = _INSTRUCTIONS.format(tools=listing, example=example)
    out: list[dict[str, Any]] = []
    for message in messages:
        entry = dict(message)
        calls = entry.pop("tool_calls", None)
        if calls:
            texts = [
                _call_text(str(call["function"]["name"]), call["function"].get("arguments", {}))
                for call in calls
            ]
            entry["content"] = "\n".join(filter(None, [str(entry.get("content") or ""), *texts]))
        if entry.get("role") == "tool":
            entry.pop("tool_call_id", None)
            entry.pop("name", None)
        out.append(entry)
    if out and out[0].get("role") == "system":
        out[0]["content"] = f"{out[0].get('content') or ''}\n\n{instructions}".lstrip()
    else:
        out.insert(0, {"role": "system", "content": instructions})
    return out


def _call_schema(tools: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    variants = []
    for tool in tools:
        function = _function(tool)
        parameters = function.get("parameters")
        if not isinstance(parameters, Mapping) or not parameters:
            parameters = {"type": "object", "properties": {}}
        variants.append(
            {
                "type": "object",
                "properties": {
                    "name": {"const": function.get("name")},
                    "arguments": dict(parameters),
                },
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    return variants[0] if len(variants) == 1 else {"anyOf": variants}


def tool_use_grammar(tools: Sequence[Mapping[str, Any]], *, required: bool) -> str:
    """A GBNF grammar: free text or one tool call (only the call when ``required``)."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        call_json = str(json_schema_to_gbnf(json.dumps(_call_schema(tools))))
    except (AssertionError, ValueError, TypeError, KeyError, NotImplementedError) as exc:
        raise InvalidRequestError(
            f"llama.cpp cannot turn these tools' parameter schemas into a grammar: {exc}",
            suggestion="Use simpler parameter schemas (objects, strings, numbers, enums).",
        ) from exc
    # The converter's rules are all named after ``root``; rename its root rule only.
    lines = call_json.splitlines()
    lines = [
        "call-json ::=" + line[len("root ::=") :] if line.startswith("root ::=") else line
        for line in lines
    ]
    call = f'"{TOOL_CALL_START}" "\\n"? call-json "\\n"? "{TOOL_CALL_END}"'
    root = "root ::= tool-call" if required else "root ::= tool-call | ([^<] free-text)?"
    rules = [root, f"tool-call ::= {call}", "free-text ::= [^\\x00]*", *lines]
    return "\n".join(rules) + "\n"


class ToolCallSplitter:
    """Pieces of one reply to events: text, or (reply starting with ``<tool_call>``) a call.

    The grammar admits only these two shapes, so the reply's first character decides.
    """

    def __init__(self) -> None:
        self._mode: str | None = None  # None: undecided; "text"; "call"
        self._raw = ""
        self._name_sent = False
        self.called = False
        """A tool call was emitted (the stop reason is ``toolCalls``)."""

    def feed(self, pieces: Sequence[events.TokenPiece]) -> list[events.GenerationEvent]:
        out: list[events.GenerationEvent] = []
        for piece in pieces:
            if self._mode is None and piece.text:
                self._mode = "call" if piece.text.startswith("<") else "text"
                if self._mode == "call":
                    out.append(events.ToolCallStart())
            if self._mode == "call":
                self._raw += piece.text
                out.extend(self._name_event())
            else:
                out.append(piece)
        return out

    def _name_event(self) -> list[events.GenerationEvent]:
        if self._name_sent:
            return []
        body = self._raw[len(TOOL_CALL_START) :]
        marker = body.find('"arguments"')
        if marker < 0:
            return []
        try:
            name = json.loads(body[: body.rfind(",", 0, marker)].strip() + "}")["name"]
        except (ValueError, KeyError, TypeError):
            return []
        self._name_sent = True
        return [events.ToolCallName(str(name))]

    def finish(self) -> list[events.GenerationEvent]:
        """Events after the last piece: the parsed call (or its failure)."""
        if self._mode != "call":
            return []
        raw = self._raw
        body = raw.strip()
        if body.startswith(TOOL_CALL_START):
            body = body[len(TOOL_CALL_START) :]
        if body.endswith(TOOL_CALL_END):
            body = body[: -len(TOOL_CALL_END)]
        try:
            call = json.loads(body)
            name, arguments = call["name"], call["arguments"]
            if not isinstance(name, str) or not isinstance(arguments, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return [
                events.ToolCallFailed("The model's tool call is not valid JSON.", raw_content=raw)
            ]
        out: list[events.GenerationEvent] = self._name_event()
        out.append(events.ToolCallArgumentFragment(json.dumps(arguments, ensure_ascii=False)))
        out.append(events.ToolCallEnd(name, arguments, raw_content=raw))
        self.called = True
        return out
