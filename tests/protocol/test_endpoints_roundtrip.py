"""Endpoint wire classes through the converter: round trips and inbound fixtures.

* Property tests: every wire class of the endpoint modules and ``kv.py``, built with
  arbitrary values (strategies derived from the attrs fields), survives
  unstructure -> JSON text -> structure unchanged.
* Fixtures: server messages shaped like the schema and PROTOCOL.md's examples (the
  instance info of 4.2, the transcript of section 10, the tool round of section 7) decode
  to the right classes and values; unknown tags decode to ``Unknown``; older servers that
  leave out fields the current schema requires still decode; a wrong type is a
  ``RemoteProtocolError`` naming the field.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any, Literal, Union

import attrs
import pytest
from _wire_hints import wire_type_hints
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lmstudio_sdk.errors import LocalProtocolError, RemoteProtocolError
from lmstudio_sdk.protocol import kv
from lmstudio_sdk.protocol._unset import UNSET, UnsetType
from lmstudio_sdk.protocol.codec import Unknown, dumps, loads, structure, tag_of, unstructure
from lmstudio_sdk.protocol.endpoints import (
    ENDPOINTS,
    diagnostics,
    embedding,
    files,
    llm,
    repository,
    shared,
    system,
)
from lmstudio_sdk.protocol.kv import Checkbox, KVConfig, KVConfigField

MODULES = [shared, llm, embedding, system, diagnostics, files, repository, kv]

# --------------------------------------------------------------------------------------
# Strategies derived from the attrs classes
# --------------------------------------------------------------------------------------

# JSON cannot carry NaN, infinities or integers past what every JSON library reads back.
INTS = st.integers(min_value=-(2**53), max_value=2**53)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
TEXT = st.text(max_size=12)
JSON: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | INTS | FLOATS | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
# Values the classes' validators accept (anything else is refused at construction).
KEY_STRING = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn")),
    min_size=1,
    max_size=20,
).filter(lambda s: s != "__proto__")
KEBAB = st.from_regex(r"[a-z0-9]{1,5}(-[a-z0-9]{1,5}){0,2}", fullmatch=True)
KEBAB_WITH_DOTS = st.from_regex(r"[a-z0-9]{1,5}([-.][a-z0-9]{1,5}){0,2}", fullmatch=True)
POSITIVE = st.integers(min_value=1, max_value=2**31)

FIELD_STRATEGIES: dict[tuple[type, str], st.SearchStrategy[Any]] = {
    (shared.ModelQuery, "identifier"): KEY_STRING,
    (shared.ModelQuery, "path"): KEY_STRING,
    (shared.LoadModelCreationParameter, "ttl_ms"): POSITIVE,
    (shared.GetOrLoadCreationParameter, "load_ttl_ms"): POSITIVE,
    (system.StartHttpServerParameter, "port"): st.integers(min_value=1, max_value=65535),
    (repository.ModelSearchOpts, "limit"): st.integers(min_value=1, max_value=25),
    (repository.FuzzyFindStaffPicksParameter, "limit"): POSITIVE,
    (repository.DownloadArtifactCreationParameter, "artifact_owner"): KEBAB,
    (repository.DownloadArtifactCreationParameter, "artifact_name"): KEBAB_WITH_DOTS,
    (repository.ArtifactDownloadTarget, "owner"): KEBAB,
    (repository.ArtifactDownloadTarget, "name"): KEBAB_WITH_DOTS,
    (repository.PushArtifactCreationParameter, "description"): st.text(max_size=40),
    (repository.LoginAsComputeDeviceParameter, "token"): st.text(min_size=1, max_size=12),
}


def _tag_name(cls: type) -> str | None:
    for field in attrs.fields(cls):
        if not field.init and field.name in ("type", "role"):
            return field.name
    return None


def unknown_strategy(members: list[type]) -> st.SearchStrategy[Unknown]:
    """An object tagged with a value none of the union's members has."""
    tag = next((t for t in map(_tag_name, members) if t is not None), "type")
    known = {tag_of(m, tag) for m in members}
    tags = TEXT.filter(lambda t: t not in known)
    return st.builds(
        lambda value, extra: Unknown(type=value, raw={tag: value, "extra": extra}), tags, JSON
    )


