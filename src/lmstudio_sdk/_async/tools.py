"""Tools and the ``act()`` loop: the model calls Python functions, round after round.

``act()`` is all client-side (PROTOCOL.md section 7): each round is an ordinary
``predict`` channel whose config offers the tools (``llm.prediction.tools``). As soon as
the server reports a complete tool call (``toolCallGenerationEnd``), the tool starts
running in the round's task group, while the prediction keeps streaming; at most
``max_parallel_tool_calls`` run at once. When the prediction is over and every tool has
finished, the assistant message and one ``tool`` message with the results (in the order
the model requested them, JSON-encoded, each with its ``toolCallId``) are appended to the
history, and the next round starts. The loop ends after a round without tool calls, or
after ``max_prediction_rounds`` rounds (the last one offers no tools).

A tool that raises, an unknown tool and arguments that do not fit the tool's parameters do
not end the loop: ``handle_invalid_tool_request(exc, request)`` turns the problem into the
result the model sees (by default the error message). Cancelling ``act()`` (a cancel scope
around it) cancels the running tools and the current prediction on the server. Plain
(sync) tools run in worker threads, so a slow tool does not stall the stream; a thread
cannot be interrupted, so cancellation waits for a running sync tool to return.
"""

# Per-call ``timeout=`` is part of the API (DESIGN 4): it composes with anyio.fail_after.
# ruff: noqa: ASYNC109

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import inspect
import json
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import attrs

from .._prediction import PredictionAccumulator
from .._structured import _describe, _user_converter, json_schema_for_class
from ..chat import Chat
from ..config import PredictionConfig, prediction_config_from, prediction_stack
from ..protocol._unset import UNSET
from ..protocol.endpoints import llm, shared
from ..results import (
    PredictionFragment,
    PredictionResult,
    ToolCallGenerated,
    ToolCallRequest,
)
from ._exceptions import exceptions_unwrapped
from .connection import DEFAULT, _Default
from .prediction import call_back, check_callback

if TYPE_CHECKING:
    from .connection import Connection

__all__ = [
    "ActResult",
    "InvalidToolCallError",
    "Tool",
    "ToolLike",
    "default_invalid_tool_request",
    "run_act",
    "to_tools",
    "tool_definitions",
]

_NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class InvalidToolCallError(ValueError):
    """The model called a tool that does not exist, or with arguments that do not fit.

    ``handle_invalid_tool_request`` receives it (or the exception a tool raised).
    """


@attrs.frozen(kw_only=True)
class ActResult:
    """What :meth:`AsyncLLM.act <lmstudio_sdk.AsyncLLM.act>` returns: the number of
    prediction ``rounds`` and the ``total_time_seconds`` they took."""

    rounds: int
    total_time_seconds: float


# ------------------------------------------------------------------------------ tools


def _check_name(_: Any, __: Any, name: Any) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"a tool name must be 1 to 64 letters, digits or '_.:-' characters, got {name!r}"
        )


def _check_parameters(_: Any, __: Any, parameters: Any) -> None:
    if not isinstance(parameters, Mapping) or parameters.get("type") != "object":
        raise ValueError(
            "a tool's parameters must be a JSON schema of type 'object', e.g. "
            "{'type': 'object', 'properties': {'x': {'type': 'integer'}}}; "
            f"got {parameters!r}"
        )


def _check_implementation(_: Any, __: Any, implementation: Any) -> None:
    if not callable(implementation):
        raise TypeError(f"a tool's implementation must be callable, got {implementation!r}")


def _checked_schema(parameters: Mapping[str, Any]) -> dict[str, Any]:
    from .._structured import _checked_schema as check

    return check(parameters, "the tool's parameters")


_EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


