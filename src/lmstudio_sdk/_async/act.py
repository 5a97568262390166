"""The ``act()`` loop: the model calls Python functions, round after round.

``act()`` is all client-side (PROTOCOL.md section 7): each round is an ordinary
``predict`` channel whose config offers the tools (``llm.prediction.tools``). As soon as
the server reports a complete tool call (``toolCallGenerationEnd``), the tool starts
running in the round's task group, while the prediction keeps streaming; at most
``max_parallel_tool_calls`` run at once. When the prediction is over and every tool has
finished, the assistant message and one ``tool`` message with the results (in the order
the model requested them, JSON-encoded, each with its ``toolCallId``) are appended to the
history, and the next round starts. The loop ends after a round without tool calls, or
after ``max_prediction_rounds`` rounds (the last one offers no tools).

A tool that raises, times out (``Tool(timeout=...)``, ``act(tool_timeout=...)``), an
unknown tool and arguments that do not fit the tool's parameters do not end the loop:
``handle_invalid_tool_request(exc, request)`` turns the problem into the result the model
sees (by default the error message; a handler that returns ``None`` keeps it).

Cancelling ``act()`` (a cancel scope around it) cancels the running tools and the current
prediction on the server, and nothing new starts afterwards: no callback of the cancelled
round, no next round. Plain (sync) tools run in worker threads, so a slow tool does not
stall the stream; a thread cannot be interrupted, so a cancelled or timed-out sync tool is
*abandoned*: ``act()`` returns at once, the thread runs to its end on its own, and its
result is dropped.
"""

# Per-call ``timeout=`` is part of the API (DESIGN 4): it composes with anyio.fail_after.
# ruff: noqa: ASYNC109

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import attrs

from .._prediction import PredictionAccumulator
from .._sentinel import DEFAULT, DefaultType
from ..chat import Chat, tool_result_json
from ..config import PredictionConfig, prediction_config_from, prediction_stack
from ..protocol.endpoints import llm, shared
from ..results import (
    PredictionFragment,
    PredictionResult,
    ToolCallGenerated,
    ToolCallRequest,
)
from ._exceptions import exceptions_unwrapped
from .prediction import call_back, check_callback
from .tools import ActResult, InvalidToolCallError, Tool, ToolLike, check_tool_timeout, to_tools

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["InvalidToolHandler", "default_invalid_tool_request", "run_act"]


class ToolTimeoutError(TimeoutError):
    """A tool call took longer than its timeout (what ``handle_invalid_tool_request`` gets)."""


def default_invalid_tool_request(exc: Exception, request: ToolCallRequest) -> str:
    """The default ``handle_invalid_tool_request``: the error message, for the model."""
    if isinstance(exc, (InvalidToolCallError, ToolTimeoutError)):
        return f"Error: {exc}"
    return f"Error: tool {request.name!r} raised {type(exc).__name__}: {exc}"


def _encode(value: Any) -> str:
    try:
        return tool_result_json(value)
    except (TypeError, ValueError) as exc:
        raise InvalidToolCallError(
            f"the tool returned a value that is not JSON-serialisable: {exc}"
        ) from None


async def _invoke(tool: Tool, kwargs: dict[str, Any], default_timeout: float | None) -> Any:
    timeout = tool.timeout if tool.timeout is not None else default_timeout
    with anyio.move_on_after(math.inf if timeout is None else timeout) as scope:
        implementation = tool.implementation
        if _is_async(implementation):
            value = await implementation(**kwargs)
        else:
            # A thread cannot be interrupted: on cancellation (or the tool's timeout) it is
            # abandoned, never joined, so leaving act() does not wait for a blocked tool.
            value = await anyio.to_thread.run_sync(
                functools.partial(implementation, **kwargs), abandon_on_cancel=True
            )
        if inspect.isawaitable(value):
            value = await value
    if scope.cancelled_caught:
        raise ToolTimeoutError(
            f"tool {tool.name!r} did not finish within its timeout of {timeout:g} s; "
            "its result was dropped"
        )
    return value


def _is_async(function: Any) -> bool:
    while isinstance(function, functools.partial):
        function = function.func
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004 - an object with async __call__
    )


InvalidToolHandler = Callable[[Exception, ToolCallRequest], Any]
"""``(exception, request) -> result for the model`` (a coroutine function is awaited;
``None`` keeps the default error text)."""


@attrs.define
class _Round:
    """One round's tool calls, in the order the model made them."""

    requests: list[ToolCallRequest] = attrs.Factory(list)
    contents: list[str] = attrs.Factory(list)


@attrs.frozen
class _Tools:
    """What every tool call of one ``act()`` needs."""

    by_name: Mapping[str, Tool]
    handler: InvalidToolHandler | None
    default_timeout: float | None


async def _answer(tools: _Tools, request: ToolCallRequest, *, refuse: str | None) -> str:
    try:
        if refuse is not None:
            raise InvalidToolCallError(refuse)
        tool = tools.by_name.get(request.name)
        if tool is None:
            raise InvalidToolCallError(
                f"there is no tool named {request.name!r}; the tools are "
                f"{', '.join(sorted(tools.by_name)) or '(none)'}"
            )
        return _encode(await _invoke(tool, tool.bind(request.arguments), tools.default_timeout))
    except Exception as exc:
        outcome: Any = None
        if tools.handler is not None:
            outcome = tools.handler(exc, request)
            if inspect.isawaitable(outcome):
                outcome = await outcome
        # A handler that only logs (returns None) keeps the default text, as in
        # lmstudio-python: the model should never be told the result was ``null``.
        if outcome is None:
            outcome = default_invalid_tool_request(exc, request)
        return _encode(outcome)


def _check_counts(max_prediction_rounds: Any, max_parallel_tool_calls: Any) -> None:
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
    tool_timeout: float | None = None,
    timeout: float | DefaultType | None = DEFAULT,
    options: Mapping[str, Any] | None = None,
) -> ActResult:
    """The ``act()`` loop; see the module docstring and ``AsyncLLM.act``."""
    # Everything is checked before the first round is sent.
    _check_counts(max_prediction_rounds, max_parallel_tool_calls)
    check_tool_timeout(tool_timeout)
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
    run_tools = _Tools(
        {tool.name: tool for tool in converted}, handle_invalid_tool_request, tool_timeout
    )

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
            run_tools,
            limiter=anyio.CapacityLimiter(max_parallel_tool_calls),
            on_fragment=on_prediction_fragment,
            refuse=("the tool was not run: max_prediction_rounds was reached" if last else None),
            timeout=timeout,
        )
        # A round may end normally although act() was cancelled meanwhile (the server
        # answered the cancel with a clean end): then nothing more may happen, neither
        # this round's callbacks nor a next round.
        await anyio.lowlevel.checkpoint_if_cancelled()
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
        await anyio.lowlevel.checkpoint_if_cancelled()
    return ActResult(rounds=round_index, total_time_seconds=anyio.current_time() - start)


async def _run_round(
    connection: Connection,
    parameter: llm.PredictCreationParameter,
    tools: _Tools,
    *,
    limiter: anyio.CapacityLimiter,
    on_fragment: Callable[[PredictionFragment], Any] | None,
    refuse: str | None,
    timeout: float | DefaultType | None,
) -> tuple[PredictionResult, _Round]:
    accumulator = PredictionAccumulator()
    calls = _Round()

    async def run(index: int, request: ToolCallRequest) -> None:
        async with limiter:
            calls.contents[index] = await _answer(tools, request, refuse=refuse)

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
