"""``act()``: tools from functions, ``Tool`` objects and dicts; rounds; concurrency; errors.

Against the local server's scripted engine (real sockets), whose tool-call scripts make the
model call the given tools whenever the request offers tools and the last turn is not a
tool result; and against the in-memory fake LM Studio for what needs control over the
stream's timing (a tool that must start while the prediction still streams, cancellation,
a model that never stops calling tools), also on Trio's autojump clock.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import anyio
import attrs
import pytest
from _fake_server import (
    FakeServer,
    ServerChannel,
    backend,
    connected,
    fragment,
    llm_instance,
    success,
)

from lmstudio_sdk import (
    ActResult,
    AsyncClient,
    AsyncLLM,
    Chat,
    InvalidToolCallError,
    PredictionResult,
    Tool,
)
from lmstudio_sdk.protocol.endpoints import diagnostics, llm, shared
from lmstudio_sdk.server import (
    BackgroundServer,
    Script,
    ScriptedToolCall,
    ServerOptions,
    scripted_model,
)

KEY = "scripted-llm"
MODEL = "smollm2-135m-instruct"
TIMING = pytest.mark.parametrize("anyio_backend", ["asyncio", "trio", "autojump"], indirect=True)


def calls(*specs: tuple[str, dict[str, Any]]) -> Script:
    """A script whose model calls these tools (in this order), then echoes the user."""
    return Script(
        echo=True,
        tool_calls=tuple(ScriptedToolCall(name=name, arguments=args) for name, args in specs),
    )


@pytest.fixture
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(ServerOptions(port=0, models=(scripted_model(KEY),))) as running:
        yield running


@asynccontextmanager
async def llm_with(server: BackgroundServer, script: Script) -> AsyncIterator[AsyncLLM]:
    server.set_script(KEY, script=script)
    async with AsyncClient(server.url) as client:
        yield await client.llm.model(KEY)


def tool_results(messages: list[Any]) -> list[tuple[str | None, str, Any]]:
    """``(tool_call_id, name, decoded content)`` of every tool result in ``messages``."""
    return [
        (
            part.tool_call_id if isinstance(part.tool_call_id, str) else None,
            part.name,
            json.loads(part.content),
        )
        for message in messages
        if message.role == "tool"
        for part in message.content
    ]


# ------------------------------------------------------------------------------ basics


async def test_a_function_tool_is_called_and_its_result_goes_back(
    server: BackgroundServer,
) -> None:
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    messages: list[Any] = []
    async with llm_with(server, calls(("add", {"a": 2, "b": 40}))) as model:
        result = await model.act("What is 2 + 40?", [add], on_message=messages.append)
    assert isinstance(result, ActResult)
    assert result.rounds == 2  # the tool round, then the answer
    assert result.total_time_seconds > 0
    assert [m.role for m in messages] == ["assistant", "tool", "assistant"]
    request = messages[0].content[1].tool_call_request
    assert (request.name, request.arguments, request.id) == ("add", {"a": 2, "b": 40}, "call-0")
    assert tool_results(messages) == [("call-0", "add", 42)]
    assert messages[-1].content[0].text == "What is 2 + 40?"  # the final answer (echo)


async def test_the_next_round_sends_the_grown_history(server: BackgroundServer) -> None:
    async def weather(city: str) -> dict[str, Any]:
        return {"city": city, "sky": "clear"}

    server.set_script(KEY, script=calls(("weather", {"city": "Oslo"})))
    async with AsyncClient(server.url) as client:
        model = await client.llm.model(KEY)
        chat = Chat("You are helpful.")
        chat.add_user_message("Weather in Oslo?")
        prompts = []
        async with client.diagnostics.stream_logs() as logs:
            await model.act(chat, [weather])
            for _ in range(2):
                with anyio.fail_after(10):
                    async for event in logs:
                        if isinstance(event.data, diagnostics.LLMPredictionInputLog):
                            prompts.append(event.data.input)
                            break
    assert len(chat) == 2  # act() works on a copy: the caller's chat is unchanged
    assert "<|tools|>" in prompts[0]
    assert '"name": "weather"' in prompts[0]
    round_two = prompts[1]
    assert '<|tool_call|>{"function": {"arguments": {"city": "Oslo"}' in round_two
    assert '<|tool|>\n{"city": "Oslo", "sky": "clear"}' in round_two


async def test_round_callbacks(server: BackgroundServer) -> None:
    events: list[Any] = []

    def ping() -> str:
        return "pong"

    async def on_completed(result: PredictionResult) -> None:
        events.append(("completed", result.stop_reason, len(result.tool_call_requests)))

    async with llm_with(server, calls(("ping", {}))) as model:
        await model.act(
            "Ping?",
            [ping],
            on_round_start=lambda i: events.append(("start", i)),
            on_round_end=lambda i: events.append(("end", i)),
            on_prediction_completed=on_completed,
            on_prediction_fragment=lambda f: events.append(("fragment", f.content)),
        )
    assert events[:3] == [("start", 0), ("completed", "toolCalls", 1), ("end", 0)]
    assert events[3] == ("start", 1)
    assert ("fragment", "Ping") in events
    assert events[-2:] == [("completed", "eosFound", 0), ("end", 1)]


# ------------------------------------------------------------------------------ concurrency


async def test_two_tools_of_one_round_run_concurrently_and_results_keep_request_order(
    server: BackgroundServer,
) -> None:
    first_started = anyio.Event()
    second_done = anyio.Event()
    finished: list[str] = []

    async def first(x: int) -> str:
        first_started.set()
        await second_done.wait()  # waits for the second tool: only possible if concurrent
        finished.append("first")
        return f"first {x}"

    async def second(y: int) -> str:
        await first_started.wait()  # and this one waits for the first to be running
        finished.append("second")
        second_done.set()
        return f"second {y}"

    messages: list[Any] = []
    script = calls(("first", {"x": 1}), ("second", {"y": 2}))
    async with llm_with(server, script) as model:
        with anyio.fail_after(10):
            await model.act("Go", [first, second], on_message=messages.append)
    assert finished == ["second", "first"]  # the second finished first...
    assert tool_results(messages) == [  # ...but the results are in request order
        ("call-0", "first", "first 1"),
        ("call-1", "second", "second 2"),
    ]


async def test_max_parallel_tool_calls_one_runs_them_in_order(server: BackgroundServer) -> None:
    running = 0
    log: list[str] = []

    async def slow(n: int) -> int:
        nonlocal running
        running += 1
        log.append(f"start {n} with {running} running")
        await anyio.sleep(0.01)
        running -= 1
        return n

    script = calls(("slow", {"n": 1}), ("slow", {"n": 2}), ("slow", {"n": 3}))
    async with llm_with(server, script) as model:
        await model.act("Go", [slow], max_parallel_tool_calls=1)
    assert log == ["start 1 with 1 running", "start 2 with 1 running", "start 3 with 1 running"]


async def test_sync_tools_run_in_worker_threads(server: BackgroundServer) -> None:
    threads: list[int] = []

    def where() -> str:
        threads.append(threading.get_ident())
        return "here"

    messages: list[Any] = []
    async with llm_with(server, calls(("where", {}))) as model:
        await model.act("Where?", [where], on_message=messages.append)
    assert threads
    assert threads[0] != threading.get_ident()
    assert tool_results(messages) == [("call-0", "where", "here")]


# ------------------------------------------------------------------------------ errors


async def test_a_tool_exception_becomes_an_error_text_for_the_model(
    server: BackgroundServer,
) -> None:
    def divide(a: float, b: float) -> float:
        return a / b

    messages: list[Any] = []
    async with llm_with(server, calls(("divide", {"a": 1, "b": 0}))) as model:
        result = await model.act("1/0?", [divide], on_message=messages.append)
    assert result.rounds == 2  # the loop went on
    [(_, _, text)] = tool_results(messages)
    assert text == "Error: tool 'divide' raised ZeroDivisionError: float division by zero"


async def test_unknown_tool_and_bad_arguments_are_reported_to_the_model(
    server: BackgroundServer,
) -> None:
    def add(a: int, b: int) -> int:
        return a + b

    messages: list[Any] = []
    script = calls(("nope", {}), ("add", {"a": "two", "b": 2}), ("add", {"a": 1}))
    async with llm_with(server, script) as model:
        await model.act("Go", [add], on_message=messages.append)
    unknown, wrong_type, missing = (text for _, _, text in tool_results(messages))
    assert unknown == "Error: there is no tool named 'nope'; the tools are add"
    assert wrong_type.startswith("Error: invalid arguments for tool 'add'")
    assert "a" in wrong_type
    assert "integer" in wrong_type
    assert missing.startswith("Error: invalid arguments for tool 'add'")
    assert "b" in missing


async def test_handle_invalid_tool_request_chooses_what_the_model_sees(
    server: BackgroundServer,
) -> None:
    def fail() -> None:
        raise RuntimeError("disk full")

    seen: list[tuple[type[Exception], str]] = []

    async def handler(exc: Exception, request: Any) -> dict[str, str]:
        seen.append((type(exc), request.name))
        return {"error": str(exc), "retry": "no"}

    messages: list[Any] = []
    async with llm_with(server, calls(("fail", {}), ("ghost", {}))) as model:
        await model.act(
            "Go", [fail], handle_invalid_tool_request=handler, on_message=messages.append
        )
    assert set(seen) == {(RuntimeError, "fail"), (InvalidToolCallError, "ghost")}
    results = [text for _, _, text in tool_results(messages)]
    assert results[0] == {"error": "disk full", "retry": "no"}
    assert results[1]["error"].startswith("there is no tool named 'ghost'")


async def test_a_handler_that_raises_stops_act_with_that_error(server: BackgroundServer) -> None:
    def fail() -> None:
        raise RuntimeError("disk full")

    def handler(exc: Exception, request: Any) -> None:
        raise exc

    async with llm_with(server, calls(("fail", {}))) as model:
        with pytest.raises(RuntimeError, match="disk full"):
            await model.act("Go", [fail], handle_invalid_tool_request=handler)


async def test_a_result_that_is_not_json_is_reported(server: BackgroundServer) -> None:
    def odd() -> object:
        return object()

    messages: list[Any] = []
    async with llm_with(server, calls(("odd", {}))) as model:
        await model.act("Go", [odd], on_message=messages.append)
    [(_, _, text)] = tool_results(messages)
    assert text.startswith("Error: the tool returned a value that is not JSON-serialisable")


# ------------------------------------------------------------------------------ rounds


async def test_max_prediction_rounds_one_offers_no_tools(server: BackgroundServer) -> None:
    called: list[int] = []

    def add(a: int, b: int) -> int:
        called.append(1)
        return a + b

    messages: list[Any] = []
    async with llm_with(server, calls(("add", {"a": 1, "b": 2}))) as model:
        result = await model.act("Add?", [add], max_prediction_rounds=1, on_message=messages.append)
    assert result.rounds == 1
    assert called == []
    assert [m.role for m in messages] == ["assistant"]
    assert messages[0].content[0].text == "Add?"  # answered without a tool call


# ------------------------------------------------------------------------------ tool forms


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


@dataclasses.dataclass
class Place:
    city: str
    country: str = "NO"


async def test_tools_from_functions_tool_objects_and_dicts(server: BackgroundServer) -> None:
    received: dict[str, Any] = {}

    def forecast(place: Place, unit: Unit = Unit.CELSIUS, days: int = 1) -> str:
        """Forecast the weather.

        Args:
            place: where.
            unit: the temperature unit.
            days: how many days ahead.
        """
        received["forecast"] = (place, unit, days)
        return "sunny"

    def multiply(a: int, b: int) -> int:
        received["multiply"] = (a, b)
        return a * b

    shout = Tool(
        name="shout",
        description="Upper-case a text.",
        parameters={
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
        },
        implementation=lambda text: text.upper(),
    )
    script = calls(
        ("forecast", {"place": {"city": "Oslo"}, "unit": "fahrenheit"}),
        ("multiply", {"a": 6, "b": 7}),
        ("shout", {"text": "hi"}),
        ("shout", {"text": 5}),
    )
    messages: list[Any] = []
    async with llm_with(server, script) as model:
        await model.act(
            "Go",
            [
                forecast,
                {
                    "name": "multiply",
                    "parameters": {"a": int, "b": int},
                    "implementation": multiply,
                },
                shout,
            ],
            on_message=messages.append,
        )
    assert received["forecast"] == (Place("Oslo", "NO"), Unit.FAHRENHEIT, 1)
    assert received["multiply"] == (6, 7)
    results = [text for _, _, text in tool_results(messages)]
    assert results[:3] == ["sunny", 42, "HI"]
    assert results[3].startswith("Error: invalid arguments for tool 'shout'")


def test_tool_from_function_describes_the_parameters() -> None:
    def search(query: str, limit: int = 10, kind: Literal["web", "news"] = "web") -> list[str]:
        """Search the web.

        Args:
            query: what to look for.
            limit: at most this many results,
                counted after de-duplication.
        """
        return []

    tool = Tool.from_function(search)
    assert tool.name == "search"
    assert tool.description == "Search the web."
    assert tool.parameters == {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "what to look for."},
            "limit": {
                "type": "integer",
                "default": 10,
                "description": "at most this many results, counted after de-duplication.",
            },
            "kind": {"enum": ["web", "news"], "default": "web"},
        },
        "required": ["query"],
        "additionalProperties": False,
    }
    assert tool.to_dict()["function"]["name"] == "search"
    assert tool.bind({"query": "trio"}) == {"query": "trio", "limit": 10, "kind": "web"}
    with pytest.raises(InvalidToolCallError, match="limit"):
        tool.bind({"query": "trio", "limit": "ten"})
    with pytest.raises(InvalidToolCallError):
        tool.bind({"query": "trio", "extra": 1})


@attrs.frozen
class Point:
    x: float
    y: float


def test_sphinx_docstrings_and_overrides() -> None:
    async def move(point: Point, dx: float) -> Point:
        """Move a point.

        :param point: the start.
        :param dx: how far along x.
        :returns: the new point.
        """
        return Point(point.x + dx, point.y)

    tool = Tool.from_function(move, name="move_point", description="Shift it.")
    assert tool.name == "move_point"
    assert tool.description == "Shift it."
    props = tool.parameters["properties"]
    assert props["point"]["description"] == "the start."
    assert props["dx"] == {"type": "number", "description": "how far along x."}
    assert tool.parameters["$defs"]["Point"]["required"] == ["x", "y"]
    assert tool.bind({"point": {"x": 1, "y": 2}, "dx": 3}) == {"point": Point(1.0, 2.0), "dx": 3}


def test_tools_that_cannot_be_described_are_refused() -> None:
    def star(*args: int) -> None: ...

    def kw(**kwargs: int) -> None: ...

    def positional(a: int, /) -> None: ...

    def unsupported(a: complex) -> None: ...

    for function, match in [
        (star, r"\*args"),
        (kw, r"\*kwargs"),
        (positional, "positional-only"),
        (unsupported, "complex"),
    ]:
        with pytest.raises(ValueError, match=match):
            Tool.from_function(function)
    with pytest.raises(ValueError, match="tool name"):
        Tool(name="has space", implementation=print)
    with pytest.raises(ValueError, match="type 'object'"):
        Tool(name="t", parameters={"type": "string"}, implementation=print)
    with pytest.raises(TypeError, match="callable"):
        Tool(name="t", implementation="print")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ bad input


def fake_server() -> FakeServer:
    server = FakeServer()

    async def already_loaded(ch: ServerChannel) -> None:
        await ch.send(llm.GetOrLoadAlreadyLoaded(llm_instance(MODEL)))

    server.channels["llm.getOrLoad"] = already_loaded
    return server


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    return backend(request.param)


def noop() -> None:
    return None


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"tools": []}, ValueError, "at least one tool"),
        ({"tools": noop}, TypeError, "list of tools"),
        ({"tools": [noop, noop]}, ValueError, "two tools are named 'noop'"),
        ({"tools": [42]}, TypeError, "tool 0"),
        ({"tools": [{"name": "x"}]}, ValueError, "implementation"),
        ({"tools": [noop], "max_prediction_rounds": 0}, ValueError, "max_prediction_rounds"),
        ({"tools": [noop], "max_parallel_tool_calls": 0}, ValueError, "max_parallel"),
        ({"tools": [noop], "raw_tools": {"type": "none"}}, ValueError, "raw_tools"),
        ({"tools": [noop], "structured": {"type": "object"}}, ValueError, "structured"),
        ({"tools": [noop], "temprature": 1}, ValueError, "temprature"),
        ({"tools": [noop], "on_message": 3}, TypeError, "on_message"),
        ({"tools": [noop], "chat": []}, ValueError, "empty"),
    ],
)
async def test_bad_act_input_is_refused_before_anything_is_sent(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    server = fake_server()
    kwargs = dict(kwargs)  # the parameters are shared by the backends
    async with connected(server, timeout=5) as client:
        model = await client.llm.model(MODEL)
        chat = kwargs.pop("chat", "Hi")
        with pytest.raises(error, match=match):
            await model.act(chat, **kwargs)
    creates = [f for f in server.received("llm") if f.get("type") == "channelCreate"]
    assert [f["endpoint"] for f in creates] == ["getOrLoad"]


# ------------------------------------------------------------------------------ timing


def offered_tools(ch: ServerChannel) -> list[Any]:
    """The tools a predict request offers (``[]`` when it offers none)."""
    for layer in ch.parameter.prediction_config_stack.layers:
        for field in layer.config.fields:
            if field.key == "llm.prediction.tools":
                return list(field.value.get("tools", []))
    return []


def tool_call(name: str, call_id: str, **arguments: Any) -> llm.PredictToolCallGenerationEnd:
    return llm.PredictToolCallGenerationEnd(shared.ToolCallRequest(name, call_id, arguments))


@TIMING
async def test_a_tool_starts_while_the_prediction_is_still_streaming(anyio_backend: Any) -> None:
    server = fake_server()
    tool_started = anyio.Event()

    async def predict(ch: ServerChannel) -> None:
        if offered_tools(ch) and ch.parameter.history.messages[-1].role == "user":
            await ch.send(tool_call("probe", "c1"))
            # The server goes on streaming only once the tool runs: a client that waited
            # for the end of the prediction before running tools would hang here.
            await tool_started.wait()
            await ch.send(fragment("still streaming"))
            await ch.send(success("toolCalls"))
        else:
            await ch.send(fragment("done"))
            await ch.send(success("eosFound"))

    async def probe() -> str:
        tool_started.set()
        return "ok"

    server.channels["llm.predict"] = predict
    async with connected(server) as client:
        model = await client.llm.model(MODEL)
        with anyio.fail_after(5):
            result = await model.act("Go", [probe])
    assert result.rounds == 2


@TIMING
async def test_cancelling_act_cancels_the_running_tool_and_the_prediction(
    anyio_backend: Any,
) -> None:
    server = fake_server()
    tool_running = anyio.Event()
    tool_cancelled = anyio.Event()
    sent: list[str] = []

    async def predict(ch: ServerChannel) -> None:
        await ch.send(tool_call("wait", "c1"))
        while not ch.cancelled.is_set():
            await ch.send(fragment("."))
            with anyio.move_on_after(0.05):
                await ch.cancelled.wait()
        await ch.send(success("userStopped"))
        sent.append("userStopped")

    async def wait() -> None:
        tool_running.set()
        try:
            await anyio.sleep_forever()
        finally:
            tool_cancelled.set()

    server.channels["llm.predict"] = predict
    async with connected(server) as client:
        model = await client.llm.model(MODEL)
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                await model.act("Go", [wait])

            tg.start_soon(run)
            await tool_running.wait()
            tg.cancel_scope.cancel()
    assert tool_cancelled.is_set()
    assert server.cancels == ["llm.predict"]
    assert sent == ["userStopped"]


@TIMING
async def test_a_model_that_keeps_calling_tools_is_stopped_by_max_rounds(
    anyio_backend: Any,
) -> None:
    server = fake_server()
    offered: list[int] = []

    async def predict(ch: ServerChannel) -> None:
        tools = offered_tools(ch)
        offered.append(len(tools))
        if tools:
            await ch.send(tool_call("again", f"c{len(offered)}"))
            await ch.send(success("toolCalls"))
        else:
            await ch.send(fragment("fine, I stop"))
            await ch.send(success("eosFound"))

    count = 0

    def again() -> int:
        nonlocal count
        count += 1
        return count

    server.channels["llm.predict"] = predict
    messages: list[Any] = []
    async with connected(server) as client:
        model = await client.llm.model(MODEL)
        result = await model.act("Go", [again], max_prediction_rounds=3, on_message=messages.append)
    assert result.rounds == 3
    assert offered == [1, 1, 0]  # the last round offers no tools
    assert count == 2
    assert [text for _, _, text in tool_results(messages)] == [1, 2]
    assert messages[-1].content[0].text == "fine, I stop"


async def test_a_tool_call_in_the_last_round_is_answered_but_not_run() -> None:
    server = fake_server()

    async def stubborn(ch: ServerChannel) -> None:
        await ch.send(tool_call("again", "c1"))
        await ch.send(success("toolCalls"))

    ran: list[int] = []

    def again() -> None:
        ran.append(1)

    server.channels["llm.predict"] = stubborn
    messages: list[Any] = []
    async with connected(server) as client:
        model = await client.llm.model(MODEL)
        result = await model.act("Go", [again], max_prediction_rounds=1, on_message=messages.append)
    assert result.rounds == 1
    assert ran == []
    [(call_id, _, text)] = tool_results(messages)
    assert call_id == "c1"
    assert "max_prediction_rounds" in text