def strategy_for(tp: Any) -> st.SearchStrategy[Any]:
    """A strategy for any type used in a wire-class annotation."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        members = typing.get_args(tp)
        classes = [m for m in members if attrs.has(m) and m is not Unknown]
        options = [strategy_for(m) for m in members if m is not Unknown]
        if Unknown in members:
            options.append(unknown_strategy(classes))
        return st.one_of(options)
    if tp is Unknown:  # a channel with no packet type (system.alive)
        return unknown_strategy([])
    if tp is UnsetType:
        return st.just(UNSET)
    if tp is type(None):
        return st.none()
    if tp is Any:
        return JSON
    if origin is Literal:
        return st.sampled_from(typing.get_args(tp))
    if origin is list:
        return st.lists(strategy_for(typing.get_args(tp)[0]), max_size=3)
    if origin is tuple:
        return st.tuples(*map(strategy_for, typing.get_args(tp)))
    if origin is dict:
        return st.dictionaries(TEXT, JSON, max_size=3)
    if attrs.has(tp):
        return st.deferred(lambda: class_strategy(tp))
    return {str: TEXT, int: INTS, float: FLOATS, bool: st.booleans()}[tp]


def class_strategy(cls: type) -> st.SearchStrategy[Any]:
    hints = wire_type_hints(cls)
    kwargs = {}
    for field in attrs.fields(cls):
        if not field.init:
            continue
        special = FIELD_STRATEGIES.get((cls, field.name))
        if special is not None and field.default is UNSET:
            special = st.just(UNSET) | special
        kwargs[field.alias] = special if special is not None else strategy_for(hints[field.name])
    return st.builds(cls, **kwargs)


def wire_classes() -> list[type]:
    found = {
        value
        for module in MODULES
        for value in vars(module).values()
        if isinstance(value, type) and attrs.has(value) and value.__module__ == module.__name__
    }
    return sorted(found, key=lambda c: (c.__module__, c.__name__))


def json_round_trip(value: Any, tp: Any) -> Any:
    return structure(loads(dumps(unstructure(value, tp))), tp)


@pytest.mark.parametrize(
    "cls", wire_classes(), ids=lambda c: f"{c.__module__.split('.')[-1]}.{c.__name__}"
)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip(cls: type, data: st.DataObject) -> None:
    value = data.draw(class_strategy(cls))
    assert json_round_trip(value, cls) == value
    # Wire values are frozen and slotted.
    assert not hasattr(value, "__dict__")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(value, attrs.fields(cls)[0].name, None)


@pytest.mark.parametrize(
    "spec",
    [spec for specs in ENDPOINTS.values() for spec in specs.values() if spec.kind == "channel"],
    ids=lambda s: f"{s.namespace}.{s.name}",
)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_channel_packets_round_trip_through_their_union(spec: Any, data: st.DataObject) -> None:
    """Any packet of a channel's unions comes back as the same variant (tag dispatch)."""
    for union in (spec.to_client, spec.to_server):
        if union is not None:
            packet = data.draw(strategy_for(union))
            assert json_round_trip(packet, union) == packet


# --------------------------------------------------------------------------------------
# Inbound fixtures
# --------------------------------------------------------------------------------------

