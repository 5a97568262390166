"""The scripted engine, and the engine interface it shares with the real ones.

Timing tests run on Trio's autojump clock (no real I/O is involved), so delays and pacing are
checked exactly and instantly; nothing here sleeps to wait for something.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import anyio
import pytest
import trio.testing

from lmstudio_sdk.server.engines import (
    FaultEvent,
    Faults,
    Finished,
    GenerationEvent,
    GenerationRequest,
    InjectedFaultError,
    InjectedWireFault,
    InvalidRequestError,
    LLMEngine,
    ModelNotLoadedError,
    PromptProgress,
    PromptTemplateError,
    PromptTooLongError,
    ReasoningParsing,
    Script,
    ScriptedEmbeddingEngine,
    ScriptedEngine,
    ScriptedToolCall,
    TokenPiece,
    ToolCallArgumentFragment,
    ToolCallEnd,
    ToolCallFailed,
    ToolCallName,
    ToolCallStart,
    create_engine,
    render_chat_template,
)
from lmstudio_sdk.server.engines._assembly import StreamAssembler
from lmstudio_sdk.server.engines.scripted import (
    example_for_schema,
    fake_token_pieces,
    scripted_embedding_facts,
    scripted_llm_facts,
)

AUTOJUMP = pytest.mark.parametrize(
    "anyio_backend",
    [
        pytest.param(
            ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)}), id="autojump"
        )
    ],
)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


async def run(engine: LLMEngine, request: GenerationRequest) -> list[GenerationEvent]:
    async with engine.generate(request) as stream:
        events = [event async for event in stream]
    assert isinstance(events[-1], Finished)
    assert stream.finished == events[-1]
    return events


def pieces(events: Sequence[GenerationEvent]) -> list[TokenPiece]:
    return [e for e in events if isinstance(e, TokenPiece)]


def text_of(events: Sequence[GenerationEvent]) -> str:
    return "".join(p.text for p in pieces(events))


def finished(events: Sequence[GenerationEvent]) -> Finished:
    last = events[-1]
    assert isinstance(last, Finished)
    return last


async def chat_prompt(engine: LLMEngine, user: str, **kwargs: Any) -> str:
    return await engine.apply_prompt_template([{"role": "user", "content": user}], **kwargs)


@pytest.fixture
async def engine() -> Any:
    async with ScriptedEngine() as loaded:
        yield loaded


# --- loading --------------------------------------------------------------------------------


async def test_load_reports_progress_and_default_context() -> None:
    engine = ScriptedEngine(script=Script(load_progress_steps=4))
    with pytest.raises(ModelNotLoadedError):
        _ = engine.context_length
    seen: list[float] = []
    await engine.load(progress=seen.append)
    assert seen == [0.25, 0.5, 0.75, 1.0]
    assert engine.loaded
    assert engine.context_length == ScriptedEngine.DEFAULT_CONTEXT_LENGTH
    await engine.aclose()
    assert not engine.loaded
    with pytest.raises(ModelNotLoadedError, match="not loaded"):
        await engine.tokenize("hi")


@pytest.mark.parametrize("bad", [0, -5, 40_000, 2.5, True])
async def test_load_rejects_bad_context_length(bad: Any) -> None:
    engine = ScriptedEngine(scripted_llm_facts(max_context_length=32768))
    with pytest.raises(InvalidRequestError, match="context_length"):
        await engine.load(bad)
    assert not engine.loaded


@AUTOJUMP
async def test_load_paces_progress() -> None:
    engine = ScriptedEngine(script=Script(load_progress_steps=3, load_step_seconds=2.0))
    times: list[float] = []
    start = anyio.current_time()
    await engine.load(progress=lambda _: times.append(anyio.current_time() - start))
    assert times == [2.0, 4.0, 6.0]


# --- text -----------------------------------------------------------------------------------


async def test_tokenizer_is_deterministic(engine: ScriptedEngine) -> None:
    text = "Hello, world! Hello again."
    ids = await engine.tokenize(text)
    assert ids == await engine.tokenize(text)
    assert await engine.count_tokens(text) == len(ids) == len(fake_token_pieces(text))
    assert "".join(fake_token_pieces(text)) == text
    assert ids[0] != ids[1]  # "Hello" and ","
    assert await engine.tokenize("x") != await engine.tokenize("y")


async def test_fake_chat_template(engine: ScriptedEngine) -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Hi"},
    ]
    prompt = await engine.apply_prompt_template(messages)
    assert prompt == "<|system|>\nBe terse.\n<|end|>\n<|user|>\nHi\n<|end|>\n<|assistant|>\n"
    without = await engine.apply_prompt_template(messages, add_generation_prompt=False)
    assert not without.endswith("<|assistant|>\n")
    with_tools = await engine.apply_prompt_template(messages, tools=[WEATHER_TOOL])
    assert with_tools.startswith("<|tools|>\n")
    assert "get_weather" in with_tools


async def test_template_rejects_bad_messages(engine: ScriptedEngine) -> None:
    with pytest.raises(InvalidRequestError, match="role 'robot'"):
        await engine.apply_prompt_template([{"role": "robot", "content": "x"}])
    with pytest.raises(InvalidRequestError, match="content"):
        await engine.apply_prompt_template([{"role": "user", "content": 3}])


async def test_custom_jinja_template(engine: ScriptedEngine) -> None:
    pytest.importorskip("jinja2")
    template = "{% for message in messages %}{{ message['content'] }}{% endfor %}"
    prompt = await engine.apply_prompt_template(
        [{"role": "user", "content": "raw text"}], template=template
    )
    assert prompt == "raw text"


def test_jinja_templates_are_sandboxed() -> None:
    pytest.importorskip("jinja2")
    messages = [{"role": "user", "content": "x"}]
    with pytest.raises(PromptTemplateError):
        render_chat_template("{{ ''.__class__.__mro__[1].__subclasses__() }}", messages)
    with pytest.raises(PromptTemplateError, match="no system role"):
        render_chat_template("{{ raise_exception('no system role') }}", messages)
    with pytest.raises(PromptTemplateError, match="does not compile"):
        render_chat_template("{% for %}", messages)


# --- generation -----------------------------------------------------------------------------


async def test_reply_is_streamed_with_stats(engine: ScriptedEngine) -> None:
    engine.script = Script(text="The sea is wide and deep.", prompt_progress_steps=2)
    prompt = await chat_prompt(engine, "Tell me about the sea")
    events = await run(engine, GenerationRequest(prompt=prompt))
    progress = [e for e in events if isinstance(e, PromptProgress)]
    prompt_tokens = await engine.count_tokens(prompt)
    assert [p.processed for p in progress] == [prompt_tokens // 2, prompt_tokens]
    assert events.index(progress[-1]) < events.index(pieces(events)[0])
    assert text_of(events) == "The sea is wide and deep."
    done = finished(events)
    assert done.stop_reason == "eosFound"
    assert done.prompt_tokens == prompt_tokens
    assert done.predicted_tokens == sum(p.tokens_count for p in pieces(events))
    assert done.predicted_tokens == await engine.count_tokens("The sea is wide and deep.")
    assert done.total_tokens == prompt_tokens + done.predicted_tokens
    assert done.time_to_first_token is not None
    assert done.total_time >= done.time_to_first_token


async def test_exact_fragments_and_grouping(engine: ScriptedEngine) -> None:
    engine.script = Script(fragments=("Hel", "lo", " wörld 🎉"))
    events = await run(engine, GenerationRequest(prompt="hi"))
    assert [p.text for p in pieces(events)] == ["Hel", "lo", " wörld 🎉"]
    engine.script = Script(text="one two three four five", tokens_per_fragment=2)
    events = await run(engine, GenerationRequest(prompt="hi"))
    assert [(p.text, p.tokens_count) for p in pieces(events)] == [
        ("one two", 2),
        (" three four", 2),
        (" five", 1),
    ]


async def test_echo_replies_with_the_last_user_message(engine: ScriptedEngine) -> None:
    engine.script = Script(echo=True, echo_prefix="You said: ")
    prompt = await engine.apply_prompt_template(
        [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "second message"},
        ]
    )
    assert text_of(await run(engine, GenerationRequest(prompt=prompt))) == (
        "You said: second message"
    )
    # A raw prompt (completion) is echoed whole.
    raw = await run(engine, GenerationRequest(prompt="complete this"))
    assert text_of(raw) == "You said: complete this"


async def test_reasoning_fragments_are_classified(engine: ScriptedEngine) -> None:
    engine.script = Script(reasoning="Let me think.", text="Answer.")
    events = await run(engine, GenerationRequest(prompt="q"))
    kinds = [(p.reasoning_type, p.is_structural) for p in pieces(events)]
    assert kinds[0] == ("reasoningStartTag", True)
    end = kinds.index(("reasoningEndTag", True))
    assert all(k == ("reasoning", False) for k in kinds[1:end])
    assert all(k == ("none", False) for k in kinds[end + 1 :])
    reasoning = "".join(p.text for p in pieces(events) if p.reasoning_type == "reasoning")
    answer = "".join(p.text for p in pieces(events) if p.reasoning_type == "none")
    assert (reasoning, answer) == ("Let me think.", "Answer.")
    assert text_of(events) == "<think>Let me think.</think>Answer."


async def test_reasoning_tags_follow_the_request(engine: ScriptedEngine) -> None:
    engine.script = Script(reasoning="hmm", text="ok")
    tags = ReasoningParsing(start_string="[[", end_string="]]")
    events = await run(engine, GenerationRequest(prompt="q", reasoning=tags))
    assert text_of(events) == "[[hmm]]ok"
    assert pieces(events)[0].reasoning_type == "reasoningStartTag"
    # Parsing off: the same text, all plain.
    events = await run(engine, GenerationRequest(prompt="q", reasoning=None))
    assert {p.reasoning_type for p in pieces(events)} == {"none"}


async def test_stop_string_across_fragments(engine: ScriptedEngine) -> None:
    engine.script = Script(text="Hello world, how are you?")
    events = await run(engine, GenerationRequest(prompt="q", stop_strings=["d, how"]))
    assert text_of(events) == "Hello worl"
    done = finished(events)
    assert (done.stop_reason, done.stop_string) == ("stopStringFound", "d, how")


async def test_held_back_text_is_released_when_no_stop_string_matches(
    engine: ScriptedEngine,
) -> None:
    engine.script = Script(fragments=("a", "b", "x", "y"))
    events = await run(engine, GenerationRequest(prompt="q", stop_strings=["xyz"]))
    # "x" and "y" could start "xyz": held, then released together at the end.
    assert [p.text for p in pieces(events)] == ["a", "b", "xy"]
    assert [p.tokens_count for p in pieces(events)] == [1, 1, 2]
    assert finished(events).stop_reason == "eosFound"


async def test_max_tokens(engine: ScriptedEngine) -> None:
    engine.script = Script(text="one two three four five")
    events = await run(engine, GenerationRequest(prompt="q", max_tokens=3))
    assert text_of(events) == "one two three"
    assert finished(events).stop_reason == "maxPredictedTokensReached"
    assert finished(events).predicted_tokens == 3
    events = await run(engine, GenerationRequest(prompt="q", max_tokens=0))
    assert pieces(events) == []
    assert finished(events).stop_reason == "maxPredictedTokensReached"


async def test_context_length_reached() -> None:
    async with ScriptedEngine(script=Script(text="a b c d e f g h i j")) as engine:
        await engine.aclose()
        await engine.load(8)
        events = await run(engine, GenerationRequest(prompt="x y z"))
        done = finished(events)
        assert done.stop_reason == "contextLengthReached"
        assert done.prompt_tokens + done.predicted_tokens == 8
        with pytest.raises(PromptTooLongError, match="8 tokens"):
            async with engine.generate(GenerationRequest(prompt="1 2 3 4 5 6 7 8")):
                pass


async def test_stop_takes_effect_before_the_next_token(engine: ScriptedEngine) -> None:
    engine.script = Script(text="one two three four five six")
    async with engine.generate(GenerationRequest(prompt="q")) as stream:
        seen: list[GenerationEvent] = []
        async for event in stream:
            seen.append(event)
            if isinstance(event, TokenPiece):
                stream.stop()
    assert [p.text for p in pieces(seen)] == ["one"]
    assert finished(seen).stop_reason == "userStopped"
    assert finished(seen).predicted_tokens == 1
    stream.stop()  # after the end: a no-op
    assert stream.finished == seen[-1]


async def test_leaving_the_block_early_ends_the_generation(engine: ScriptedEngine) -> None:
    engine.script = Script(fragments=("x",) * 1000)
    async with engine.generate(GenerationRequest(prompt="q")) as stream:
        async for event in stream:
            if isinstance(event, TokenPiece):
                break
    assert stream.finished is None
    with anyio.fail_after(5):
        events = await run(engine, GenerationRequest(prompt="q", max_tokens=2))
    assert text_of(events) == "xx"


async def test_unloading_stops_running_generations(engine: ScriptedEngine) -> None:
    engine.script = Script(fragments=("x",) * 100)
    async with engine.generate(GenerationRequest(prompt="q")) as stream:
        events = [await stream.__anext__() for _ in range(3)]
        await engine.aclose()
        events += [event async for event in stream]
    assert finished(events).stop_reason == "modelUnloaded"
    assert len(pieces(events)) <= 3


async def test_generations_run_concurrently(engine: ScriptedEngine) -> None:
    engine.script = Script(fragments=("a",) * 200)
    order: list[int] = []

    async def consume(tag: int) -> None:
        async with engine.generate(GenerationRequest(prompt="q")) as stream:
            async for event in stream:
                if isinstance(event, TokenPiece):
                    order.append(tag)
                    await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume, 1)
        tg.start_soon(consume, 2)
    assert order.count(1) == order.count(2) == 200
    first_of_two = order.index(2)
    assert 1 in order[first_of_two:]  # interleaved, not one after the other


async def test_twenty_thousand_fragments_do_not_starve_the_loop(engine: ScriptedEngine) -> None:
    engine.script = Script(fragments=("tok ",) * 20_000)
    await engine.aclose()
    await engine.load(32768)  # the default context (4096) would end the reply early
    other_task_ran_at: list[int] = []
    received = 0

    async def other() -> None:
        await anyio.lowlevel.checkpoint()
        other_task_ran_at.append(received)

    async with anyio.create_task_group() as tg:
        tg.start_soon(other)
        async with engine.generate(GenerationRequest(prompt="q")) as stream:
            async for event in stream:
                received += isinstance(event, TokenPiece)
    assert received == 20_000
    assert finished([event]).predicted_tokens == 20_000
    assert other_task_ran_at
    assert other_task_ran_at[0] < 20_000


# --- pacing and faults ----------------------------------------------------------------------


@AUTOJUMP
async def test_fragments_are_paced() -> None:
    script = Script(fragments=("a", "b", "c", "d", "e"), fragments_per_second=10)
    async with ScriptedEngine(script=script) as engine:
        start = anyio.current_time()
        times = []
        async with engine.generate(GenerationRequest(prompt="q")) as stream:
            async for event in stream:
                if isinstance(event, TokenPiece):
                    times.append(round(anyio.current_time() - start, 6))
    assert times == [0.0, 0.1, 0.2, 0.3, 0.4]


async def test_stop_cuts_a_long_pause_short() -> None:
    script = Script(fragments=("a", "b", "c"), fragments_per_second=0.001)  # 1000 s apart
    async with ScriptedEngine(script=script) as engine:
        with anyio.fail_after(10):
            async with engine.generate(GenerationRequest(prompt="q")) as stream:
                seen: list[GenerationEvent] = []
                async with anyio.create_task_group() as tg:
                    async for event in stream:
                        seen.append(event)
                        if isinstance(event, TokenPiece) and len(pieces(seen)) == 1:
                            # stop from another task while this one waits in the pause
                            tg.start_soon(_stop_soon, stream)
    assert finished(seen).stop_reason == "userStopped"
    assert len(pieces(seen)) <= 2


async def _stop_soon(stream: Any) -> None:
    await anyio.lowlevel.checkpoint()
    stream.stop()


@AUTOJUMP
async def test_delay_before_first_event() -> None:
    async with ScriptedEngine(faults=Faults(delay=30.0)) as engine:
        start = anyio.current_time()
        async with engine.generate(GenerationRequest(prompt="q")) as stream:
            await stream.__anext__()
            assert anyio.current_time() - start == pytest.approx(30.0)
            rest = [event async for event in stream]
        assert finished(rest).stop_reason == "eosFound"
        # Only generations are faulted by default.
        start = anyio.current_time()
        await engine.tokenize("x")
        assert anyio.current_time() == start


async def test_error_after_fragments() -> None:
    script = Script(text="one two three four")
    faults = Faults(error="GPU on fire", error_after_fragments=2)
    seen: list[GenerationEvent] = []

    async def consume(engine: ScriptedEngine) -> None:
        async with engine.generate(GenerationRequest(prompt="q")) as stream:
            async for event in stream:
                seen.append(event)

    async with ScriptedEngine(script=script, faults=faults) as engine:
        with pytest.raises(InjectedFaultError, match="GPU on fire") as info:
            await consume(engine)
        assert info.value.title == "GPU on fire"
        assert [p.text for p in pieces(seen)] == ["one", " two"]


async def test_error_in_a_short_reply_fires_at_the_end() -> None:
    faults = Faults(error="late", error_after_fragments=50)
    async with ScriptedEngine(script=Script(text="a b"), faults=faults) as engine:
        with pytest.raises(InjectedFaultError):
            await run(engine, GenerationRequest(prompt="q"))


async def test_wire_faults_are_events() -> None:
    faults = Faults(drop_socket_after_fragments=2, malformed_frame_after_fragments=0)
    async with ScriptedEngine(script=Script(text="a b c"), faults=faults) as engine:
        events = await run(engine, GenerationRequest(prompt="q"))
    shape = [
        e.kind if isinstance(e, FaultEvent) else e.text
        for e in events
        if isinstance(e, (FaultEvent, TokenPiece))
    ]
    assert shape == ["malformedFrame", "a", " b", "dropSocket", " c"]


@AUTOJUMP
async def test_never_answer_ignores_stop_but_not_cancellation() -> None:
    async with ScriptedEngine(faults=Faults(never_answer=True)) as engine:
        received: list[GenerationEvent] = []
        with anyio.move_on_after(3600) as scope:
            async with engine.generate(GenerationRequest(prompt="q")) as stream:
                stream.stop()
                received.extend([event async for event in stream])
        assert scope.cancelled_caught
        assert received == []


async def test_faults_on_other_operations() -> None:
    engine = ScriptedEngine(faults=Faults(operations={"tokenize", "load"}, error="boom"))
    with pytest.raises(InjectedFaultError, match="boom"):
        await engine.load()
    assert not engine.loaded
    engine.faults = Faults(operations={"tokenize"}, error="boom")
    await engine.load()
    with pytest.raises(InjectedFaultError):
        await engine.tokenize("x")
    assert await engine.count_tokens("x y") == 2  # not faulted
    engine.faults = Faults(operations={"count_tokens"}, drop_socket_after_fragments=0)
    with pytest.raises(InjectedWireFault) as info:
        await engine.count_tokens("x")
    assert info.value.kind == "dropSocket"
    engine.faults = Faults(operations={"apply_prompt_template"}, malformed_frame_after_fragments=0)
    with pytest.raises(InjectedWireFault) as info:
        await engine.apply_prompt_template([{"role": "user", "content": "x"}])
    assert info.value.kind == "malformedFrame"
    # generations are not in `operations`: unaffected
    events = await run(engine, GenerationRequest(prompt="q"))
    assert finished(events).stop_reason == "eosFound"


@AUTOJUMP
async def test_never_answering_rpc_can_be_cancelled() -> None:
    async with ScriptedEngine() as engine:
        engine.faults = Faults(operations={"tokenize"}, never_answer=True)
        with anyio.move_on_after(60) as scope:
            await engine.tokenize("x")
        assert scope.cancelled_caught


# --- tool calls -----------------------------------------------------------------------------


async def test_tool_calls_are_generated_when_tools_are_offered(engine: ScriptedEngine) -> None:
    engine.script = Script(
        text="It is sunny.",
        tool_calls=[
            ScriptedToolCall(name="get_weather", arguments={"city": "Paris"}),
            ScriptedToolCall(name="get_weather", arguments={"city": "Oslo"}, call_id="abc"),
        ],
    )
    prompt = await chat_prompt(engine, "Weather?", tools=[WEATHER_TOOL])
    events = await run(engine, GenerationRequest(prompt=prompt, tools=[WEATHER_TOOL]))
    tool_events = [e for e in events if not isinstance(e, (PromptProgress, Finished))]
    assert isinstance(tool_events[0], ToolCallStart)
    assert tool_events[0].call_id == "call-0"
    assert tool_events[1] == ToolCallName("get_weather")
    ends = [e for e in events if isinstance(e, ToolCallEnd)]
    assert [(e.name, dict(e.arguments), e.call_id) for e in ends] == [
        ("get_weather", {"city": "Paris"}, "call-0"),
        ("get_weather", {"city": "Oslo"}, "abc"),
    ]
    first_args = "".join(
        e.text for e in events[: events.index(ends[0])] if isinstance(e, ToolCallArgumentFragment)
    )
    assert json.loads(first_args) == {"city": "Paris"}
    assert json.loads(ends[0].raw_content or "") == {
        "name": "get_weather",
        "arguments": {"city": "Paris"},
    }
    assert text_of(events) == ""
    assert finished(events).stop_reason == "toolCalls"
    _assert_tool_calls_pair_up(events)


async def test_after_a_tool_result_the_model_answers(engine: ScriptedEngine) -> None:
    engine.script = Script(text="It is sunny.", tool_calls=[ScriptedToolCall(name="get_weather")])
    prompt = await engine.apply_prompt_template(
        [
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "call-0",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": {}},
                    }
                ],
            },
            {"role": "tool", "content": '"sunny"', "tool_call_id": "call-0"},
        ],
        tools=[WEATHER_TOOL],
    )
    events = await run(engine, GenerationRequest(prompt=prompt, tools=[WEATHER_TOOL]))
    assert text_of(events) == "It is sunny."
    assert finished(events).stop_reason == "eosFound"
    # Without tools in the request there is no tool call either.
    events = await run(engine, GenerationRequest(prompt=await chat_prompt(engine, "Weather?")))
    assert not [e for e in events if isinstance(e, ToolCallStart)]


async def test_tool_call_without_id_and_malformed_call(engine: ScriptedEngine) -> None:
    engine.script = Script(
        tool_calls=[
            ScriptedToolCall(name="a", omit_id=True),
            ScriptedToolCall(name="b", arguments={"x": 1}, malformed=True),
        ],
        reasoning="plan",
    )
    events = await run(engine, GenerationRequest(prompt="q", tools=[WEATHER_TOOL]))
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    assert starts[0].call_id is None
    failed = [e for e in events if isinstance(e, ToolCallFailed)]
    assert len(failed) == 1
    assert failed[0].raw_content
    with pytest.raises(json.JSONDecodeError):
        json.loads(failed[0].raw_content or "")
    assert text_of(events) == "<think>plan</think>"  # reasoning still comes first
    _assert_tool_calls_pair_up(events)


async def test_stopping_during_a_tool_call_closes_it_first(engine: ScriptedEngine) -> None:
    engine.script = Script(
        tool_calls=[ScriptedToolCall(name="a", arguments={"x": "y z"}), ScriptedToolCall(name="b")]
    )
    async with engine.generate(GenerationRequest(prompt="q", tools=[WEATHER_TOOL])) as stream:
        events = []
        async for event in stream:
            events.append(event)
            if isinstance(event, ToolCallStart):
                stream.stop()
    assert finished(events).stop_reason == "userStopped"
    assert [type(e) for e in events if isinstance(e, (ToolCallStart, ToolCallEnd))] == [
        ToolCallStart,
        ToolCallEnd,
    ]
    _assert_tool_calls_pair_up(events)


def _assert_tool_calls_pair_up(events: Sequence[GenerationEvent]) -> None:
    open_calls = 0
    for event in events:
        if isinstance(event, ToolCallStart):
            assert open_calls == 0
            open_calls += 1
        elif isinstance(event, (ToolCallEnd, ToolCallFailed)):
            assert open_calls == 1
            open_calls -= 1
    assert open_calls == 0


# --- structured output ----------------------------------------------------------------------

PERSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 10},
        "age": {"type": "integer", "minimum": 18},
        "height": {"type": "number"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "role": {"enum": ["admin", "user"]},
        "address": {"$ref": "#/$defs/address"},
        "nickname": {"type": ["null", "string"], "maxLength": 3},
        "score": {"type": "number", "maximum": -2.5},
        "active": {"type": "boolean"},
    },
    "required": ["name", "age", "tags", "role", "address"],
    "$defs": {
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"const": "0150"}},
            "required": ["city", "zip"],
        }
    },
}


async def test_structured_output_follows_the_schema(engine: ScriptedEngine) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    engine.script = Script(text="ignored", reasoning="ignored too")
    events = await run(engine, GenerationRequest(prompt="q", json_schema=PERSON_SCHEMA))
    document = json.loads(text_of(events))
    jsonschema.validate(document, PERSON_SCHEMA)
    assert len(pieces(events)) > 5  # streamed, not one blob
    assert finished(events).stop_reason == "eosFound"


def test_unsupported_schema_is_a_clear_error() -> None:
    with pytest.raises(InvalidRequestError, match="'frobnicate'"):
        example_for_schema({"type": "frobnicate"})
    with pytest.raises(InvalidRequestError, match=r"\$ref"):
        example_for_schema({"$ref": "https://example.com/schema"})


async def test_grammar_is_refused(engine: ScriptedEngine) -> None:
    with pytest.raises(InvalidRequestError, match="GBNF"):
        async with engine.generate(GenerationRequest(prompt="q", gbnf_grammar='root ::= "a"')):
            pass


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperature": -1}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"max_tokens": -1}, "max_tokens"),
        ({"stop_strings": [""]}, "stop_strings"),
        ({"json_schema": {"type": "object"}, "gbnf_grammar": "x"}, "not both"),
        ({"json_schema": "object"}, "json_schema"),
    ],
)
def test_bad_requests_are_rejected(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        GenerationRequest(prompt="q", **kwargs)


def test_bad_script_and_faults_are_rejected() -> None:
    with pytest.raises(InvalidRequestError, match="start_string"):
        ReasoningParsing(start_string="")
    with pytest.raises(InvalidRequestError, match="fragments_per_second"):
        Script(fragments_per_second=-1)
    with pytest.raises(InvalidRequestError, match="tokens_per_fragment"):
        Script(tokens_per_fragment=0)
    with pytest.raises(InvalidRequestError, match="delay"):
        Faults(delay=-0.5)


def test_download_steps() -> None:
    steps = Script(
        download_total_bytes=1000, download_progress_steps=4, download_step_seconds=0.5
    ).download_steps()
    assert [s.downloaded_bytes for s in steps] == [250, 500, 750, 1000]
    assert {s.total_bytes for s in steps} == {1000}
    assert steps[0].speed_bytes_per_second == 500.0


# --- the stream assembler (shared with the llama engine) ------------------------------------


def test_assembler_splits_tags_that_arrive_in_pieces() -> None:
    assembler = StreamAssembler(reasoning=ReasoningParsing())
    out = []
    for chunk in ["a<th", "ink>b", "c</", "think", ">d"]:
        released, stop = assembler.feed(chunk)
        assert stop is None
        out += released
    out += assembler.flush()
    assert [(p.text, p.reasoning_type) for p in out] == [
        ("a", "none"),
        ("<think>", "reasoningStartTag"),
        ("b", "reasoning"),
        ("c", "reasoning"),
        ("</think>", "reasoningEndTag"),
        ("d", "none"),
    ]
    assert sum(p.tokens_count for p in out) == 5


def test_assembler_prefers_the_earliest_stop_string() -> None:
    assembler = StreamAssembler(stop_strings=["world", "lo w"])
    released, stop = assembler.feed("hello world")
    assert ("".join(p.text for p in released), stop) == ("hel", "lo w")


# --- embeddings -----------------------------------------------------------------------------


async def test_scripted_embeddings() -> None:
    async with ScriptedEmbeddingEngine(dimensions=64) as engine:
        assert engine.dimensions == 64
        assert engine.context_length == 512
        a = await engine.embed("the cat sat on the mat")
        assert a == await engine.embed("the cat sat on the mat")
        assert len(a) == 64
        assert sum(v * v for v in a) == pytest.approx(1.0)
        near = await engine.embed("a cat sat on a mat")
        far = await engine.embed("quarterly tax forms")

        def dot(x: list[float], y: list[float]) -> float:
            return sum(i * j for i, j in zip(x, y, strict=False))

        assert dot(a, near) > dot(a, far)
        assert await engine.count_tokens("the cat") == 2
        engine.faults = Faults(operations={"embed"}, error="no")
        with pytest.raises(InjectedFaultError):
            await engine.embed("x")


def test_create_engine_picks_the_scripted_engines() -> None:
    llm = create_engine(scripted_llm_facts(), script=Script(text="x"))
    assert isinstance(llm, ScriptedEngine)
    assert llm.script.text == "x"
    assert isinstance(create_engine(scripted_embedding_facts()), ScriptedEmbeddingEngine)
