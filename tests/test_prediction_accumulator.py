"""PredictionAccumulator on scripted packet sequences, decoded from JSON as they arrive."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from lmstudio_sdk._prediction import PredictionAccumulator
from lmstudio_sdk._structured import response_format
from lmstudio_sdk.errors import RemoteProtocolError, StructuredOutputError
from lmstudio_sdk.protocol.codec import structure
from lmstudio_sdk.protocol.endpoints.llm import (
    CompleteRawTextToClientPacket,
    PredictToClientPacket,
)
from lmstudio_sdk.results import (
    PredictionFragment,
    PromptProcessingProgress,
    ToolCallArgumentsFragment,
    ToolCallGenerated,
    ToolCallGenerationFailed,
    ToolCallGenerationStarted,
    ToolCallNameReceived,
    ToolCallRequest,
)

MODEL_INFO = {
    "type": "llm",
    "modelKey": "qwen2.5-0.5b-instruct",
    "format": "gguf",
    "displayName": "Qwen2.5 0.5B Instruct",
    "publisher": "lmstudio-community",
    "path": "lmstudio-community/Qwen2.5-0.5B-Instruct-GGUF/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf",
    "sizeBytes": 397807936,
    "indexedModelIdentifier": "lmstudio-community/Qwen2.5-0.5B-Instruct-GGUF/x.gguf",
    "deviceIdentifier": None,
    "paramsString": "0.5B",
    "architecture": "qwen2",
    "quantization": {"name": "Q4_K_M", "bits": 4},
    "identifier": "qwen2.5-0.5b-instruct",
    "instanceReference": "ref-1",
    "ttlMs": 3600000,
    "lastUsedTime": None,
    "vision": False,
    "trainedForToolUse": True,
    "maxContextLength": 32768,
    "contextLength": 4096,
}


def fragment(content: str, reasoning: str = "none", structural: bool = False) -> dict[str, Any]:
    return {
        "type": "fragment",
        "fragment": {
            "content": content,
            "tokensCount": 1,
            "containsDrafted": False,
            "reasoningType": reasoning,
            "isStructural": structural,
        },
    }


def success(stop_reason: str = "eosFound", **stats: Any) -> dict[str, Any]:
    return {
        "type": "success",
        "stats": {"stopReason": stop_reason, **stats},
        "modelInfo": MODEL_INFO,
        "loadModelConfig": {"fields": [{"key": "llm.load.contextLength", "value": 4096}]},
        "predictionConfig": {
            "fields": [
                {"key": "llm.prediction.temperature", "value": 0.2},
                {
                    "key": "llm.prediction.maxPredictedTokens",
                    "value": {"checked": True, "value": 64},
                },
            ]
        },
    }


def feed_all(acc: PredictionAccumulator, packets: list[dict[str, Any]]) -> list[Any]:
    events = []
    for raw in packets:
        event = acc.feed(structure(raw, PredictToClientPacket))
        if event is not None:
            events.append(event)
    return events


PROGRESS_DETAILS = {
    "cachedTokenCount": 2,
    "totalPromptTokenCount": 9,
    "processedPromptTokenCount": 9,
    "unprocessedPromptTokenCount": 0,
}

REASONING_AND_TOOLS = [
    {"type": "promptProcessingProgress", "progress": 0.5, "details": PROGRESS_DETAILS},
    {"type": "promptProcessingProgress", "progress": 1, "details": PROGRESS_DETAILS},
    fragment("<think>", "reasoningStartTag", structural=True),
    fragment("Add them", "reasoning"),
    fragment(".", "reasoning"),
    fragment("</think>", "reasoningEndTag", structural=True),
    fragment("Let me "),
    fragment("add."),
    # Markup around a tool call: structural, so part of content but not of the answer.
    fragment("<tool_call>", structural=True),
    {"type": "toolCallGenerationStart", "toolCallId": "call_1"},
    {"type": "toolCallGenerationNameReceived", "name": "add"},
    {"type": "toolCallGenerationArgumentFragmentGenerated", "content": '{"a":123,'},
    {"type": "toolCallGenerationArgumentFragmentGenerated", "content": '"b":3210}'},
    {
        "type": "toolCallGenerationEnd",
        "toolCallRequest": {
            "type": "function",
            "id": "call_1",
            "name": "add",
            "arguments": {"a": 123, "b": 3210},
        },
        "rawContent": '<tool_call>{"name":"add"}</tool_call>',
    },
    {"type": "toolCallGenerationStart"},
    {
        "type": "toolCallGenerationFailed",
        "error": {"title": "Failed to parse tool call", "cause": "bad JSON"},
        "rawContent": "<tool_call>{",
    },
    {"type": "toolCallGenerationStart"},
    # No id, no arguments: a model without call ids (PROTOCOL.md 12, item 21).
    {"type": "toolCallGenerationEnd", "toolCallRequest": {"type": "function", "name": "now"}},
    success(
        "toolCalls",
        tokensPerSecond=42.5,
        timeToFirstTokenSec=0.1,
        promptTokensCount=9,
        predictedTokensCount=12,
        totalTokensCount=21,
    ),
]


def test_events_in_order() -> None:
    acc = PredictionAccumulator()
    events = feed_all(acc, REASONING_AND_TOOLS)
    assert events[:2] == [
        PromptProcessingProgress(
            progress=0.5,
            cached_token_count=2,
            total_prompt_token_count=9,
            processed_prompt_token_count=9,
            unprocessed_prompt_token_count=0,
        ),
        PromptProcessingProgress(
            progress=1,
            cached_token_count=2,
            total_prompt_token_count=9,
            processed_prompt_token_count=9,
            unprocessed_prompt_token_count=0,
        ),
    ]
    assert events[2:9] == [
        PredictionFragment("<think>", 1, "reasoningStartTag", False, True),
        PredictionFragment("Add them", 1, "reasoning"),
        PredictionFragment(".", 1, "reasoning"),
        PredictionFragment("</think>", 1, "reasoningEndTag", False, True),
        PredictionFragment("Let me ", 1, "none"),
        PredictionFragment("add.", 1, "none"),
        PredictionFragment("<tool_call>", 1, "none", False, True),
    ]
    add = ToolCallRequest("add", {"a": 123, "b": 3210}, "call_1")
    assert events[9:14] == [
        ToolCallGenerationStarted("call_1"),
        ToolCallNameReceived("add"),
        ToolCallArgumentsFragment('{"a":123,'),
        ToolCallArgumentsFragment('"b":3210}'),
        ToolCallGenerated(add, '<tool_call>{"name":"add"}</tool_call>'),
    ]
    assert events[14] == ToolCallGenerationStarted(None)
    failed = events[15]
    assert isinstance(failed, ToolCallGenerationFailed)
    assert failed.error.title == "Failed to parse tool call"
    assert failed.error.cause == "bad JSON"
    assert failed.raw_content == "<tool_call>{"
    assert "bad JSON" in failed.message
    assert events[16:] == [
        ToolCallGenerationStarted(None),
        ToolCallGenerated(ToolCallRequest("now", {}, None)),
    ]


def test_result_after_success() -> None:
    acc = PredictionAccumulator()
    feed_all(acc, REASONING_AND_TOOLS)
    result = acc.finish()
    assert result.content == "<think>Add them.</think>Let me add.<tool_call>"
    assert result.reasoning_content == "Add them."
    assert result.non_reasoning_content == "Let me add."
    assert str(result) == result.content
    assert result.stop_reason == "toolCalls"
    assert result.stats.tokens_per_second == 42.5
    assert result.stats.total_tokens_count == 21
    assert result.stats.stop_string is None
    assert result.parsed is None
    assert result.tool_call_requests == (
        ToolCallRequest("add", {"a": 123, "b": 3210}, "call_1"),
        ToolCallRequest("now", {}, None),
    )
    info = result.model_info
    assert (info.identifier, info.context_length, info.ttl_ms) == (
        "qwen2.5-0.5b-instruct",
        4096,
        3600000,
    )
    assert info.quantization is not None
    assert info.quantization.name == "Q4_K_M"
    assert info.device_identifier is None
    assert info.trained_for_tool_use is True
    assert result.load_config.context_length == 4096
    assert result.prediction_config.temperature == 0.2
    assert result.prediction_config.max_tokens == 64
    assert acc.result is result


def test_partial_result_before_success() -> None:
    acc = PredictionAccumulator()
    feed_all(acc, REASONING_AND_TOOLS[:7])
    assert acc.content == "<think>Add them.</think>Let me "
    assert acc.reasoning_content == "Add them."
    assert acc.non_reasoning_content == "Let me "
    assert not acc.finished
    assert acc.result is None
    # Reading the partial text does not disturb what follows.
    feed_all(acc, REASONING_AND_TOOLS[7:14])
    assert acc.non_reasoning_content == "Let me add."
    assert acc.tool_call_requests == (ToolCallRequest("add", {"a": 123, "b": 3210}, "call_1"),)
    with pytest.raises(RemoteProtocolError, match="without a success packet"):
        acc.finish()


@pytest.mark.parametrize("stop_reason", ["userStopped", "eosFound", "maxPredictedTokensReached"])
def test_stop_reason_is_what_the_server_sent(stop_reason: str) -> None:
    acc = PredictionAccumulator()
    feed_all(acc, [fragment("Hel"), fragment("lo"), success(stop_reason)])
    assert acc.finish().stop_reason == stop_reason
    assert acc.finish().content == "Hello"


def test_fragments_after_a_cancel_are_kept() -> None:
    # The server may still send fragments that were in flight when the client cancelled.
    acc = PredictionAccumulator()
    feed_all(acc, [fragment("a"), fragment("b"), success("userStopped")])
    assert acc.finish().content == "ab"


def test_unknown_packets_are_ignored() -> None:
    acc = PredictionAccumulator()
    events = feed_all(acc, [{"type": "somethingNew", "x": 1}, fragment("hi"), success()])
    assert events == [PredictionFragment("hi", 1)]
    assert acc.finish().content == "hi"


def test_a_packet_after_success_is_a_protocol_error() -> None:
    acc = PredictionAccumulator()
    feed_all(acc, [fragment("hi"), success()])
    with pytest.raises(RemoteProtocolError, match="after the prediction's success"):
        feed_all(acc, [fragment("late")])


def test_old_servers_without_is_structural_or_details() -> None:
    old_fragment = {
        "type": "fragment",
        "fragment": {
            "content": "x",
            "tokensCount": 1,
            "containsDrafted": True,
            "reasoningType": "none",
        },
    }
    acc = PredictionAccumulator()
    events = feed_all(
        acc, [{"type": "promptProcessingProgress", "progress": 1}, old_fragment, success()]
    )
    assert events == [
        PromptProcessingProgress(progress=1),
        PredictionFragment("x", 1, "none", contains_drafted=True, is_structural=False),
    ]
    assert acc.finish().non_reasoning_content == "x"


def test_log_prob_tokens_are_reported() -> None:
    packet = fragment("Hi")
    packet["fragment"]["tokens"] = [
        {
            "text": "Hi",
            "id": 5,
            "logProb": -0.1,
            "candidates": [{"text": "Hey", "id": 6, "logProb": -2.0}],
        }
    ]
    acc = PredictionAccumulator()
    (event,) = feed_all(acc, [packet])
    assert isinstance(event, PredictionFragment)
    assert event.tokens[0].log_prob == -0.1
    assert event.tokens[0].candidates[0].text == "Hey"


@dataclasses.dataclass
class Sum:
    total: int


def test_structured_reply_is_parsed_from_the_answer_only() -> None:
    _, parser = response_format(Sum)
    acc = PredictionAccumulator(parser=parser)
    feed_all(
        acc,
        [
            fragment("<think>", "reasoningStartTag", structural=True),
            fragment("3+4=7 {not json}", "reasoning"),
            fragment("</think>", "reasoningEndTag", structural=True),
            fragment('{"tot'),
            fragment('al": 7}'),
            success(),
        ],
    )
    assert acc.finish().parsed == Sum(7)


def test_structured_reply_that_does_not_validate() -> None:
    _, parser = response_format(Sum)
    acc = PredictionAccumulator(parser=parser)
    feed_all(acc, [fragment('{"total": "seven"}'), success()])
    # The result (stats and all) is there, but finish() reports the failure.
    assert acc.result is not None
    assert acc.result.parsed is None
    assert acc.parse_error is not None
    with pytest.raises(StructuredOutputError, match=r"\$\.total") as info:
        acc.finish()
    assert info.value.raw_text == '{"total": "seven"}'


def test_complete_raw_text_packets() -> None:
    acc = PredictionAccumulator()
    for raw in [fragment("Once upon"), fragment(" a time"), success("maxPredictedTokensReached")]:
        acc.feed(structure(raw, CompleteRawTextToClientPacket))
    result = acc.finish()
    assert (result.content, result.stop_reason) == ("Once upon a time", "maxPredictedTokensReached")