# PROTOCOL.md 4.2, as a current server sends it.
INSTANCE_INFO = {
    "type": "llm",
    "modelKey": "qwen2.5-0.5b-instruct",
    "format": "gguf",
    "displayName": "Qwen2.5 0.5B Instruct",
    "publisher": "lmstudio-community",
    "path": "lmstudio-community/Qwen2.5-0.5B-Instruct-GGUF/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf",
    "sizeBytes": 397807936,
    "indexedModelIdentifier": (
        "lmstudio-community/Qwen2.5-0.5B-Instruct-GGUF/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf"
    ),
    "deviceIdentifier": None,
    "paramsString": "0.5B",
    "architecture": "qwen2",
    "quantization": {"name": "Q4_K_M", "bits": 4},
    "identifier": "qwen2.5-0.5b-instruct",
    "instanceReference": "<opaque>",
    "ttlMs": 3600000,
    "lastUsedTime": None,
    "vision": False,
    "trainedForToolUse": True,
    "maxContextLength": 32768,
    "contextLength": 4096,
}
# The same instance from a server of the July-2025 schema (what Python SDK 1.x knows).
OLD_INSTANCE_INFO = {
    k: v
    for k, v in INSTANCE_INFO.items()
    if k
    not in {
        "publisher",
        "indexedModelIdentifier",
        "deviceIdentifier",
        "ttlMs",
        "lastUsedTime",
        "quantization",
    }
}
EMBEDDING_INSTANCE_INFO = {
    **{k: v for k, v in INSTANCE_INFO.items() if k not in {"vision", "trainedForToolUse"}},
    "type": "embedding",
    "modelKey": "text-embedding-nomic-embed-text-v1.5",
    "deviceIdentifier": "linked-device-1",
    "ttlMs": None,
    "lastUsedTime": 1760000000000.5,
    "maxContextLength": 2048,
    "contextLength": 2048,
}


def test_instance_info_of_protocol_section_4_2() -> None:
    info = structure(INSTANCE_INFO, shared.LLMInstanceInfo)
    assert isinstance(info, shared.LLMInfo)  # an instance is also a model on disk
    assert info.identifier == "qwen2.5-0.5b-instruct"
    assert info.instance_reference == "<opaque>"
    assert info.publisher == "lmstudio-community"
    assert info.indexed_model_identifier == INSTANCE_INFO["indexedModelIdentifier"]
    assert info.device_identifier is None  # null, i.e. this machine
    assert info.quantization == shared.Quantization("Q4_K_M", 4)
    assert (info.ttl_ms, info.last_used_time) == (3600000, None)
    assert (info.context_length, info.max_context_length) == (4096, 32768)
    assert (info.vision, info.trained_for_tool_use) == (False, True)
    assert info.variants is UNSET
    assert unstructure(info) == INSTANCE_INFO  # null stays null, absent stays absent


def test_instance_info_of_an_older_server_decodes_with_unset_fields() -> None:
    info = structure(OLD_INSTANCE_INFO, shared.LLMInstanceInfo)
    assert info.identifier == "qwen2.5-0.5b-instruct"
    for name in ("publisher", "indexed_model_identifier", "device_identifier", "ttl_ms"):
        assert getattr(info, name) is UNSET, name
    assert unstructure(info) == OLD_INSTANCE_INFO


def test_list_loaded_and_model_instance_union() -> None:
    loaded = structure([INSTANCE_INFO], llm.LIST_LOADED.result)
    assert [i.identifier for i in loaded] == ["qwen2.5-0.5b-instruct"]
    either = structure([INSTANCE_INFO, EMBEDDING_INSTANCE_INFO], list[shared.ModelInstanceInfo])
    assert [type(i) for i in either] == [
        shared.LLMInstanceInfo,
        shared.EmbeddingModelInstanceInfo,
    ]
    assert either[1].device_identifier == "linked-device-1"
    assert either[1].last_used_time == 1760000000000.5


def test_get_model_info_without_result_is_none() -> None:
    assert structure(None, llm.GET_MODEL_INFO.result) is None
    assert structure(INSTANCE_INFO, llm.GET_MODEL_INFO.result).context_length == 4096


def test_downloaded_models_keep_unknown_domains() -> None:
    image_model = {"type": "imageGen", "modelKey": "flux", "format": "safetensors"}
    llm_info = {k: v for k, v in INSTANCE_INFO.items() if k not in {"identifier", "contextLength"}}
    models = structure([llm_info, image_model], system.LIST_DOWNLOADED_MODELS.result)
    assert isinstance(models[0], shared.LLMInfo)
    assert models[1] == Unknown(type="imageGen", raw=image_model)
    assert unstructure(models, system.LIST_DOWNLOADED_MODELS.result)[1] == image_model


