"""Predictions: streaming, cancel, configs, tools, reasoning, completions, templates, tokens."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from _server_helpers import (
    ECHO,
    LLM,
    REASONING,
    SLOW,
    SLOW_FRAGMENTS,
    TOOLS,
    TestClient,
    chat,
    connect,
    get_or_load,
    kv,
    new_identity,
    query,
    stack,
)

from lmstudio_sdk.protocol.endpoints import diagnostics, files, llm
from lmstudio_sdk.protocol.endpoints.diagnostics import (
    LLMPredictionInputLog,
    LLMPredictionOutputLog,
)
from lmstudio_sdk.protocol.endpoints.files import UploadFileBase64Parameter
from lmstudio_sdk.protocol.endpoints.llm import (
    ApplyPromptTemplateParameter,
    CompleteRawTextCreationParameter,
    PredictCreationParameter,
    PredictFragment,
    PredictPromptProcessingProgress,
    PredictSuccess,
)
from lmstudio_sdk.protocol.endpoints.shared import (
    ChatHistoryData,
    CountTokensParameter,
    FilePart,
    GetInstanceProcessingStateParameter,
    ModelSpecifierInstanceReference,
    SystemMessage,
    TextPart,
    TokenizeParameter,
    UserMessage,
)
from lmstudio_sdk.protocol.events import ChannelClosed, ChannelFailed
from lmstudio_sdk.protocol.kv import KVConfig, KVConfigField, KVConfigLayer, KVConfigStack
from lmstudio_sdk.server import BackgroundServer

PYTHON_COMPLETE_TEMPLATE = {
    "type": "jinja",
    "jinjaPromptTemplate": {
        "bosToken": "",
        "eosToken": "",
        "template": "{% for message in messages %}{{ message['content'] }}{% endfor %}",
        "inputConfig": {"messagesConfig": {"contentConfig": {"type": "string"}}, "useTools": False},
    },
    "stopStrings": [],
}


async def predict(
    client: TestClient,
    model: str,
    text: str = "Hi",
    config: dict[str, Any] | None = None,
    *,
    history: ChatHistoryData | None = None,
    config_stack: KVConfigStack | None = None,
) -> tuple[list[Any], ChannelClosed | ChannelFailed]:
    channel = await client.open(
        llm.PREDICT,
        PredictCreationParameter(
            model_specifier=query(model),
            history=history or chat(text),
            prediction_config_stack=config_stack or stack(config),
        ),
    )
    return await client.until_end(channel)


def text_of(packets: list[Any]) -> str:
    return "".join(p.fragment.content for p in packets if isinstance(p, PredictFragment))


async def test_prediction_streams_progress_fragments_then_success(server: BackgroundServer) -> None:
    async with connect(server, "llm") as client:
        loaded = await get_or_load(client, LLM)
        packets, end = await predict(client, LLM, config={"llm.prediction.temperature": 0.2})
    assert isinstance(end, ChannelClosed)
    assert isinstance(packets[0], PredictPromptProcessingProgress)
    assert packets[0].details is not None
    fragments = [p for p in packets if isinstance(p, PredictFragment)]
    assert text_of(packets) == "Hello! I am the scripted model."
    assert all(f.fragment.is_structural is False for f in fragments)
    assert all(type(f.fragment.tokens_count) is int for f in fragments)
    success = packets[-1]
    assert isinstance(success, PredictSuccess)
    assert all(not isinstance(p, PredictSuccess) for p in packets[:-1])
    stats = success.stats
    assert stats.stop_reason == "eosFound"
    assert stats.predicted_tokens_count == sum(f.fragment.tokens_count for f in fragments)
    assert stats.total_tokens_count == stats.prompt_tokens_count + stats.predicted_tokens_count
    assert stats.tokens_per_second is not None
    assert stats.time_to_first_token_sec is not None
    assert success.model_info.instance_reference == loaded.instance_reference
    assert kv(success.load_model_config) == {"llm.load.contextLength": loaded.context_length}
    used = kv(success.prediction_config)
    assert used["llm.prediction.temperature"] == 0.2
    assert used["llm.prediction.maxPredictedTokens"] == {"checked": False, "value": 1000}
    # The raw frames: success, then the close, nothing after.
    tail = [json.loads(f) for f in client.frames[-2:]]
    assert tail[0]["message"]["type"] == "success"
    assert set(tail[0]["message"]) == {
        "type",
        "stats",
        "modelInfo",
        "loadModelConfig",
        "predictionConfig",
    }
    assert tail[1] == {"type": "channelClose", "channelId": tail[0]["channelId"]}


async def test_max_tokens_and_stop_strings_are_honoured(server: BackgroundServer) -> None:
    async with connect(server, "llm") as client:
        await get_or_load(client, LLM)
        packets, _ = await predict(
            client, LLM, config={"llm.prediction.maxPredictedTokens": {"checked": True, "value": 3}}
        )
        assert packets[-1].stats.stop_reason == "maxPredictedTokensReached"
        assert packets[-1].stats.predicted_tokens_count == 3
        assert text_of(packets) == "Hello! I"

        packets, _ = await predict(client, LLM, config={"llm.prediction.stopStrings": [" am"]})
        assert packets[-1].stats.stop_reason == "stopStringFound"
        assert packets[-1].stats.stop_string == " am"
        assert text_of(packets) == "Hello! I"


async def test_cancel_ends_with_user_stopped_then_close(server: BackgroundServer) -> None:
    async with connect(server, "llm") as client:
        await get_or_load(client, SLOW)
        channel = await client.open(
            llm.PREDICT,
            PredictCreationParameter(
                model_specifier=query(SLOW), history=chat("Go"), prediction_config_stack=stack()
            ),
        )
        seen = 0
        while seen < 3:
            if isinstance(await client.next_on(channel), PredictFragment):
                seen += 1
        await client.cancel(channel)
        packets, end = await client.until_end(channel)
    assert isinstance(end, ChannelClosed)
    success = packets[-1]
    assert isinstance(success, PredictSuccess)
    assert success.stats.stop_reason == "userStopped"
    assert success.stats.predicted_tokens_count < SLOW_FRAGMENTS
    assert success.stats.tokens_per_second is not None


async def test_reasoning_fragments_are_structural_tags_around_reasoning(
    server: BackgroundServer,
) -> None:
    async with connect(server, "llm") as client:
        await get_or_load(client, REASONING)
        packets, _ = await predict(client, REASONING)
    fragments = [p.fragment for p in packets if isinstance(p, PredictFragment)]
    tags = [(f.content, f.reasoning_type) for f in fragments if f.is_structural]
    assert tags == [("<think>", "reasoningStartTag"), ("</think>", "reasoningEndTag")]
    reasoning = "".join(f.content for f in fragments if f.reasoning_type == "reasoning")
    answer = "".join(f.content for f in fragments if f.reasoning_type == "none")
    assert reasoning.strip() == "2 plus 2"
    assert answer == "The answer is 4."


async def test_tool_calls_stream_as_tool_events(server: BackgroundServer) -> None:
    tools = {
        "type": "toolArray",
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "add",
                    "parameters": {"type": "object", "properties": {"a": {}, "b": {}}},
                },
            }
        ],
    }
    async with connect(server, "llm") as client:
        await get_or_load(client, TOOLS)
        packets, end = await predict(client, TOOLS, "1+2?", {"llm.prediction.tools": tools})
        assert isinstance(end, ChannelClosed)
        kinds = [p.type for p in packets]
        start = kinds.index("toolCallGenerationStart")
        assert kinds[start + 1] == "toolCallGenerationNameReceived"
        assert "toolCallGenerationArgumentFragmentGenerated" in kinds
        ended = [p for p in packets if p.type == "toolCallGenerationEnd"]
        assert len(ended) == 1
        request = ended[0].tool_call_request
        assert (request.name, request.arguments) == ("add", {"a": 1, "b": 2})
        assert packets[-1].stats.stop_reason == "toolCalls"

        # Without tools offered, the same model just answers.
        packets, _ = await predict(client, TOOLS, "1+2?")
        assert not [p for p in packets if p.type.startswith("toolCall")]


async def test_structured_output_follows_the_json_schema(server: BackgroundServer) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    async with connect(server, "llm") as client:
        await get_or_load(client, LLM)
        packets, _ = await predict(
            client,
            LLM,
            config={"llm.prediction.structured": {"type": "json", "jsonSchema": schema}},
        )
    document = json.loads(text_of(packets))
    assert set(document) == {"name", "age"}
    assert isinstance(document["age"], int)


async def test_two_ways_to_complete(server: BackgroundServer) -> None:
    async with connect(server, "llm") as client:
        await get_or_load(client, ECHO)
        # JS 2.0: completeRawText continues the raw prompt (no chat template).
        channel = await client.open(
            llm.COMPLETE_RAW_TEXT,
            CompleteRawTextCreationParameter(
                model_specifier=query(ECHO), raw_prompt="Once upon", prediction_config_stack=stack()
            ),
        )
        packets, end = await client.until_end(channel)
        assert isinstance(end, ChannelClosed)
        assert text_of(packets) == "echo: Once upon"
        assert isinstance(packets[-1], PredictSuccess)

        # Python / JS 1.x: predict with a completeModeFormatting layer after apiOverride.
        layers = [
            KVConfigLayer(
                "apiOverride", KVConfig([KVConfigField("llm.prediction.temperature", 0)])
            ),
            KVConfigLayer(
                "completeModeFormatting",
                KVConfig(
                    [KVConfigField("llm.prediction.promptTemplate", PYTHON_COMPLETE_TEMPLATE)]
                ),
            ),
        ]
        packets, end = await predict(client, ECHO, "Once upon", config_stack=KVConfigStack(layers))
        assert isinstance(end, ChannelClosed)
        assert text_of(packets) == "echo: Once upon"

        # Without that layer the model's chat template wraps the message.
        channel = await client.open(
            llm.PREDICT,
            PredictCreationParameter(
                model_specifier=query(ECHO),
                history=chat("Once upon"),
                prediction_config_stack=stack(),
            ),
        )
        packets, _ = await client.until_end(channel)
        assert text_of(packets) == "echo: Once upon"  # the echo model finds the user turn


async def test_apply_prompt_template_tokenize_and_count(server: BackgroundServer) -> None:
    async with connect(server, "llm") as client:
        loaded = await get_or_load(client, LLM)
        history = ChatHistoryData(
            [SystemMessage([TextPart("Be terse.")]), UserMessage([TextPart("Where is Rome?")])]
        )
        reference = ModelSpecifierInstanceReference(loaded.instance_reference)
        result = await client.result(
            llm.APPLY_PROMPT_TEMPLATE, ApplyPromptTemplateParameter(reference, history, stack())
        )
        assert "Be terse." in result.formatted
        assert "Where is Rome?" in result.formatted
        tokens = await client.result(llm.TOKENIZE, TokenizeParameter(query(LLM), "Hello big world"))
        count = await client.result(
            llm.COUNT_TOKENS, CountTokensParameter(reference, "Hello big world")
        )
        assert all(type(t) is int for t in tokens.tokens)
        assert count.token_count == len(tokens.tokens) == 3


async def test_uploaded_text_files_reach_the_prompt(server: BackgroundServer) -> None:
    import base64

    identity = ("guest:file-user", "secret")
    async with (
        connect(server, "files", identity) as file_client,
        connect(server, "llm", identity) as client,
    ):
        upload = await file_client.result(
            files.UPLOAD_FILE_BASE64,
            UploadFileBase64Parameter("notes.txt", base64.b64encode(b"The code is 42.").decode()),
        )
        await get_or_load(client, LLM)
        history = ChatHistoryData(
            [
                UserMessage(
                    [
                        FilePart(
                            "notes.txt", upload.identifier, upload.size_bytes, upload.file_type
                        ),
                        TextPart("What is the code?"),
                    ]
                )
            ]
        )
        result = await client.result(
            llm.APPLY_PROMPT_TEMPLATE, ApplyPromptTemplateParameter(query(LLM), history, stack())
        )
    assert "The code is 42." in result.formatted
    assert "What is the code?" in result.formatted


async def test_diagnostics_log_prediction_input_and_output(server: BackgroundServer) -> None:
    # One identity on both sockets, as real clients do: a client sees its own activity.
    identity = new_identity()
    async with (
        connect(server, "diagnostics", identity) as logs,
        connect(server, "llm", identity) as client,
    ):
        stream = await logs.open(diagnostics.STREAM_LOGS)
        await get_or_load(client, LLM)
        packets, _ = await predict(client, LLM, "Log me")
        seen: dict[type, Any] = {}
        with anyio.fail_after(10):
            while len(seen) < 2:
                data = (await logs.next_on(stream)).log.data
                if isinstance(data, (LLMPredictionInputLog, LLMPredictionOutputLog)):
                    seen[type(data)] = data
        assert "Log me" in seen[LLMPredictionInputLog].input
        assert seen[LLMPredictionInputLog].model_identifier == LLM
        assert seen[LLMPredictionOutputLog].output == text_of(packets)
        # stop ends the log stream normally.
        await logs.cancel(stream)
        _, end = await logs.until_end(stream)
        assert isinstance(end, ChannelClosed)


async def test_processing_state_follows_a_generation(server: BackgroundServer) -> None:
    async with connect(server, "llm") as client, connect(server, "llm") as observer:
        await get_or_load(client, SLOW)
        state = GetInstanceProcessingStateParameter(query(SLOW), True)
        assert (await observer.result(llm.GET_INSTANCE_PROCESSING_STATE, state)).status == "idle"
        channel = await client.open(
            llm.PREDICT,
            PredictCreationParameter(
                model_specifier=query(SLOW), history=chat("Go"), prediction_config_stack=stack()
            ),
        )
        while not isinstance(await client.next_on(channel), PredictFragment):
            pass
        assert (
            await observer.result(llm.GET_INSTANCE_PROCESSING_STATE, state)
        ).status == "generating"
        await client.cancel(channel)
        await client.until_end(channel)
        assert (await observer.result(llm.GET_INSTANCE_PROCESSING_STATE, state)).status == "idle"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("llm.prediction.temperature", "hot"),
        ("llm.prediction.maxPredictedTokens", {"checked": "yes", "value": 3}),
        ("llm.prediction.topPSampling", {"checked": True, "value": 7}),
        ("llm.prediction.stopStrings", "stop"),
        ("llm.prediction.structured", {"type": "json"}),
        ("llm.prediction.promptTemplate", {"type": "jinja"}),
        # The server checks values with the SDK's declaration of each option.
        ("llm.prediction.seed", {"checked": True, "value": 1.5}),
        ("llm.prediction.reasoning.parsing", {"enabled": "yes"}),
        ("llm.prediction.structured", {"type": "xml"}),
    ],
)
async def test_a_bad_config_value_is_a_clear_channel_error(
    server: BackgroundServer, key: str, value: Any
) -> None:
    async with connect(server, "llm") as client:
        await get_or_load(client, LLM)
        packets, end = await predict(client, LLM, config={key: value})
        assert packets == []
        assert isinstance(end, ChannelFailed)
        assert key in end.error.title
        # The socket still works.
        packets, end = await predict(client, LLM)
        assert isinstance(end, ChannelClosed)


async def test_predicting_with_a_model_that_is_not_loaded(server: BackgroundServer) -> None:
    async with connect(server, "llm") as client:
        _, end = await predict(client, LLM)
    assert isinstance(end, ChannelFailed)
    assert end.error.code == "generic.noModelMatchingQuery"


async def test_a_client_that_disconnects_stops_its_predictions(server: BackgroundServer) -> None:
    # The silent model never ends a generation, not even on cancel: only the disconnect can.
    async with connect(server, "llm") as observer:
        await get_or_load(observer, "silent-llm")
        state = GetInstanceProcessingStateParameter(query("silent-llm"), True)
        async with connect(server, "llm") as client:
            await client.open(
                llm.PREDICT,
                PredictCreationParameter(query("silent-llm"), chat("x"), stack()),
            )
            with anyio.fail_after(10):
                while (
                    await observer.result(llm.GET_INSTANCE_PROCESSING_STATE, state)
                ).status != "generating":
                    pass  # each round trip waits on the server; bounded by fail_after
        with anyio.fail_after(10):
            while (
                await observer.result(llm.GET_INSTANCE_PROCESSING_STATE, state)
            ).status != "idle":
                pass