@attrs.frozen(kw_only=True)
class Tool:
    """A tool the model may call: ``implementation(**arguments)``.

    ``parameters`` is the JSON schema (``{"type": "object", ...}``) of the arguments; the
    model's arguments are checked against it before the call (with ``jsonschema``, when it
    is installed). :meth:`from_function` builds a tool from a Python function's signature,
    type hints and docstring, and then the arguments are also converted to the annotated
    types (nested dataclasses and attrs classes included).
    """

    name: str = attrs.field(validator=_check_name)
    description: str = ""
    parameters: dict[str, Any] = attrs.field(
        factory=lambda: copy.deepcopy(_EMPTY_PARAMETERS),
        converter=_checked_schema,
        validator=_check_parameters,
    )
    implementation: Callable[..., Any] = attrs.field(validator=_check_implementation)
    _binder: Callable[[Mapping[str, Any]], dict[str, Any]] | None = attrs.field(
        default=None, init=False, repr=False, eq=False
    )

    @classmethod
    def from_function(
        cls,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> Tool:
        """A tool from a function (sync or async).

        The parameters' JSON schema comes from the type hints (``str``, ``int``,
        ``float``, ``bool``, lists, dicts, ``Literal``, enums, optionals, dataclasses and
        attrs classes; no hint means any JSON value); parameters with a default are
        optional. The description is the docstring's text before its parameter section;
        parameter descriptions come from Google-style ``Args:`` or ``:param x:`` lines.

        :raises ValueError: a parameter that cannot be described in JSON (``*args``,
            positional-only, an unsupported type).
        """
        if not callable(function):
            raise TypeError(f"a tool must be a function, got {function!r}")
        tool_name = name if name is not None else getattr(function, "__name__", None)
        doc_description, param_docs = _parse_docstring(inspect.getdoc(function) or "")
        schema, binder = _function_parameters(function, str(tool_name), param_docs)
        tool = cls(
            name=tool_name,  # type: ignore[arg-type]  # checked by the validator
            description=description if description is not None else doc_description,
            parameters=schema,
            implementation=function,
        )
        object.__setattr__(tool, "_binder", binder)
        return tool

    def to_dict(self) -> dict[str, Any]:
        """The tool as the model sees it: ``{"type": "function", "function": {...}}``."""
        function: dict[str, Any] = {"name": self.name, "parameters": self.parameters}
        if self.description:
            function["description"] = self.description
        return {"type": "function", "function": function}

    def bind(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments for ``implementation`` from the model's ``arguments``.

        :raises InvalidToolCallError: the arguments do not fit the parameters.
        """
        if self._binder is not None:
            return self._binder(arguments)
        problem = _schema_problem(self.parameters, dict(arguments))
        if problem is not None:
            raise InvalidToolCallError(f"invalid arguments for tool {self.name!r}: {problem}")
        return dict(arguments)


ToolLike = Tool | Callable[..., Any] | Mapping[str, Any]
"""What ``act()`` takes as a tool: a :class:`Tool`, a function, or a dict with ``name``,
``implementation``, and optionally ``description`` and ``parameters`` (a JSON schema, or
a dict of parameter names to Python types)."""


def _schema_problem(schema: Mapping[str, Any], value: Any) -> str | None:
    from .._structured import _best_error, _jsonschema

    jsonschema = _jsonschema()
    if jsonschema is None:  # pragma: no cover - jsonschema is optional
        return None
    validator = jsonschema.validators.validator_for(schema)(schema)
    return _best_error(validator, value)


def _function_parameters(
    function: Callable[..., Any], name: str, docs: Mapping[str, str]
) -> tuple[dict[str, Any], Callable[[Mapping[str, Any]], dict[str, Any]]]:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"tool {name!r}: cannot read the signature: {exc}") from None
    try:
        hints = typing.get_type_hints(function)
    except Exception as exc:
        raise ValueError(f"tool {name!r}: cannot read the type hints: {exc}") from None
    fields: list[tuple[str, Any, Any]] = []
    defaults: dict[str, Any] = {}
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise ValueError(
                f"tool {name!r}: *{parameter.name} cannot be described to a model; "
                "give every parameter a name"
            )
        if parameter.kind is parameter.POSITIONAL_ONLY:
            raise ValueError(
                f"tool {name!r}: positional-only parameter {parameter.name!r} cannot be "
                "passed by name"
            )
        hint = hints.get(parameter.name, Any)
        if parameter.default is parameter.empty:
            fields.append((parameter.name, hint, dataclasses.field()))
        else:
            default = parameter.default
            defaults[parameter.name] = default
            factory = functools.partial(copy.deepcopy, default)
            fields.append((parameter.name, hint, dataclasses.field(default_factory=factory)))
    arguments_class = dataclasses.make_dataclass(f"{name}_arguments", fields, kw_only=True)
    try:
        schema = json_schema_for_class(arguments_class)
    except ValueError as exc:
        message = str(exc).replace(f"{arguments_class.__name__}.", "")
        raise ValueError(f"tool {name!r}: {message}") from None
    schema.pop("title", None)
    properties = schema["properties"]
    for key, value in defaults.items():
        # A default that is not JSON is left out: the model just sees an optional parameter.
        with contextlib.suppress(TypeError, ValueError):
            properties[key]["default"] = json.loads(json.dumps(value, allow_nan=False))
    for key, text in docs.items():
        if key in properties:
            properties[key]["description"] = text

    def bind(arguments: Mapping[str, Any]) -> dict[str, Any]:
        try:
            value: Any = _user_converter.structure(dict(arguments), arguments_class)
        except Exception as exc:
            raise InvalidToolCallError(
                f"invalid arguments for tool {name!r}: {_describe(exc)}"
            ) from None
        return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}

    return schema, bind


_SECTION_RE = re.compile(
    r"^\s*(Args|Arguments|Parameters|Params|Returns?|Yields?|Raises|Examples?|Notes?):\s*$"
)
_GOOGLE_PARAM_RE = re.compile(r"^(\s+)(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SPHINX_PARAM_RE = re.compile(r"^\s*:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """``(description, {parameter: description})`` of a Google- or Sphinx-style docstring."""
    description: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    indent = 0
    for line in doc.splitlines():
        header = _SECTION_RE.match(line)
        if header:
            section = header.group(1)
            current = None
            continue
        sphinx = _SPHINX_PARAM_RE.match(line)
        if sphinx:
            section, current = ":param", sphinx.group(1)
            params[current] = sphinx.group(2).strip()
            continue
        if line.strip().startswith(":") and section in (None, ":param"):
            section, current = ":other", None  # :returns:, :raises: ...
            continue
        if section is None:
            description.append(line)
        elif section in ("Args", "Arguments", "Parameters", "Params"):
            google = _GOOGLE_PARAM_RE.match(line)
            if google and (current is None or len(google.group(1)) <= indent):
                indent = len(google.group(1))
                current = google.group(2).lstrip("*")
                params[current] = google.group(3).strip()
            elif current is not None and line.strip():
                params[current] = f"{params[current]} {line.strip()}".strip()
        elif section == ":param" and current is not None and line.strip():
            params[current] = f"{params[current]} {line.strip()}".strip()
    return "\n".join(description).strip(), params


def _tool_from_dict(spec: Mapping[str, Any]) -> Tool:
    allowed = {"name", "description", "parameters", "implementation"}
    unknown = set(map(str, spec)) - allowed
    if unknown:
        raise ValueError(f"unknown tool keys {sorted(unknown)}; a tool dict has {sorted(allowed)}")
    if "name" not in spec or "implementation" not in spec:
        raise ValueError(
            "a tool dict needs 'name' and 'implementation' (and may have 'description' "
            f"and 'parameters'); got the keys {sorted(map(str, spec))}"
        )
    parameters = spec.get("parameters")
    description = spec.get("description") or ""
    if not isinstance(description, str):
        raise ValueError(f"a tool description must be a str, got {description!r}")
    if isinstance(parameters, Mapping) and parameters and not _looks_like_schema(parameters):
        # {"a": int, "b": int}: parameter names to Python types, as lmstudio-python takes.
        implementation = spec["implementation"]
        _check_implementation(None, None, implementation)

        def signature_stub(**kwargs: Any) -> Any:  # pragma: no cover - never called
            raise NotImplementedError

        signature_stub.__annotations__ = dict(parameters)
        signature_stub.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter(str(key), inspect.Parameter.KEYWORD_ONLY) for key in parameters]
        )
        stub_tool = Tool.from_function(signature_stub, name=spec["name"])
        tool = Tool(
            name=spec["name"],
            description=description,
            parameters=stub_tool.parameters,
            implementation=implementation,
        )
        object.__setattr__(tool, "_binder", stub_tool._binder)
        return tool
    return Tool(
        name=spec["name"],
        description=description,
        parameters=parameters if parameters is not None else copy.deepcopy(_EMPTY_PARAMETERS),
        implementation=spec["implementation"],
    )


def _looks_like_schema(parameters: Mapping[str, Any]) -> bool:
    """A JSON schema, unless every value is a Python type (``{"a": int, "b": str}``)."""
    return not all(
        isinstance(value, type) or value is Any or typing.get_origin(value) is not None
        for value in parameters.values()
    )


def to_tools(tools: Sequence[ToolLike] | Mapping[str, Any] | ToolLike) -> list[Tool]:
    """Check and convert what the user passed as tools.

    :raises ValueError: a tool that cannot be described, or two tools with one name.
    """
    if isinstance(tools, (Tool, Mapping)) or callable(tools):
        raise TypeError("tools must be a list of tools (functions, Tool objects or dicts)")
    if isinstance(tools, (str, bytes)) or not isinstance(tools, Sequence):
        raise TypeError(f"tools must be a list, got {type(tools).__name__}")
    converted: list[Tool] = []
    for index, item in enumerate(tools):
        if isinstance(item, Tool):
            converted.append(item)
        elif isinstance(item, Mapping):
            converted.append(_tool_from_dict(item))
        elif callable(item):
            converted.append(Tool.from_function(item))
        else:
            raise TypeError(
                f"tool {index} must be a function, a Tool or a dict, got {type(item).__name__}"
            )
    seen: set[str] = set()
    for tool in converted:
        if tool.name in seen:
            raise ValueError(f"two tools are named {tool.name!r}; tool names must be unique")
        seen.add(tool.name)
    return converted


def tool_definitions(tools: Sequence[Tool]) -> list[shared.LLMTool]:
    """The wire ``LLMTool`` objects of ``tools`` (for ``applyPromptTemplate``)."""
    return [
        shared.LLMTool(
            shared.LLMToolFunction(
                tool.name,
                tool.description if tool.description else UNSET,
                tool.parameters,
            )
        )
        for tool in tools
    ]


# ------------------------------------------------------------------------------ running


def default_invalid_tool_request(exc: Exception, request: ToolCallRequest) -> str:
    """The default ``handle_invalid_tool_request``: the error message, for the model."""
    if isinstance(exc, InvalidToolCallError):
        return f"Error: {exc}"
    return f"Error: tool {request.name!r} raised {type(exc).__name__}: {exc}"


def _encode(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidToolCallError(
            f"the tool returned a value that is not JSON-serialisable: {exc}"
        ) from None


async def _invoke(tool: Tool, kwargs: dict[str, Any]) -> Any:
    implementation = tool.implementation
    if _is_async(implementation):
        value = await implementation(**kwargs)
    else:
        value = await anyio.to_thread.run_sync(functools.partial(implementation, **kwargs))
    if inspect.isawaitable(value):
        value = await value
    return value


def _is_async(function: Any) -> bool:
    while isinstance(function, functools.partial):
        function = function.func
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004 - an object with async __call__
    )


InvalidToolHandler = Callable[[Exception, ToolCallRequest], Any]
"""``(exception, request) -> result for the model`` (a coroutine function is awaited)."""


@attrs.define
class _Round:
    """One round's tool calls, in the order the model made them."""

    requests: list[ToolCallRequest] = attrs.Factory(list)
    contents: list[str] = attrs.Factory(list)


async def _answer(
    tools: Mapping[str, Tool],
    request: ToolCallRequest,
    handler: InvalidToolHandler,
    *,
    refuse: str | None,
) -> str:
    try:
        if refuse is not None:
            raise InvalidToolCallError(refuse)
        tool = tools.get(request.name)
        if tool is None:
            raise InvalidToolCallError(
                f"there is no tool named {request.name!r}; the tools are "
                f"{', '.join(sorted(tools)) or '(none)'}"
            )
        return _encode(await _invoke(tool, tool.bind(request.arguments)))
    except Exception as exc:
        outcome = handler(exc, request)
        if inspect.isawaitable(outcome):
            outcome = await outcome
        return _encode(outcome)


async def run_act(
    connection: Connection,
    specifier: shared.ModelSpecifier,
    chat: Any,
    tools: Sequence[ToolLike],
    *,
    config: PredictionConfig | Mapping[str, Any] | None = None,
    max_prediction_rounds: int | None = None,
    max_parallel_tool_calls: int = 4,
    on_message: Callable[[Any], Any] | None = None,
    on_round_start: Callable[[int], Any] | None = None,
    on_round_end: Callable[[int], Any] | None = None,
    on_prediction_completed: Callable[[PredictionResult], Any] | None = None,
    on_prediction_fragment: Callable[[PredictionFragment], Any] | None = None,
    handle_invalid_tool_request: InvalidToolHandler | None = None,
    timeout: float | _Default | None = DEFAULT,
    options: Mapping[str, Any] | None = None,
) -> ActResult:
    """The ``act()`` loop; see the module docstring and ``AsyncLLM.act``."""
    # Everything is checked before the first round is sent.
    if max_prediction_rounds is not None and (
        isinstance(max_prediction_rounds, bool)
        or not isinstance(max_prediction_rounds, int)
        or max_prediction_rounds < 1
    ):
        raise ValueError(
            f"max_prediction_rounds must be an int >= 1 or None, got {max_prediction_rounds!r}"
        )
    if (
        isinstance(max_parallel_tool_calls, bool)
        or not isinstance(max_parallel_tool_calls, int)
        or max_parallel_tool_calls < 1
    ):
        raise ValueError(
            f"max_parallel_tool_calls must be an int >= 1, got {max_parallel_tool_calls!r}"
        )
    callbacks = {
        "on_message": on_message,
        "on_round_start": on_round_start,
        "on_round_end": on_round_end,
        "on_prediction_completed": on_prediction_completed,
        "on_prediction_fragment": on_prediction_fragment,
        "handle_invalid_tool_request": handle_invalid_tool_request,
    }
    for callback_name, callback in callbacks.items():
        check_callback(callback_name, callback)
    cfg = prediction_config_from(config, **(options or {}))
    if cfg.raw_tools is not None:
        raise ValueError("act() offers its own tools: do not pass raw_tools")
    if cfg.structured is not None:
        raise ValueError("structured output cannot be combined with tools in act()")
    converted = to_tools(tools)
    if not converted:
        raise ValueError("act() needs at least one tool; use respond() without tools")
    by_name = {tool.name: tool for tool in converted}
    history = Chat.from_history(chat)
    if not len(history):
        raise ValueError("the chat is empty: add a user message first")
    with_tools = prediction_stack(
        attrs.evolve(
            cfg,
            raw_tools={"type": "toolArray", "tools": [tool.to_dict() for tool in converted]},
        )
    )
    # The last round says "no tools" explicitly, as the official JS client does (a server
    # default of its own cannot bring tools back).
    without_tools = prediction_stack(attrs.evolve(cfg, raw_tools={"type": "none"}))
    handler: InvalidToolHandler = handle_invalid_tool_request or default_invalid_tool_request

    start = anyio.current_time()
    round_index = 0
    while True:
        last = max_prediction_rounds is not None and round_index == max_prediction_rounds - 1
        await call_back(on_round_start, round_index)
        parameter = llm.PredictCreationParameter(
            specifier, history.to_wire(), without_tools if last else with_tools
        )
        result, calls = await _run_round(
            connection,
            parameter,
            by_name,
            handler,
            limiter=anyio.CapacityLimiter(max_parallel_tool_calls),
            on_fragment=on_prediction_fragment,
            refuse=("the tool was not run: max_prediction_rounds was reached" if last else None),
            timeout=timeout,
        )
        message = history.add_assistant_response(result)
        await call_back(on_message, message)
        await call_back(on_prediction_completed, result)
        if calls.requests:
            tool_message: Any = None
            for request, content in zip(calls.requests, calls.contents, strict=True):
                tool_message = history.add_tool_result(content, request=request)
            await call_back(on_message, tool_message)
        await call_back(on_round_end, round_index)
        round_index += 1
        if not calls.requests or last:
            break
    return ActResult(rounds=round_index, total_time_seconds=anyio.current_time() - start)


async def _run_round(
    connection: Connection,
    parameter: llm.PredictCreationParameter,
    tools: Mapping[str, Tool],
    handler: InvalidToolHandler,
    *,
    limiter: anyio.CapacityLimiter,
    on_fragment: Callable[[PredictionFragment], Any] | None,
    refuse: str | None,
    timeout: float | _Default | None,
) -> tuple[PredictionResult, _Round]:
    accumulator = PredictionAccumulator()
    calls = _Round()

    async def run(index: int, request: ToolCallRequest) -> None:
        async with limiter:
            calls.contents[index] = await _answer(tools, request, handler, refuse=refuse)

    with exceptions_unwrapped():
        async with (
            anyio.create_task_group() as task_group,
            connection.open_channel(llm.PREDICT, parameter, idle_timeout=timeout) as channel,
        ):
            async for packet in channel:
                event = accumulator.feed(packet)
                if isinstance(event, ToolCallGenerated):
                    # Start the tool now, while the prediction goes on.
                    calls.requests.append(event.request)
                    calls.contents.append("")
                    task_group.start_soon(run, len(calls.requests) - 1, event.request)
                elif isinstance(event, PredictionFragment):
                    await call_back(on_fragment, event)
    return accumulator.finish(), calls