# PROTOCOL.md section 10: what the server sends on getOrLoad and predict.
GET_OR_LOAD_PACKET = {"type": "alreadyLoaded", "info": INSTANCE_INFO}
PREDICT_PACKETS = [
    {
        "type": "promptProcessingProgress",
        "progress": 1,
        "details": {
            "cachedTokenCount": 0,
            "totalPromptTokenCount": 9,
            "processedPromptTokenCount": 9,
            "unprocessedPromptTokenCount": 0,
        },
    },
    {
        "type": "fragment",
        "fragment": {
            "content": "Hello",
            "tokensCount": 1,
            "containsDrafted": False,
            "reasoningType": "none",
            "isStructural": False,
        },
    },
    {
        "type": "success",
        "stats": {
            "stopReason": "userStopped",
            "predictedTokensCount": 1,
            "promptTokensCount": 9,
            "totalTokensCount": 10,
        },
        "modelInfo": INSTANCE_INFO,
        "loadModelConfig": {"fields": [{"key": "llm.load.contextLength", "value": 4096}]},
        "predictionConfig": {"fields": [{"key": "llm.prediction.temperature", "value": 0.2}]},
    },
]


def test_transcript_of_protocol_section_10() -> None:
    loaded = structure(GET_OR_LOAD_PACKET, llm.GET_OR_LOAD.to_client)
    assert isinstance(loaded, llm.GetOrLoadAlreadyLoaded)
    assert loaded.info.identifier == "qwen2.5-0.5b-instruct"

    progress, fragment, success = (structure(p, llm.PREDICT.to_client) for p in PREDICT_PACKETS)
    assert isinstance(progress, llm.PredictPromptProcessingProgress)
    assert progress.progress == 1.0
    assert isinstance(progress.details, llm.PromptProcessingDetails)
    assert progress.details.total_prompt_token_count == 9
    assert fragment == llm.PredictFragment(
        shared.LLMPredictionFragment("Hello", 1, False, "none", is_structural=False)
    )
    assert isinstance(success, llm.PredictSuccess)
    assert success.stats.stop_reason == "userStopped"
    assert success.stats.total_tokens_count == 10
    assert success.model_info.context_length == 4096
    assert success.load_model_config.to_dict() == {"llm.load.contextLength": 4096}
    assert success.prediction_config.to_dict() == {"llm.prediction.temperature": 0.2}
    for packet, raw in zip((progress, fragment, success), PREDICT_PACKETS, strict=True):
        assert loads(dumps(unstructure(packet, llm.PREDICT.to_client))) == raw


def test_predict_creation_parameter_of_section_10_decodes_on_the_server_side() -> None:
    raw = {
        "modelSpecifier": {"type": "query", "query": {"identifier": "qwen2.5-7b-instruct"}},
        "history": {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]},
        "predictionConfigStack": {
            "layers": [
                {
                    "layerName": "apiOverride",
                    "config": {
                        "fields": [
                            {"key": "llm.prediction.temperature", "value": 0.2},
                            {
                                "key": "llm.prediction.maxPredictedTokens",
                                "value": {"checked": True, "value": 64},
                            },
                        ]
                    },
                }
            ]
        },
    }
    parameter = structure(raw, llm.PREDICT.creation_parameter)
    assert parameter.model_specifier == shared.ModelSpecifierQuery(
        shared.ModelQuery(identifier="qwen2.5-7b-instruct")
    )
    assert parameter.history.messages == [shared.UserMessage([shared.TextPart("Hi")])]
    settings = kv.collapse(parameter.prediction_config_stack)
    assert Checkbox.from_json(settings["llm.prediction.maxPredictedTokens"]) == Checkbox(True, 64)
    assert unstructure(parameter) == raw


