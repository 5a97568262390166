"""Tool calls and the settings added for LM Studio fidelity, on the real SmolLM2 (``model``).

SmolLM2 has no native tool-call tokens: the engine gives it a tool-use prompt and a grammar
admitting text or one ``<tool_call>`` (see ``engines/_llama_tools.py``). Greedy requests keep
the runs repeatable.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_engine_llama import _require_model, finished, run, smollm, text_of

from lmstudio_sdk.server.engines import (
    GenerationEvent,
    GenerationRequest,
    PromptTooLongError,
    TokenPiece,
)
from lmstudio_sdk.server.engines._llama_tools import (
    TOOL_CALL_START,
    ToolCallSplitter,
    tool_use_messages,
)
from lmstudio_sdk.server.engines.events import (
    ToolCallEnd,
    ToolCallFailed,
    ToolCallName,
    ToolCallStart,
)
from lmstudio_sdk.server.engines.llama import LlamaEngine

__all__ = ["smollm"]

ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}
ASK = [{"role": "user", "content": "Use the add tool to add 2 and 3."}]


def test_tool_prompt_lists_the_tools_and_writes_earlier_calls_as_text() -> None:
    messages = tool_use_messages(
        [
            {"role": "system", "content": "Be brief."},
            *ASK,
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "1",
                        "type": "function",
                        "function": {"name": "add", "arguments": {"a": 2, "b": 3}},
                    }
                ],
            },
            {"role": "tool", "content": "5", "tool_call_id": "1", "name": "add"},
        ],
        [ADD],
    )
    assert messages[0]["role"] == "system"
    assert messages[0]["content"].startswith("Be brief.")
    assert '"name": "add"' in messages[0]["content"]
    assert (
        messages[2]["content"]
        == TOOL_CALL_START + '\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n</tool_call>'
    )
    assert "tool_calls" not in messages[2]
    assert messages[3] == {"role": "tool", "content": "5"}


def _pieces(*texts: str) -> list[TokenPiece]:
    return [TokenPiece(text) for text in texts]


def test_splitter_turns_a_call_into_events_and_text_into_text() -> None:
    splitter = ToolCallSplitter()
    events = splitter.feed(
        _pieces("<tool", '_call>\n{"name": "add", "arg', 'uments": {"a": 1, "b": 2}}')
    )
    events += splitter.feed(_pieces("\n</tool_call>"))
    events += splitter.finish()
    assert isinstance(events[0], ToolCallStart)
    assert [e.name for e in events if isinstance(e, ToolCallName)] == ["add"]
    assert events[-1] == ToolCallEnd(
        "add",
        {"a": 1, "b": 2},
        raw_content='<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>',
    )
    assert splitter.called

    text = ToolCallSplitter()
    assert text.feed(_pieces("Hello", " <b>")) == _pieces("Hello", " <b>")
    assert text.finish() == []
    assert not text.called

    broken = ToolCallSplitter()
    broken.feed(_pieces('<tool_call>{"name": "add", "argu'))
    (failed,) = broken.finish()[-1:]
    assert isinstance(failed, ToolCallFailed)
    assert not broken.called


async def _call(
    engine: LlamaEngine, messages: list[dict[str, Any]], **settings: Any
) -> list[GenerationEvent]:
    prompt = await engine.apply_prompt_template(messages, tools=[ADD])
    request = GenerationRequest(
        prompt=prompt, messages=messages, tools=[ADD], temperature=0, max_tokens=60, **settings
    )
    return await run(engine, request)


@pytest.mark.model
@pytest.mark.parametrize("choice", ["auto", "required"])
async def test_smollm2_calls_the_tool_with_parseable_arguments(
    smollm: LlamaEngine, choice: str
) -> None:
    events = await _call(smollm, ASK, tool_choice=choice)
    calls = [e for e in events if isinstance(e, ToolCallEnd)]
    assert len(calls) == 1, events
    assert calls[0].name == "add"
    assert set(calls[0].arguments) == {"a", "b"}
    assert all(isinstance(v, int) for v in calls[0].arguments.values())
    assert json.loads(calls[0].raw_content.split("\n")[1]) == {
        "name": "add",
        "arguments": dict(calls[0].arguments),
    }
    assert finished(events).stop_reason == "toolCalls"
    assert text_of(events) == ""


@pytest.mark.model
async def test_after_the_tool_result_the_model_answers_in_text(smollm: LlamaEngine) -> None:
    messages = [
        *ASK,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "1",
                    "type": "function",
                    "function": {"name": "add", "arguments": {"a": 2, "b": 3}},
                }
            ],
        },
        {"role": "tool", "content": "5", "tool_call_id": "1", "name": "add"},
    ]
    events = await _call(smollm, messages)
    assert text_of(events).strip()
    assert not any(isinstance(e, (ToolCallStart, ToolCallEnd)) for e in events)
    assert finished(events).stop_reason in ("eosFound", "maxPredictedTokensReached")


@pytest.mark.model
async def test_presence_penalty_changes_the_greedy_reply(smollm: LlamaEngine) -> None:
    prompt = await smollm.apply_prompt_template(
        [{"role": "user", "content": "Write the word cat ten times."}]
    )
    plain = text_of(
        await run(smollm, GenerationRequest(prompt=prompt, temperature=0, max_tokens=24))
    )
    penalised = text_of(
        await run(
            smollm,
            GenerationRequest(prompt=prompt, temperature=0, max_tokens=24, presence_penalty=2.0),
        )
    )
    assert plain != penalised
    assert penalised.lower().count("cat") < plain.lower().count("cat")


@pytest.mark.model
async def test_context_overflow_policies() -> None:
    _require_model()
    async with LlamaEngine() as engine:
        await engine.aclose()
        await engine.load(256)
        n_ctx = engine.context_length
        too_long = " ".join(str(i) for i in range(1, 400))
        with pytest.raises(PromptTooLongError):
            async with engine.generate(
                GenerationRequest(prompt=too_long, context_overflow="stopAtLimit")
            ):
                pass
        for policy in ("rollingWindow", "truncateMiddle"):
            events = await run(
                engine,
                GenerationRequest(
                    prompt=too_long, temperature=0, max_tokens=8, context_overflow=policy
                ),
            )
            done = finished(events)
            assert done.prompt_tokens < n_ctx, policy
            assert done.predicted_tokens == 8, policy
        # A reply that outgrows the context goes on past it (the context shifts).
        counting = " ".join(str(i) for i in range(1, 200))
        while await engine.count_tokens(counting) > n_ctx - 4:
            counting = counting[: counting.rindex(" ")]
        for policy in ("rollingWindow", "truncateMiddle"):
            events = await run(
                engine,
                GenerationRequest(
                    prompt=counting, temperature=0, max_tokens=40, context_overflow=policy
                ),
            )
            done = finished(events)
            assert done.stop_reason != "contextLengthReached", policy
            assert done.prompt_tokens + done.predicted_tokens > n_ctx, policy