def test_tool_round_of_protocol_section_7() -> None:
    packets = [
        {"type": "toolCallGenerationStart", "toolCallId": "call_1"},
        {"type": "toolCallGenerationNameReceived", "name": "add"},
        {"type": "toolCallGenerationArgumentFragmentGenerated", "content": '{"a":123,'},
        {
            "type": "toolCallGenerationEnd",
            "toolCallRequest": {
                "type": "function",
                "id": "call_1",
                "name": "add",
                "arguments": {"a": 123, "b": 3210},
            },
        },
    ]
    start, name, argument, end = (structure(p, llm.PREDICT.to_client) for p in packets)
    assert start == llm.PredictToolCallGenerationStart(tool_call_id="call_1")
    assert name == llm.PredictToolCallGenerationNameReceived("add")
    assert argument.content == '{"a":123,'
    assert end.tool_call_request == shared.ToolCallRequest(
        "add", id="call_1", arguments={"a": 123, "b": 3210}
    )
    # Round 2 history, as the client sends it.
    assistant = shared.AssistantMessage(
        [shared.TextPart(""), shared.ToolCallRequestPart(end.tool_call_request)]
    )
    tool = shared.ToolMessage(
        [shared.ToolCallResultPart("3333", tool_call_id="call_1", name="add")]
    )
    assert unstructure(shared.ChatHistoryData([assistant, tool])) == {
        "messages": [
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": ""},
                    {"type": "toolCallRequest", "toolCallRequest": packets[3]["toolCallRequest"]},
                ],
            },
            {
                "role": "tool",
                "content": [
                    {
                        "type": "toolCallResult",
                        "content": "3333",
                        "toolCallId": "call_1",
                        "name": "add",
                    }
                ],
            },
        ]
    }


def test_tool_call_without_id_or_arguments() -> None:
    packet = {
        "type": "toolCallGenerationEnd",
        "toolCallRequest": {"type": "function", "name": "now"},
    }
    end = structure(packet, llm.PREDICT.to_client)
    assert end.tool_call_request.id is UNSET
    assert end.tool_call_request.arguments is UNSET


def test_tool_call_failure_error_is_read_leniently() -> None:
    packet = {
        "type": "toolCallGenerationFailed",
        "error": {"title": 42, "cause": "Unexpected token", "displayData": "not an object"},
        "rawContent": "{",
    }
    failed = structure(packet, llm.PREDICT.to_client)
    assert isinstance(failed, llm.PredictToolCallGenerationFailed)
    assert failed.error.title == "Unknown error"
    assert failed.error.cause == "Unexpected token"
    assert failed.error.display_data is UNSET
    assert failed.raw_content == "{"


def test_older_server_packets_without_newer_required_fields() -> None:
    progress = structure(
        {"type": "promptProcessingProgress", "progress": 0.5}, llm.PREDICT.to_client
    )
    assert progress == llm.PredictPromptProcessingProgress(0.5)
    assert progress.details is UNSET
    raw_fragment = {
        "content": "a",
        "tokensCount": 1,
        "containsDrafted": False,
        "reasoningType": "none",
    }
    fragment = structure({"type": "fragment", "fragment": raw_fragment}, llm.PREDICT.to_client)
    assert fragment.fragment.is_structural is UNSET


def test_fragment_with_token_log_probabilities() -> None:
    raw = {
        "content": "Hi",
        "tokensCount": 1,
        "containsDrafted": False,
        "reasoningType": "reasoning",
        "isStructural": False,
        "tokens": [
            {
                "text": "Hi",
                "id": 13048,
                "logProb": -0.5,
                "candidates": [{"text": "Hello", "id": 9707, "logProb": -1.25}],
            }
        ],
    }
    fragment = structure(raw, shared.LLMPredictionFragment)
    (token,) = fragment.tokens
    assert (token.text, token.id, token.log_prob) == ("Hi", 13048, -0.5)
    assert token.candidates == [shared.LLMCandidateToken("Hello", 9707, -1.25)]


@pytest.mark.parametrize(
    ("union", "raw"),
    [
        (llm.PREDICT.to_client, {"type": "reasoningSummary", "text": "..."}),
        (llm.PREDICT.to_client, {"type": "error", "error": {"title": "legacy"}}),
        (embedding.LOAD_MODEL.to_client, {"type": "queued", "position": 2}),
        (repository.DOWNLOAD_MODEL.to_client, {"type": "paused"}),
        (diagnostics.STREAM_LOGS.to_client, {"type": "metrics", "cpu": 0.5}),
        (files.RETRIEVE.to_client, {"type": "onRerankingStart"}),
        (llm.PREDICT.to_server, {"type": "pause"}),
        (shared.ModelSpecifier, {"type": "alias", "alias": "x"}),
        (shared.ChatMessage, {"role": "developer", "content": []}),
    ],
)
def test_unknown_tags_decode_to_unknown(union: Any, raw: dict[str, Any]) -> None:
    decoded = structure(raw, union)
    assert decoded == Unknown(type=next(iter(raw.values())), raw=raw)
    assert unstructure(decoded, union) == raw


def test_unknown_chat_parts_are_kept_inside_known_messages() -> None:
    raw = {
        "role": "user",
        "content": [{"type": "audio", "data": "..."}, {"type": "text", "text": "hi"}],
    }
    message = structure(raw, shared.ChatMessage)
    assert message == shared.UserMessage(
        [Unknown(type="audio", raw=raw["content"][0]), shared.TextPart("hi")]
    )


def test_server_extensible_enums_accept_new_values() -> None:
    stats = structure({"stopReason": "guardrailTriggered"}, shared.LLMPredictionStats)
    assert stats.stop_reason == "guardrailTriggered"
    info = structure({**INSTANCE_INFO, "format": "pte"}, shared.LLMInstanceInfo)
    assert info.format == "pte"
    uploaded = structure(
        {"identifier": "f", "fileType": "audio/wav", "sizeBytes": 3}, files.UploadFileBase64Result
    )
    assert uploaded.file_type == "audio/wav"


def test_retrieval_page_numbers_and_ranges() -> None:
    entries = structure(
        {
            "entries": [
                {"content": "a", "score": 1, "sourceIndex": 0, "pageNumber": 3},
                {"content": "b", "score": 0.5, "sourceIndex": 1, "lineNumber": [10, 12]},
            ]
        },
        files.RetrievalResult,
    ).entries
    assert entries[0].page_number == 3
    assert entries[0].score == 1.0
    assert entries[1].line_number == (10, 12)
    assert entries[1].page_number is UNSET


def test_hub_metadata_mixed_flags() -> None:
    raw = {
        "type": "llm",
        "architectures": ["qwen2"],
        "compatibilityTypes": ["gguf"],
        "paramsStrings": ["7B"],
        "minMemoryUsageBytes": 4e9,
        "trainedForToolUse": "mixed",
        "vision": False,
        "reasoning": True,
        "contextLengths": [32768],
    }
    metadata = structure(raw, repository.HubModelMetadata)
    assert (metadata.trained_for_tool_use, metadata.vision, metadata.reasoning) == (
        "mixed",
        False,
        True,
    )
    with pytest.raises(RemoteProtocolError, match="trainedForToolUse"):
        structure({**raw, "trainedForToolUse": "sometimes"}, repository.HubModelMetadata)


@pytest.mark.parametrize(
    ("tp", "raw", "field"),
    [
        (shared.LLMInstanceInfo, {**INSTANCE_INFO, "sizeBytes": "397807936"}, "sizeBytes"),
        (shared.LLMInstanceInfo, {**INSTANCE_INFO, "contextLength": 4096.5}, "contextLength"),
        (shared.LLMInstanceInfo, {**INSTANCE_INFO, "deviceIdentifier": 7}, "deviceIdentifier"),
        (
            shared.LLMInstanceInfo,
            {**INSTANCE_INFO, "quantization": {"name": "Q4"}},
            "quantization.bits",
        ),
        (
            llm.PREDICT.to_client,
            {**PREDICT_PACKETS[1], "fragment": {"content": 5}},
            "fragment.content",
        ),
        (llm.PREDICT.to_client, {**PREDICT_PACKETS[2], "stats": {}}, "stats.stopReason"),
        (
            llm.PREDICT.to_client,
            {**PREDICT_PACKETS[2], "modelInfo": {**INSTANCE_INFO, "vision": "no"}},
            "modelInfo.vision",
        ),
        (llm.GET_OR_LOAD.to_client, {"type": "loadProgress", "progress": "50%"}, "progress"),
        (llm.TOKENIZE.result, {"tokens": "1 2 3"}, "tokens"),
        (system.VERSION.result, {"version": "0.4.0", "build": True}, "build"),
        (
            files.RetrievalResultEntry,
            {"content": "a", "score": 1, "sourceIndex": 0, "pageNumber": [1]},
            "pageNumber",
        ),
        (
            repository.SEARCH_MODELS.result,
            {"results": [{"name": "x", "identifier": "hf:x"}]},
            "identifier",
        ),
    ],
)
def test_wrong_field_type_names_the_field(tp: Any, raw: Any, field: str) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        structure(raw, tp)
    assert field in str(caught.value)


def test_kv_field_without_value_round_trips() -> None:
    config = structure({"fields": [{"key": "llm.prediction.systemPrompt"}]}, KVConfig)
    assert config == KVConfig([KVConfigField("llm.prediction.systemPrompt")])
    assert unstructure(config) == {"fields": [{"key": "llm.prediction.systemPrompt"}]}
    # An explicit null is a value, not an absent key.
    null = structure({"fields": [{"key": "k", "value": None}]}, KVConfig)
    assert null.fields[0].value is None
    assert unstructure(null) == {"fields": [{"key": "k", "value": None}]}


# --------------------------------------------------------------------------------------
# Values the server would silently ignore are refused when built
# --------------------------------------------------------------------------------------

R = repository


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: shared.ModelQuery(identifier=""), "identifier must be 1 to 1024 characters"),
        (lambda: shared.ModelQuery(identifier="a" * 1025), "identifier must be 1 to 1024"),
        (lambda: shared.ModelQuery(path="models/\x00x"), "path must be 1 to 1024 characters"),
        (lambda: shared.ModelQuery(identifier="__proto__"), "__proto__"),
        (lambda: shared.LoadModelCreationParameter("k", kv.KVConfigStack(), ttl_ms=0), "ttlMs"),
        (
            lambda: shared.GetOrLoadCreationParameter("k", kv.KVConfigStack(), load_ttl_ms=-5),
            "loadTtlMs must be a positive integer",
        ),
        (lambda: system.StartHttpServerParameter(port=70000), "port must be 1 to 65535"),
        (lambda: R.ModelSearchOpts(limit=26), "limit must be 1 to 25"),
        (lambda: R.FuzzyFindStaffPicksParameter(limit=0), "limit must be at least 1"),
        (lambda: R.ArtifactDownloadTarget("My Org", "x"), "owner must be kebab-case"),
        (
            lambda: R.DownloadArtifactCreationParameter("me", "Plugin_1", None, "/p"),
            "artifactName must be lowercase",
        ),
        (lambda: R.PushArtifactCreationParameter("/p", description="x" * 1001), "1000"),
        (lambda: R.LoginAsComputeDeviceParameter(""), "token must not be empty"),
    ],
)
def test_invalid_outbound_values_are_refused(build: Any, message: str) -> None:
    with pytest.raises(LocalProtocolError, match=re.escape(message)):
        build()


def test_valid_edge_values_are_accepted() -> None:
    assert shared.ModelQuery(identifier="a" * 1024, path="Qwen/Qwen2.5 GGUF/ü.gguf").path
    assert shared.LoadModelCreationParameter("k", kv.KVConfigStack(), ttl_ms=1).ttl_ms == 1
    assert system.StartHttpServerParameter(port=65535).port == 65535
    assert R.ArtifactDownloadTarget("lmstudio-ai", "qwen2.5-7b").name == "qwen2.5-7b"


def test_invalid_values_from_the_wire_are_protocol_errors() -> None:
    # What a server decoding a client's request sees.
    with pytest.raises(RemoteProtocolError, match="identifier"):
        structure({"type": "query", "query": {"identifier": ""}}, shared.ModelSpecifier)
