"""Our endpoint wire classes against the current protocol schema (``js-head-lms.json``).

The list of endpoints is read from the schema, so an endpoint we do not model fails here.
For every endpoint:

* example payloads built through our classes (the table below, optional fields both set
  and left out) are unstructured and validated against the endpoint's schema, in both
  directions: what we send, and what our server will send;
* the classes themselves are compared with the schema, recursively from each endpoint: our
  field names must be schema properties, every required property must be one of our
  fields, tags and JSON types must agree, and every wire class must be reached;
* the frames :class:`ClientSession` produces for our outbound payloads are validated
  whole: the envelope against ``js-head-envelope.json``, the payload against the endpoint.

Schema caveats handled here (``tests/schemas/SOURCES.md``): ``additionalProperties: false``
is an export artifact and is dropped; ``$ref``s name definitions whose names contain ``/``
(``#/definitions/llm/rpc/x/returns``), which we rewrite as proper JSON pointers; Python's
``re`` has no ``\\p{L}``/``\\p{N}``, which we approximate with ``\\w``.
"""

from __future__ import annotations

import json
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import attrs
import jsonschema
import pytest
from _wire_hints import wire_type_hints
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from lmstudio_sdk.protocol import kv
from lmstudio_sdk.protocol._unset import UNSET, UnsetType
from lmstudio_sdk.protocol.codec import Unknown, dumps, loads, structure, tag_of, unstructure
from lmstudio_sdk.protocol.endpoints import (
    ENDPOINTS,
    ChannelSpec,
    RpcSpec,
    diagnostics,
    embedding,
    files,
    llm,
    repository,
    shared,
    system,
)
from lmstudio_sdk.protocol.endpoints.shared import (
    AssistantMessage,
    CancelPacket,
    ChatHistoryData,
    CountTokensParameter,
    CountTokensResult,
    EmbeddingModelInfo,
    EmbeddingModelInstanceInfo,
    EstimatedModelMemoryUsage,
    EstimatedResourcesUsage,
    EstimateModelUsageParameter,
    FilePart,
    GetBasePredictionConfigParameter,
    GetInstanceProcessingStateParameter,
    GetLoadConfigParameter,
    GetModelInfoParameter,
    GetOrLoadCreationParameter,
    GetOrLoadLoadProgress,
    GetOrLoadUnloadingOtherJITModel,
    InstanceProcessingState,
    LLMCandidateToken,
    LLMInfo,
    LLMInstanceInfo,
    LLMPredictionFragment,
    LLMPredictionStats,
    LLMToken,
    LLMTool,
    LLMToolFunction,
    LoadModelCreationParameter,
    LoadModelProgress,
    ModelQuery,
    ModelSpecifierInstanceReference,
    ModelSpecifierQuery,
    Quantization,
    SerializedError,
    StopPacket,
    SystemMessage,
    TextPart,
    TokenizeParameter,
    TokenizeResult,
    ToolCallRequest,
    ToolCallRequestPart,
    ToolCallResultPart,
    ToolMessage,
    UnloadModelParameter,
    UserMessage,
)
from lmstudio_sdk.protocol.kv import (
    Checkbox,
    KVConfig,
    KVConfigField,
    KVConfigLayer,
    KVConfigStack,
    kv_config_from_dict,
)
from lmstudio_sdk.protocol.naming import to_camel
from lmstudio_sdk.protocol.session import ClientSession

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
NAMESPACES = ("llm", "embedding", "system", "diagnostics", "files", "repository")
NAMESPACE_MODULES = {
    "llm": llm,
    "embedding": embedding,
    "system": system,
    "diagnostics": diagnostics,
    "files": files,
    "repository": repository,
}
LMS_URI = "urn:lmstudio-sdk-tests:lms"
ENVELOPE_URI = "urn:lmstudio-sdk-tests:envelope"


# --------------------------------------------------------------------------------------
# Loading the schema
# --------------------------------------------------------------------------------------


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _prepare(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop ``additionalProperties: false``, fix ``$ref`` pointers and ``\\p{..}`` patterns."""
    names = set(schema.get("definitions", {}))

    def rewrite_ref(ref: str) -> str:
        prefix = "#/definitions/"
        if not ref.startswith(prefix):
            return ref
        parts = ref[len(prefix) :].split("/")
        # The definition is the longest prefix that names one; the rest points inside it.
        for end in range(len(parts), 0, -1):
            name = "/".join(parts[:end])
            if name in names:
                return prefix + "/".join([_escape(name), *parts[end:]])
        raise AssertionError(f"dangling $ref {ref}")

    def clean(node: Any) -> Any:
        if isinstance(node, list):
            return [clean(item) for item in node]
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "additionalProperties" and value is False:
                continue
            if key == "$ref" and isinstance(value, str):
                out[key] = rewrite_ref(value)
            elif key == "pattern" and isinstance(value, str):
                out[key] = value.replace(r"\p{L}\p{N}", r"\w")
            else:
                out[key] = clean(value)
        return out

    cleaned: dict[str, Any] = clean(schema)
    return cleaned


LMS = _prepare(json.loads((SCHEMAS / "js-head-lms.json").read_text(encoding="utf-8")))
ENVELOPE = _prepare(json.loads((SCHEMAS / "js-head-envelope.json").read_text(encoding="utf-8")))
DEFS: dict[str, Any] = LMS["definitions"]
REGISTRY: Registry[Any] = Registry().with_resources(
    [
        (LMS_URI, Resource.from_contents(LMS, default_specification=DRAFT7)),
        (ENVELOPE_URI, Resource.from_contents(ENVELOPE, default_specification=DRAFT7)),
    ]
)


def _validator(uri: str, definition: str) -> jsonschema.Draft7Validator:
    ref = f"{uri}#/definitions/{_escape(definition)}"
    return jsonschema.Draft7Validator({"$ref": ref}, registry=REGISTRY)


def assert_valid(instance: Any, uri: str, definition: str) -> None:
    errors = list(_validator(uri, definition).iter_errors(instance))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        where = "/".join(str(p) for p in best.absolute_path) or "<root>"
        pytest.fail(
            f"{json.dumps(instance)[:400]}\ndoes not validate against {definition} at "
            f"{where}: {best.message}"
        )


def deref(node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        pointer = node["$ref"]
        assert pointer.startswith("#/"), pointer
        node = LMS
        for token in pointer[2:].split("/"):
            token = token.replace("~1", "/").replace("~0", "~")
            node = node[int(token)] if isinstance(node, list) else node[token]
    return node


def _endpoint_name(member: str) -> tuple[str, str]:
    kind = "rpc" if member.startswith("rpc") else "channel"
    rest = member[len(kind) :]
    return kind, rest[0].lower() + rest[1:]


def schema_endpoints() -> list[tuple[str, str, str]]:
    """``(namespace, name, kind)`` of every rpc*/channel* member of our six namespaces."""
    found = []
    for namespace in NAMESPACES:
        for member in DEFS[f"pseudo/{namespace}"]["properties"]:
            kind, name = _endpoint_name(member)
            found.append((namespace, name, kind))
    return found


SCHEMA_ENDPOINTS = schema_endpoints()


def endpoint_parts(namespace: str, name: str, kind: str) -> dict[str, Any]:
    """The part schemas of an endpoint (``parameter``, ``returns``, ``toClientPacket``...)."""
    parts: dict[str, Any] = DEFS[f"pseudo/{namespace}/{kind}/{name}"]["properties"]
    return parts


def is_void(part_schema: Any) -> bool:
    return deref(part_schema) == {"not": {}}


def part_definition(namespace: str, name: str, kind: str, part: str) -> str:
    return f"{namespace}/{kind}/{name}/{part}"


def spec_type(spec: RpcSpec | ChannelSpec, part: str) -> Any:
    if isinstance(spec, RpcSpec):
        return {"parameter": spec.parameter, "returns": spec.result}[part]
    return {
        "creationParameter": spec.creation_parameter,
        "toClientPacket": spec.to_client,
        "toServerPacket": spec.to_server,
    }[part]


# --------------------------------------------------------------------------------------
# Example payloads, built through our classes
# --------------------------------------------------------------------------------------

PATH = "lmstudio-community/Qwen2.5-0.5B-Instruct-GGUF/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf"
EMB_PATH = "nomic-ai/nomic-embed-text-v1.5-GGUF/nomic-embed-text-v1.5.Q4_K_M.gguf"

SPEC_QUERY = ModelSpecifierQuery(ModelQuery(identifier="qwen2.5-0.5b-instruct"))
SPEC_ANY = ModelSpecifierQuery(ModelQuery())
SPEC_FULL_QUERY = ModelSpecifierQuery(
    ModelQuery(domain="llm", device_identifier=None, identifier="qwen", path=PATH, vision=False)
)
SPEC_REF = ModelSpecifierInstanceReference("c0ffee-instance-reference")
SPECIFIERS = [SPEC_QUERY, SPEC_ANY, SPEC_FULL_QUERY, SPEC_REF]

LOAD_CONFIG = kv_config_from_dict({"llm.load.contextLength": 4096, "llm.load.llama.tryMmap": True})
PREDICTION_CONFIG = KVConfig(
    [
        *kv_config_from_dict(
            {
                "llm.prediction.temperature": 0.2,
                "llm.prediction.maxPredictedTokens": Checkbox.from_setting(64, placeholder=1),
                "llm.prediction.topPSampling": Checkbox.from_setting(False, placeholder=0.95),
                "llm.prediction.stopStrings": [],
            }
        ).fields,
        # A field with no value still overrides lower layers (the server keeps the key).
        KVConfigField("llm.prediction.systemPrompt"),
    ]
)
STACK_EMPTY = KVConfigStack([KVConfigLayer("apiOverride", KVConfig())])
STACK_LOAD = KVConfigStack([KVConfigLayer("apiOverride", LOAD_CONFIG)])
STACK_PREDICT = KVConfigStack(
    [
        KVConfigLayer("apiOverride", PREDICTION_CONFIG),
        KVConfigLayer(
            "completeModeFormatting",
            kv_config_from_dict(
                {
                    "llm.prediction.promptTemplate": {
                        "type": "jinja",
                        "jinjaPromptTemplate": {"template": "{{ messages[0].content }}"},
                        "stopStrings": [],
                    }
                }
            ),
        ),
    ]
)

LLM_INFO = LLMInfo(
    model_key="qwen2.5-0.5b-instruct",
    format="gguf",
    display_name="Qwen2.5 0.5B Instruct",
    publisher="lmstudio-community",
    path=PATH,
    size_bytes=397807936,
    indexed_model_identifier=PATH,
    device_identifier=None,
    params_string="0.5B",
    architecture="qwen2",
    quantization=Quantization("Q4_K_M", 4),
    variants=["qwen2.5-0.5b-instruct@q4_k_m", "qwen2.5-0.5b-instruct@q8_0"],
    selected_variant="qwen2.5-0.5b-instruct@q4_k_m",
    vision=False,
    trained_for_tool_use=True,
    max_context_length=32768,
)
LLM_INFO_MIN = LLMInfo(
    model_key="smollm2-135m",
    format="safetensors",
    display_name="SmolLM2 135M",
    publisher="HuggingFaceTB",
    path="HuggingFaceTB/SmolLM2-135M",
    size_bytes=269060552,
    indexed_model_identifier="HuggingFaceTB/SmolLM2-135M",
    device_identifier="linked-device-1",
    vision=False,
    trained_for_tool_use=False,
    max_context_length=8192,
)
EMB_INFO = EmbeddingModelInfo(
    model_key="text-embedding-nomic-embed-text-v1.5",
    format="gguf",
    display_name="Nomic Embed Text v1.5",
    publisher="nomic-ai",
    path=EMB_PATH,
    size_bytes=84106624,
    indexed_model_identifier=EMB_PATH,
    device_identifier=None,
    params_string="137M",
    architecture="nomic-bert",
    quantization=Quantization("Q4_K_M", 4),
    variants=["text-embedding-nomic-embed-text-v1.5@q4_k_m"],
    selected_variant="text-embedding-nomic-embed-text-v1.5@q4_k_m",
    max_context_length=2048,
)
EMB_INFO_MIN = EmbeddingModelInfo(
    model_key="all-minilm-l6-v2",
    format="onnx",
    display_name="all-MiniLM-L6-v2",
    publisher="sentence-transformers",
    path="sentence-transformers/all-MiniLM-L6-v2",
    size_bytes=90868376,
    indexed_model_identifier="sentence-transformers/all-MiniLM-L6-v2",
    device_identifier=None,
    max_context_length=512,
)


def _init_fields(value: Any) -> dict[str, Any]:
    return {f.name: getattr(value, f.name) for f in attrs.fields(type(value)) if f.init}


def instance_of(info: Any, identifier: str, *, ttl_ms: float | None = 3600000) -> Any:
    """The loaded form of a model-info example."""
    cls = LLMInstanceInfo if isinstance(info, LLMInfo) else EmbeddingModelInstanceInfo
    return cls(
        **_init_fields(info),
        identifier=identifier,
        instance_reference=f"ref-{identifier}",
        context_length=4096,
        ttl_ms=ttl_ms,
        last_used_time=None if ttl_ms is None else 1760000000000.0,
    )


LLM_INSTANCE = instance_of(LLM_INFO, "qwen2.5-0.5b-instruct")
LLM_INSTANCE_MIN = instance_of(LLM_INFO_MIN, "smollm2-135m:2", ttl_ms=None)
EMB_INSTANCE = instance_of(EMB_INFO, "text-embedding-nomic-embed-text-v1.5")
EMB_INSTANCE_MIN = instance_of(EMB_INFO_MIN, "all-minilm-l6-v2", ttl_ms=None)

TOOL_CALL = ToolCallRequest("add", id="call_1", arguments={"a": 123, "b": 3210})
TOOL_CALL_MIN = ToolCallRequest("now")
IMAGE = FilePart("cat.png", "file-1", 1024, "image")
HISTORY = ChatHistoryData(
    [
        SystemMessage([TextPart("You add numbers.")]),
        UserMessage([IMAGE, TextPart("What is 123+3210?")]),
        AssistantMessage([TextPart(""), ToolCallRequestPart(TOOL_CALL), IMAGE]),
        ToolMessage(
            [
                ToolCallResultPart("3333", tool_call_id="call_1", name="add"),
                ToolCallResultPart('"2026-01-01"'),
            ]
        ),
    ]
)
HISTORY_MIN = ChatHistoryData([UserMessage([TextPart("Hi")])])
TOOLS = [
    LLMTool(
        LLMToolFunction(
            "add",
            description="Add two numbers",
            parameters={
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"],
            },
        )
    ),
    LLMTool(LLMToolFunction("now")),
]

STATS = LLMPredictionStats(
    stop_reason="eosFound",
    stop_string="</s>",
    tokens_per_second=51.5,
    num_gpu_layers=24,
    time_to_first_token_sec=0.12,
    total_time_sec=1.5,
    prompt_tokens_count=9,
    predicted_tokens_count=64,
    total_tokens_count=73,
    used_draft_model_key="qwen2.5-0.5b-draft",
    total_draft_tokens_count=10,
    accepted_draft_tokens_count=7,
    rejected_draft_tokens_count=2,
    ignored_draft_tokens_count=1,
)
STATS_MIN = LLMPredictionStats(stop_reason="userStopped")
FRAGMENT = LLMPredictionFragment(
    content="Hello",
    tokens_count=1,
    contains_drafted=True,
    reasoning_type="none",
    is_structural=False,
    tokens=[
        LLMToken("Hello", 9707, log_prob=-0.01, candidates=[LLMCandidateToken("Hi", 13048, -4.6)]),
        LLMToken("!", 0),
    ],
)
FRAGMENT_MIN = LLMPredictionFragment("<think>", 1, False, "reasoningStartTag", is_structural=True)
DETAILS = llm.PromptProcessingDetails(
    cached_token_count=0,
    total_prompt_token_count=9,
    processed_prompt_token_count=9,
    unprocessed_prompt_token_count=0,
)
ERROR = SerializedError(
    title="Failed to parse tool call",
    cause="Unexpected token",
    suggestion="Try a model trained for tool use",
    error_data={"raw": "{"},
    display_data={"code": "generic.unknown"},
    stack="Error: ...",
    root_title="Failed to parse tool call",
)
MEMORY = EstimatedModelMemoryUsage(
    confidence="high",
    model_vram_bytes=4e8,
    context_vram_bytes=5e7,
    total_vram_bytes=4.5e8,
    model_bytes=4e8,
    context_bytes=5e7,
    total_bytes=4.5e8,
)


def model_endpoint_examples(
    ns: Any, info: Any, info_min: Any, instance: Any, instance_min: Any
) -> dict[str, dict[str, list[Any]]]:
    """Examples of the endpoints ``llm`` and ``embedding`` share, with that namespace's types."""
    other_domain = EMB_INSTANCE if ns is llm else LLM_INSTANCE
    return {
        "unloadModel": {
            "parameter": [
                UnloadModelParameter("qwen"),
                UnloadModelParameter("qwen", device_identifier=None),
                UnloadModelParameter("qwen", device_identifier="linked-device-1"),
            ]
        },
        "listLoaded": {"returns": [[], [instance, instance_min]]},
        "getModelInfo": {
            "parameter": [GetModelInfoParameter(s, s is SPEC_ANY) for s in SPECIFIERS],
            "returns": [instance, instance_min],
        },
        "getLoadConfig": {
            "parameter": [GetLoadConfigParameter(s) for s in SPECIFIERS],
            "returns": [KVConfig(), LOAD_CONFIG],
        },
        "getBasePredictionConfig": {
            "parameter": [
                GetBasePredictionConfigParameter(SPEC_QUERY),
                GetBasePredictionConfigParameter(SPEC_REF, ignore_server_session_config=True),
            ],
            "returns": [PREDICTION_CONFIG],
        },
        "getInstanceProcessingState": {
            "parameter": [
                GetInstanceProcessingStateParameter(SPEC_REF, True),
                GetInstanceProcessingStateParameter(SPEC_QUERY, False),
            ],
            "returns": [
                InstanceProcessingState("idle", 0),
                InstanceProcessingState("generating", 2),
            ],
        },
        "estimateModelUsage": {
            "parameter": [
                EstimateModelUsageParameter("qwen2.5-0.5b-instruct", STACK_LOAD),
                EstimateModelUsageParameter("qwen", STACK_EMPTY, device_identifier=None),
            ],
            "returns": [EstimatedResourcesUsage(MEMORY, True)],
        },
        "tokenize": {
            "parameter": [TokenizeParameter(SPEC_QUERY, "Hello world")],
            "returns": [TokenizeResult([9707, 1879]), TokenizeResult([])],
        },
        "countTokens": {
            "parameter": [CountTokensParameter(SPEC_REF, "")],
            "returns": [CountTokensResult(2)],
        },
        "loadModel": {
            "creationParameter": [
                LoadModelCreationParameter("qwen2.5-0.5b-instruct", STACK_EMPTY),
                LoadModelCreationParameter(
                    "qwen2.5-0.5b-instruct",
                    STACK_LOAD,
                    identifier="my-qwen",
                    device_identifier=None,
                    ttl_ms=3600000,
                ),
            ],
            "toClientPacket": [
                ns.LoadModelResolved(info),
                ns.LoadModelResolved(info_min, ambiguous=["a", "b"]),
                LoadModelProgress(0.5),
                ns.LoadModelSuccess(instance),
            ],
            "toServerPacket": [CancelPacket()],
        },
        "getOrLoad": {
            "creationParameter": [
                GetOrLoadCreationParameter("qwen2.5-0.5b-instruct", STACK_EMPTY),
                GetOrLoadCreationParameter(
                    PATH, STACK_LOAD, device_identifier="linked-device-1", load_ttl_ms=3600000
                ),
            ],
            "toClientPacket": [
                ns.GetOrLoadAlreadyLoaded(instance),
                ns.GetOrLoadStartLoading("qwen", info),
                GetOrLoadUnloadingOtherJITModel(other_domain),
                GetOrLoadUnloadingOtherJITModel(instance_min),
                GetOrLoadLoadProgress(1.0),
                ns.GetOrLoadLoadSuccess(instance_min),
            ],
            "toServerPacket": [CancelPacket()],
        },
    }


PREDICTION_PACKETS = [
    llm.PredictPromptProcessingProgress(0.25, DETAILS),
    llm.PredictFragment(FRAGMENT),
    llm.PredictFragment(FRAGMENT_MIN),
    llm.PredictSuccess(
        stats=STATS,
        model_info=LLM_INSTANCE,
        load_model_config=LOAD_CONFIG,
        prediction_config=PREDICTION_CONFIG,
    ),
    llm.PredictSuccess(
        stats=STATS_MIN,
        model_info=LLM_INSTANCE_MIN,
        load_model_config=KVConfig(),
        prediction_config=KVConfig(),
    ),
]
TOOL_PACKETS = [
    llm.PredictToolCallGenerationStart(),
    llm.PredictToolCallGenerationStart(tool_call_id="call_1"),
    llm.PredictToolCallGenerationNameReceived("add"),
    llm.PredictToolCallGenerationArgumentFragmentGenerated('{"a":123,'),
    llm.PredictToolCallGenerationEnd(TOOL_CALL, raw_content='{"a":123,"b":3210}'),
    llm.PredictToolCallGenerationEnd(TOOL_CALL_MIN),
    llm.PredictToolCallGenerationFailed(ERROR, raw_content="{"),
    llm.PredictToolCallGenerationFailed(SerializedError()),
]

LLM_EXAMPLES = {
    **model_endpoint_examples(llm, LLM_INFO, LLM_INFO_MIN, LLM_INSTANCE, LLM_INSTANCE_MIN),
    "predict": {
        "creationParameter": [
            llm.PredictCreationParameter(SPEC_QUERY, HISTORY_MIN, STACK_EMPTY),
            llm.PredictCreationParameter(
                SPEC_REF,
                HISTORY,
                STACK_PREDICT,
                fuzzy_preset_identifier="my preset",
                ignore_server_session_config=False,
            ),
        ],
        "toClientPacket": PREDICTION_PACKETS + TOOL_PACKETS,
        "toServerPacket": [CancelPacket()],
    },
    "completeRawText": {
        "creationParameter": [
            llm.CompleteRawTextCreationParameter(SPEC_QUERY, "Once upon a time", STACK_EMPTY),
            llm.CompleteRawTextCreationParameter(
                SPEC_FULL_QUERY,
                "",
                STACK_PREDICT,
                fuzzy_preset_identifier="p",
                ignore_server_session_config=True,
            ),
        ],
        "toClientPacket": PREDICTION_PACKETS,
        "toServerPacket": [CancelPacket()],
    },
    "applyPromptTemplate": {
        "parameter": [
            llm.ApplyPromptTemplateParameter(SPEC_QUERY, HISTORY_MIN, STACK_EMPTY),
            llm.ApplyPromptTemplateParameter(
                SPEC_REF,
                HISTORY,
                STACK_PREDICT,
                llm.ApplyPromptTemplateOpts(
                    omit_bos_token=True, omit_eos_token=False, tool_definitions=TOOLS
                ),
            ),
        ],
        "returns": [llm.ApplyPromptTemplateResult("<|im_start|>user\nHi<|im_end|>\n")],
    },
    "preloadDraftModel": {
        "parameter": [llm.PreloadDraftModelParameter(SPEC_REF, "qwen2.5-0.5b-draft")]
    },
}

EMBEDDING_EXAMPLES = {
    **model_endpoint_examples(embedding, EMB_INFO, EMB_INFO_MIN, EMB_INSTANCE, EMB_INSTANCE_MIN),
    "embedString": {
        "parameter": [embedding.EmbedStringParameter(SPEC_QUERY, "Hello world")],
        "returns": [embedding.EmbedStringResult([0.25, -1.5, 0.0])],
    },
}

SYSTEM_EXAMPLES: dict[str, dict[str, list[Any]]] = {
    "listDownloadedModels": {"returns": [[], [LLM_INFO, EMB_INFO, LLM_INFO_MIN]]},
    "listDownloadedModelVariants": {
        "parameter": [system.ListDownloadedModelVariantsParameter("qwen2.5-0.5b-instruct")],
        "returns": [[LLM_INFO, LLM_INFO_MIN]],
    },
    "notify": {
        "parameter": [
            system.NotifyParameter("Done"),
            system.NotifyParameter("Done", description="It worked", no_auto_dismiss=True),
        ]
    },
    "version": {"returns": [system.VersionResult("0.4.0", 12)]},
    "setExperimentFlag": {"parameter": [system.SetExperimentFlagParameter("newThing", True)]},
    "getExperimentFlags": {"returns": [[], ["newThing"]]},
    "startHttpServer": {
        "parameter": [
            system.StartHttpServerParameter(),
            system.StartHttpServerParameter(port=1234, cors=True, network_interface="0.0.0.0"),
        ]
    },
    "stopHttpServer": {},
    "info": {"returns": [system.SystemInfo(4242, False, "0.4.0")]},
    "requestShutdown": {},
    "alive": {},
}

DIAGNOSTICS_EXAMPLES = {
    "streamLogs": {
        "toClientPacket": [
            diagnostics.StreamLogsLog(
                diagnostics.DiagnosticsLogEvent(
                    1760000000000.0,
                    diagnostics.LLMPredictionInputLog("<|user|>Hi", PATH, "qwen"),
                )
            ),
            diagnostics.StreamLogsLog(
                diagnostics.DiagnosticsLogEvent(
                    1760000000001, diagnostics.LLMPredictionOutputLog("Hello", "qwen")
                )
            ),
            diagnostics.StreamLogsLog(
                diagnostics.DiagnosticsLogEvent(
                    1, diagnostics.LLMPredictionOutputLog("Hello", "qwen", stats=STATS)
                )
            ),
            diagnostics.StreamLogsLog(
                diagnostics.DiagnosticsLogEvent(2, diagnostics.ServerLog("listening", "info"))
            ),
            diagnostics.StreamLogsLog(
                diagnostics.DiagnosticsLogEvent(
                    3,
                    diagnostics.RuntimeLog(
                        level="warn",
                        message="slow",
                        engine_name="llama.cpp",
                        engine_version="1.2.3",
                        engine_type="llm",
                    ),
                )
            ),
            diagnostics.StreamLogsLog(
                diagnostics.DiagnosticsLogEvent(
                    4,
                    diagnostics.RuntimeLog(
                        level="error",
                        message="crash",
                        engine_name="llama.cpp",
                        engine_version="1.2.3",
                        engine_type="llm",
                        model_identifier="qwen",
                        instance_reference="ref-qwen",
                        pid=99,
                    ),
                )
            ),
        ],
        "toServerPacket": [StopPacket()],
    }
}

PARSER = files.DocumentParsingLibraryIdentifier("builtin", "1.0.0")
FILES_EXAMPLES = {
    "getLocalFileAbsolutePath": {
        "parameter": [files.GetLocalFileAbsolutePathParameter("file-1")],
        "returns": [files.GetLocalFileAbsolutePathResult("/tmp/files/file-1")],
    },
    "uploadFileBase64": {
        "parameter": [files.UploadFileBase64Parameter("cat.png", "aGVsbG8=")],
        "returns": [files.UploadFileBase64Result("file-1", "image", 5)],
    },
    "getDocumentParsingLibrary": {
        "parameter": [files.GetDocumentParsingLibraryParameter("file-1")],
        "returns": [PARSER],
    },
    "retrieve": {
        "creationParameter": [
            files.RetrieveCreationParameter("cats", ["file-1"]),
            files.RetrieveCreationParameter(
                "cats", [], kv_config_from_dict({"retrieval.limit": 3})
            ),
        ],
        "toClientPacket": [
            files.RetrieveOnFileProcessList([0, 1]),
            files.RetrieveOnFileProcessingStart(0),
            files.RetrieveOnFileProcessingStepStart(0, "loading"),
            files.RetrieveOnFileProcessingStepProgress(0, "embedding", 0.5),
            files.RetrieveOnFileProcessingStepEnd(0, "chunking"),
            files.RetrieveOnFileProcessingEnd(0),
            files.RetrieveOnSearchingStart(),
            files.RetrieveOnSearchingEnd(),
            files.RetrieveResult(files.RetrievalResult([])),
            files.RetrieveResult(
                files.RetrievalResult(
                    [
                        files.RetrievalResultEntry("cats purr", 0.9, 0),
                        files.RetrievalResultEntry(
                            "cats nap", 0.5, 1, page_number=(1, 2), line_number=7
                        ),
                    ]
                )
            ),
        ],
        "toServerPacket": [StopPacket()],
    },
    "parseDocument": {
        "creationParameter": [
            files.ParseDocumentCreationParameter("file-1"),
            files.ParseDocumentCreationParameter("file-1", files.DocumentParsingOpts(PARSER)),
        ],
        "toClientPacket": [
            files.ParseDocumentParserLoaded(PARSER),
            files.ParseDocumentProgress(0.5),
            files.ParseDocumentResult("# Title", PARSER),
        ],
        "toServerPacket": [CancelPacket()],
    },
}

R = repository
PLAN = R.ArtifactDownloadPlan(
    nodes=[
        R.ArtifactDownloadPlanArtifactNode(
            owner="lmstudio", name="my-plugin", state="pending", dependency_nodes=[1]
        ),
        R.ArtifactDownloadPlanArtifactNode(
            owner="lmstudio",
            name="qwen2.5",
            state="satisfied",
            dependency_nodes=[],
            artifact_type="model",
            size_bytes=10,
        ),
        R.ArtifactDownloadPlanModelNode(state="fetching", dependency_label="main model"),
        R.ArtifactDownloadPlanModelNode(
            state="completed",
            dependency_label="main model",
            resolved_sources=1,
            total_sources=2,
            already_owned=R.ArtifactDownloadPlanModelInfo(
                display_name="Qwen", size_bytes=10, compatibility_type="gguf"
            ),
            selected=R.ArtifactDownloadPlanModelInfo(
                display_name="Qwen",
                size_bytes=10,
                compatibility_type="gguf",
                quant_name="Q4_K_M",
                model_key="qwen",
            ),
            download_options=[
                R.ArtifactDownloadPlanDownloadOption(
                    display_name="Qwen Q4",
                    size_bytes=10,
                    compatibility_type="gguf",
                    fit_estimation="fullGPUOffload",
                    availability="downloaded",
                ),
                R.ArtifactDownloadPlanDownloadOption(
                    display_name="Qwen Q8",
                    size_bytes=20,
                    compatibility_type="gguf",
                    fit_estimation="willNotFit",
                    availability="notDownloaded",
                    quant_name="Q8_0",
                    recommended=False,
                ),
            ],
            selected_download_option_index=None,
            recommended_download_option_index=0,
        ),
    ],
    download_size_bytes=20,
    download_action="startNewDownload",
    version=3,
)
DOWNLOAD_PACKETS = [
    R.DownloadProgress(R.DownloadProgressUpdate(100, 1000, 12.5)),
    R.DownloadStartFinalizing(),
]
HUB_LLM = R.HubModel(
    owner="qwen",
    name="qwen2.5",
    description="A model",
    downloads=1000,
    like_count=5,
    staff_picked_at=1760000000000,
    metadata=R.HubLLMMetadata(
        architectures=["qwen2"],
        compatibility_types=["gguf", "safetensors"],
        params_strings=["0.5B", "7B"],
        min_memory_usage_bytes=4e8,
        trained_for_tool_use=True,
        vision="mixed",
        reasoning=False,
        context_lengths=[32768],
    ),
)
HUB_EMBEDDING = R.HubModel(
    owner="nomic-ai",
    name="nomic-embed",
    description="Embeddings",
    downloads=10,
    like_count=0,
    metadata=R.HubEmbeddingModelMetadata(
        architectures=["nomic-bert"],
        compatibility_types=["gguf"],
        params_strings=["137M"],
        min_memory_usage_bytes=1e8,
        context_lengths=[2048],
    ),
)
REPOSITORY_EXAMPLES = {
    "searchModels": {
        "parameter": [
            R.SearchModelsParameter(),
            R.SearchModelsParameter(
                R.ModelSearchOpts(search_term="qwen", limit=25, compatibility_types=["gguf"])
            ),
        ],
        "returns": [
            R.SearchModelsResult([]),
            R.SearchModelsResult(
                [
                    R.ModelSearchResultEntry("Qwen", R.CatalogSearchResultIdentifier("qwen")),
                    R.ModelSearchResultEntry(
                        "Qwen GGUF",
                        R.HFSearchResultIdentifier("Qwen/Qwen2.5-GGUF"),
                        exact=True,
                        staff_pick=False,
                    ),
                ]
            ),
        ],
    },
    "getModelDownloadOptions": {
        "parameter": [
            R.GetModelDownloadOptionsParameter(R.HFSearchResultIdentifier("Qwen/Qwen2.5-GGUF"))
        ],
        "returns": [
            R.GetModelDownloadOptionsResult(
                [
                    R.ModelDownloadOption(
                        name="qwen2.5-q4_k_m.gguf",
                        size_bytes=397807936,
                        fit_estimation="fullGPUOffload",
                        download_identifier="Qwen/Qwen2.5-GGUF/qwen2.5-q4_k_m.gguf",
                        indexed_model_identifier="Qwen/Qwen2.5-GGUF/qwen2.5-q4_k_m.gguf",
                        compatibility_type="gguf",
                        quantization="Q4_K_M",
                        recommended=True,
                    ),
                    R.ModelDownloadOption(
                        name="x.gguf",
                        size_bytes=1,
                        fit_estimation="willNotFit",
                        download_identifier="x",
                        indexed_model_identifier="x",
                        compatibility_type="gguf",
                    ),
                ]
            )
        ],
    },
    "installPluginDependencies": {
        "parameter": [R.InstallPluginDependenciesParameter("/plugins/p")]
    },
    "getLocalArtifactFiles": {
        "parameter": [R.GetLocalArtifactFilesParameter("/plugins/p")],
        "returns": [
            R.GetLocalArtifactFilesResult(
                R.LocalArtifactFileList([R.LocalArtifactFileEntry("manifest.json", 120)], None)
            ),
            R.GetLocalArtifactFilesResult(R.LocalArtifactFileList([], ".lmsignore")),
        ],
    },
    "getWritableArtifactOwners": {"returns": [R.GetWritableArtifactOwnersResult(["me", "my-org"])]},
    "isAuthenticated": {"returns": [R.IsAuthenticatedResult(False)]},
    "getAuthenticationStatus": {
        "returns": [
            R.GetAuthenticationStatusResult(R.NoAuthenticationStatus()),
            R.GetAuthenticationStatusResult(R.LoggedInUserAuthenticationStatus("me")),
            R.GetAuthenticationStatusResult(R.ComputeDeviceAuthenticationStatus("org", True)),
        ]
    },
    "deauthenticate": {},
    "loginAsComputeDevice": {
        "parameter": [R.LoginAsComputeDeviceParameter("token-123")],
        "returns": [R.ComputeDeviceAuthenticationStatus("me", False)],
    },
    "loginWithPreAuthenticatedKeys": {
        "parameter": [R.LoginWithPreAuthenticatedKeysParameter("k1", "pub", "priv")],
        "returns": [R.LoginWithPreAuthenticatedKeysResult("me")],
    },
    "installLocalPlugin": {"parameter": [R.InstallLocalPluginParameter("/plugins/p")]},
    "getModelCatalog": {
        "returns": [R.GetModelCatalogResult([]), R.GetModelCatalogResult([HUB_LLM, HUB_EMBEDDING])]
    },
    "fuzzyFindStaffPicks": {
        "parameter": [
            R.FuzzyFindStaffPicksParameter(),
            R.FuzzyFindStaffPicksParameter(
                search_term="qwen", limit=100, compatibility_types=["mlx_placeholder"]
            ),
        ],
        "returns": [
            R.FuzzyFindStaffPicksResult(
                [
                    R.StaffPick(
                        owner="qwen",
                        name="qwen2.5",
                        revision_number=2,
                        created_at_timestamp=1760000000000,
                        description="A model",
                        exact=False,
                    )
                ]
            )
        ],
    },
    "lmLinkStatus": {
        "returns": [
            R.LmLinkStatusResult(
                status="offline",
                issues=["notLoggedIn"],
                peers=[],
                device_identifier=None,
                device_name="laptop",
            ),
            R.LmLinkStatusResult(
                status="online",
                issues=[],
                peers=[R.LmLinkPeer("dev-2", "desktop", "connected")],
                device_identifier="dev-1",
                device_name="laptop",
                preferred_device_identifier="dev-2",
                reconnect_in_seconds=0,
                last_error=R.LmLinkLastError("timeout", 1760000000000),
            ),
        ]
    },
    "lmLinkSetDisabled": {"parameter": [R.LmLinkSetDisabledParameter(True)]},
    "lmLinkUpdateDeviceName": {"parameter": [R.LmLinkUpdateDeviceNameParameter("laptop")]},
    "lmLinkSetPreferredDevice": {"parameter": [R.LmLinkSetPreferredDeviceParameter("dev-2")]},
    "downloadModel": {
        "creationParameter": [R.DownloadModelCreationParameter("Qwen/Qwen2.5-GGUF/q4.gguf")],
        "toClientPacket": [*DOWNLOAD_PACKETS, R.DownloadModelSuccess("qwen2.5-0.5b-instruct")],
        "toServerPacket": [CancelPacket()],
    },
    "downloadArtifact": {
        "creationParameter": [
            R.DownloadArtifactCreationParameter("lmstudio", "my-plugin", None, "/plugins"),
            R.DownloadArtifactCreationParameter("lmstudio", "qwen2.5", 3, "/models"),
        ],
        "toClientPacket": [*DOWNLOAD_PACKETS, R.DownloadSuccess()],
        "toServerPacket": [CancelPacket()],
    },
    "pushArtifact": {
        "creationParameter": [
            R.PushArtifactCreationParameter("/plugins/p"),
            R.PushArtifactCreationParameter(
                "/plugins/p",
                description="My plugin",
                make_private=True,
                write_revision=False,
                overrides={"name": "x"},
            ),
        ],
        "toClientPacket": [R.PushArtifactMessage("Uploading...")],
    },
    "ensureAuthenticated": {
        "toClientPacket": [
            R.EnsureAuthenticatedAuthenticationCode(
                "ABCD-1234", "https://lmstudio.ai/activate", "https://lmstudio.ai/activate?c=1"
            ),
            R.EnsureAuthenticatedAuthenticated(),
        ]
    },
    "createDownloadPlan": {
        "creationParameter": [
            R.CreateDownloadPlanCreationParameter(
                R.ArtifactDownloadTarget("lmstudio", "my-plugin")
            ),
            R.CreateDownloadPlanCreationParameter(
                R.ModelDownloadTarget(R.HuggingFaceModelDownloadSource("Qwen", "Qwen2.5-GGUF")),
                R.CreateDownloadPlanOpts(
                    resolution_preference=[
                        R.FileNamePreference("qwen2.5-q4_k_m.gguf"),
                        R.QuantNamePreference("Q4_K_M"),
                    ],
                    compatibility_types=["gguf"],
                ),
            ),
            R.CreateDownloadPlanCreationParameter(
                R.ModelDownloadTarget(R.HuggingFaceModelDownloadSource("Qwen", "Qwen2.5-GGUF")),
                R.CreateDownloadPlanOpts(),
            ),
        ],
        "toClientPacket": [
            R.CreateDownloadPlanPlanUpdated(PLAN),
            R.CreateDownloadPlanPlanReady(
                R.ArtifactDownloadPlan(
                    nodes=[],
                    download_size_bytes=0,
                    download_action="none",
                    version=1,
                    download_job_identifier="job-1",
                )
            ),
            *DOWNLOAD_PACKETS,
            R.DownloadSuccess(),
        ],
        "toServerPacket": [
            R.CreateDownloadPlanSetSelectedDownloadOptionIndex(3, 1, 2),
            R.CreateDownloadPlanSetSelectedDownloadOptionIndex(3, None, 2),
            R.CreateDownloadPlanCommit(),
            R.CreateDownloadPlanCancelDownload(),
            R.CreateDownloadPlanCancelPlan(),
        ],
    },
}

EXAMPLES: dict[str, dict[str, dict[str, list[Any]]]] = {
    "llm": LLM_EXAMPLES,
    "embedding": EMBEDDING_EXAMPLES,
    "system": SYSTEM_EXAMPLES,
    "diagnostics": DIAGNOSTICS_EXAMPLES,
    "files": FILES_EXAMPLES,
    "repository": REPOSITORY_EXAMPLES,
}


def example_parts() -> list[Any]:
    """One test case per non-void part of every endpoint in the schema."""
    cases = []
    for namespace, name, kind in SCHEMA_ENDPOINTS:
        for part, part_schema in endpoint_parts(namespace, name, kind).items():
            if not is_void(part_schema):
                cases.append(
                    pytest.param(namespace, name, kind, part, id=f"{namespace}.{name}.{part}")
                )
    return cases


# --------------------------------------------------------------------------------------
# The registry against the schema
# --------------------------------------------------------------------------------------


def test_registry_has_exactly_the_schema_endpoints() -> None:
    ours = {
        (namespace, name, spec.kind)
        for namespace, specs in ENDPOINTS.items()
        for name, spec in specs.items()
    }
    expected = set(SCHEMA_ENDPOINTS)
    assert sorted(expected - ours) == [], "endpoints in the schema that we do not model"
    assert sorted(ours - expected) == [], "endpoints we model that the schema does not have"
    assert len(expected) == 66  # guards against reading the wrong part of the schema


def _upper_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_specs_are_module_constants_named_after_the_endpoint(namespace: str) -> None:
    module = NAMESPACE_MODULES[namespace]
    for name, spec in ENDPOINTS[namespace].items():
        assert (spec.namespace, spec.name) == (namespace, name)
        assert getattr(module, _upper_snake(name)) is spec


@pytest.mark.parametrize(("namespace", "name", "kind"), SCHEMA_ENDPOINTS)
def test_void_parts_match_the_schema(namespace: str, name: str, kind: str) -> None:
    """``None`` in a spec exactly where the schema has no value (the key is left out)."""
    spec = ENDPOINTS[namespace][name]
    parts = endpoint_parts(namespace, name, kind)
    names = ("parameter", "returns") if kind == "rpc" else ("creationParameter", "toServerPacket")
    for part in names:
        declared = part in parts and not is_void(parts[part])
        assert (spec_type(spec, part) is not None) == declared, part
    if kind == "channel" and "toClientPacket" not in parts:
        assert spec_type(spec, "toClientPacket") is Unknown  # nothing expected, keep anything


EXPECTED_CANCEL = {
    ("llm", "predict"): "cancel",
    ("llm", "completeRawText"): "cancel",
    ("llm", "loadModel"): "cancel",
    ("llm", "getOrLoad"): "cancel",
    ("embedding", "loadModel"): "cancel",
    ("embedding", "getOrLoad"): "cancel",
    ("repository", "downloadModel"): "cancel",
    ("repository", "downloadArtifact"): "cancel",
    ("repository", "createDownloadPlan"): "cancelPlan",
    ("files", "parseDocument"): "cancel",
    ("files", "retrieve"): "stop",
    ("diagnostics", "streamLogs"): "stop",
}


@pytest.mark.parametrize(
    ("namespace", "name"), [(ns, n) for ns, n, kind in SCHEMA_ENDPOINTS if kind == "channel"]
)
def test_cancel_packets(namespace: str, name: str) -> None:
    spec = ENDPOINTS[namespace][name]
    assert isinstance(spec, ChannelSpec)
    expected = EXPECTED_CANCEL.get((namespace, name))
    if expected is None:
        assert spec.cancel_packet is None
        return
    raw = unstructure(spec.cancel_packet, spec.to_server)
    assert raw == {"type": expected}
    assert_valid(raw, LMS_URI, part_definition(namespace, name, "channel", "toServerPacket"))


def test_llm_and_embedding_have_their_own_specs() -> None:
    for name in ENDPOINTS["embedding"].keys() & ENDPOINTS["llm"].keys():
        assert ENDPOINTS["llm"][name] is not ENDPOINTS["embedding"][name]
    assert ENDPOINTS["llm"]["listLoaded"].result == list[LLMInstanceInfo]
    assert ENDPOINTS["embedding"]["listLoaded"].result == list[EmbeddingModelInstanceInfo]
    assert ENDPOINTS["llm"]["getModelInfo"].result == LLMInstanceInfo | None


# --------------------------------------------------------------------------------------
# Payloads built through our classes validate against the endpoint schemas
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("namespace", "name", "kind", "part"), example_parts())
def test_examples_validate_against_the_schema(
    namespace: str, name: str, kind: str, part: str
) -> None:
    examples = EXAMPLES[namespace].get(name, {}).get(part, [])
    assert examples, f"add examples of {namespace}.{name} {part} to EXAMPLES"
    tp = spec_type(ENDPOINTS[namespace][name], part)
    for example in examples:
        raw = unstructure(example, tp)
        assert_valid(raw, LMS_URI, part_definition(namespace, name, kind, part))
        # The example is a value of the spec's type: it decodes back to the same JSON
        # (KV values such as Checkbox come back as plain JSON, hence no == on objects).
        assert unstructure(structure(loads(dumps(raw)), tp), tp) == raw


def test_examples_cover_both_set_and_unset_optional_fields() -> None:
    """Over all examples, every optional field of every class is seen set and left out."""
    seen: dict[tuple[type, str], set[bool]] = {}

    def visit(value: Any) -> None:
        if isinstance(value, list | tuple):
            for item in value:
                visit(item)
        elif attrs.has(type(value)):
            for field in attrs.fields(type(value)):
                item = getattr(value, field.name)
                if field.default is UNSET:
                    seen.setdefault((type(value), field.name), set()).add(item is UNSET)
                visit(item)

    for endpoints in EXAMPLES.values():
        for parts in endpoints.values():
            for examples in parts.values():
                visit(examples)
    one_sided = sorted(
        f"{cls.__name__}.{field}"
        for (cls, field), states in seen.items()
        if len(states) < 2 and (_owner(cls, field), to_camel(field)) not in DRIFT_FIELDS
    )
    assert one_sided == []


# --------------------------------------------------------------------------------------
# Our classes against the schema, field by field
# --------------------------------------------------------------------------------------

# Required by the current schema, optional in our classes so that servers following the
# July-2025 schema still decode (PROTOCOL.md 12, item 9). Anything else required must be
# required in our classes too.
DRIFT_FIELDS = {
    (shared.ModelInfoBase, "publisher"),
    (shared.ModelInfoBase, "indexedModelIdentifier"),
    (shared.ModelInfoBase, "deviceIdentifier"),
    (LLMInstanceInfo, "ttlMs"),
    (LLMInstanceInfo, "lastUsedTime"),
    (EmbeddingModelInstanceInfo, "ttlMs"),
    (EmbeddingModelInstanceInfo, "lastUsedTime"),
    (LLMPredictionFragment, "isStructural"),
    (llm.PredictPromptProcessingProgress, "details"),
    (repository.ModelDownloadOption, "compatibilityType"),
}

JSON_TYPES = {str: {"string"}, bool: {"boolean"}, int: {"integer", "number"}, float: {"number"}}


def _json_types(node: dict[str, Any]) -> set[str] | None:
    """The JSON types a schema node allows, or ``None`` for "anything"."""
    if "type" in node:
        declared = node["type"]
        return set(declared) if isinstance(declared, list) else {declared}
    values = [node["const"]] if "const" in node else node.get("enum")
    if values is not None:
        names = {bool: "boolean", str: "string", int: "integer", float: "number"}
        return {names[type(v)] for v in values}
    if "anyOf" in node:
        found: set[str] = set()
        for variant in node["anyOf"]:
            inner = _json_types(deref(variant))
            if inner is None:
                return None
            found |= inner
        return found
    return None


def _variants(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The alternatives of a node, without ``null`` and "absent" (``not {}``)."""
    if "anyOf" in node:
        alternatives = [deref(v) for v in node["anyOf"]]
        return [v for v in alternatives if v != {"not": {}} and v.get("type") != "null"]
    if isinstance(node.get("type"), list) and "null" in node["type"]:
        rest = [t for t in node["type"] if t != "null"]
        return [{**node, "type": rest[0] if len(rest) == 1 else rest}]
    return [node]


def _tag_field(cls: type) -> attrs.Attribute[Any] | None:
    for field in attrs.fields(cls):
        if not field.init and field.name in ("type", "role"):
            return field
    return None


def _union_members(tp: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(tp) in (Union, types.UnionType):
        return typing.get_args(tp)
    return None


def _owner(cls: type, field_name: str) -> type:
    """The class (``cls`` or a base) that declares a field."""
    return next(c for c in cls.__mro__ if field_name in vars(c).get("__annotations__", {}))


class SchemaWalk:
    """Compare a wire type with a schema node, recursively; collect the classes reached."""

    def __init__(self) -> None:
        self.visited: set[type] = set()

    def walk(self, tp: Any, node: Any, path: str) -> None:
        node = deref(node)
        members = _union_members(tp)
        if members is not None:
            self._walk_union(members, node, path)
        elif attrs.has(tp):
            self._walk_class(tp, node, path)
        elif tp is Any:
            pass
        elif typing.get_origin(tp) is list:
            assert _json_types(node) in ({"array"}, None), path
            (item,) = typing.get_args(tp)
            self.walk(item, node.get("items", {}), f"{path}[]")
        elif typing.get_origin(tp) is tuple:
            assert node.get("type") == "array", path
            for index, (item, item_node) in enumerate(
                zip(typing.get_args(tp), node["items"], strict=True)
            ):
                self.walk(item, item_node, f"{path}[{index}]")
        elif typing.get_origin(tp) is dict:
            assert _json_types(node) in ({"object"}, None), path
        elif typing.get_origin(tp) is Literal:
            allowed = [node["const"]] if "const" in node else node.get("enum")
            assert allowed is not None, path
            assert set(typing.get_args(tp)) <= set(allowed), path
        else:
            allowed = _json_types(node)
            assert allowed is None or JSON_TYPES[tp] & allowed, f"{path}: {tp} vs {allowed}"

    def _walk_union(self, members: tuple[Any, ...], node: dict[str, Any], path: str) -> None:
        real = [m for m in members if m not in (UnsetType, type(None))]
        if type(None) in members:
            allowed = _json_types(node)
            nullable = allowed is None or "null" in allowed or {"not": {}} in node.get("anyOf", [])
            assert nullable, f"{path}: we allow null, the schema does not"
        variants = _variants(node)
        if len(real) == 1:
            self.walk(real[0], variants[0] if len(variants) == 1 else node, path)
            return
        classes = [m for m in real if attrs.has(m) and m is not Unknown]
        if not classes:  # a union of JSON scalars, e.g. int | tuple[int, int]
            for member in real:
                assert any(self._fits(member, v) for v in variants), f"{path}: {member}"
            return
        assert Unknown in real, f"{path}: a tagged union needs Unknown for newer servers"
        by_tag = {}
        for variant in variants:
            tag = next(k for k in ("type", "role") if k in variant.get("properties", {}))
            by_tag[deref(variant["properties"][tag])["const"]] = variant
        ours = {}
        for cls in classes:
            tag_field = _tag_field(cls)
            assert tag_field is not None, f"{path}: {cls.__name__} has no tag field"
            ours[tag_of(cls, tag_field.name)] = cls
        assert sorted(ours) == sorted(by_tag), f"{path}: variants differ"
        for tag, cls in ours.items():
            self.walk(cls, by_tag[tag], f"{path}<{tag}>")

    def _fits(self, member: Any, node: dict[str, Any]) -> bool:
        try:
            self.walk(member, node, "")
        except AssertionError:
            return False
        return True

    def _walk_class(self, cls: type, node: dict[str, Any], path: str) -> None:
        self.visited.add(cls)
        variants = _variants(node)
        if len(variants) > 1 or "anyOf" in node:
            tag_field = _tag_field(cls)
            assert tag_field is not None, f"{path}: {cls.__name__} vs a union"
            tag = tag_of(cls, tag_field.name)
            matching = [
                v
                for v in variants
                if deref(v.get("properties", {}).get(tag_field.name, {})).get("const") == tag
            ]
            assert len(matching) == 1, f"{path}: no variant {tag!r} for {cls.__name__}"
            node = matching[0]
        properties = node.get("properties")
        assert properties is not None, f"{path}: {cls.__name__} vs a non-object schema"
        required = set(node.get("required", []))
        hints = wire_type_hints(cls)
        fields = {to_camel(f.name): f for f in attrs.fields(cls)}
        extra = sorted(set(fields) - set(properties))
        assert extra == [], f"{path}: {cls.__name__} fields not in the schema: {extra}"
        missing = sorted(required - set(fields))
        assert missing == [], f"{path}: {cls.__name__} lacks required {missing}"
        for camel, field in fields.items():
            where = f"{path}.{camel}"
            if camel in required and field.default is UNSET:
                assert (_owner(cls, field.name), camel) in DRIFT_FIELDS, (
                    f"{where}: required, but optional here"
                )
            if not field.init:  # the tag must be the schema's constant
                assert deref(properties[camel]).get("const") == field.default, where
            self.walk(hints[field.name], properties[camel], where)


def _walk_endpoint(walk: SchemaWalk, namespace: str, name: str, kind: str) -> None:
    spec = ENDPOINTS[namespace][name]
    for part, part_schema in endpoint_parts(namespace, name, kind).items():
        tp = spec_type(spec, part)
        if tp is not None and not is_void(part_schema):
            walk.walk(tp, part_schema, f"{namespace}.{name}.{part}")


@pytest.mark.parametrize(("namespace", "name", "kind"), SCHEMA_ENDPOINTS)
def test_classes_match_the_schema(namespace: str, name: str, kind: str) -> None:
    _walk_endpoint(SchemaWalk(), namespace, name, kind)


def _wire_classes() -> set[type]:
    modules = [shared, *NAMESPACE_MODULES.values(), kv]
    return {
        value
        for module in modules
        for value in vars(module).values()
        if isinstance(value, type) and attrs.has(value) and value.__module__ == module.__name__
    }


def test_every_wire_class_is_reached_from_an_endpoint() -> None:
    # ModelInfoBase is only a base class; Checkbox is a KV value (see test_kv.py).
    walk = SchemaWalk()
    for endpoint in SCHEMA_ENDPOINTS:
        _walk_endpoint(walk, *endpoint)
    unreached = _wire_classes() - walk.visited - {shared.ModelInfoBase, Checkbox}
    assert sorted(c.__name__ for c in unreached) == []


def test_layer_names_are_the_schema_enum() -> None:
    assert list(kv.LAYER_NAMES) == DEFS["kvConfigLayerName"]["enum"]


# --------------------------------------------------------------------------------------
# Whole frames from the client session
# --------------------------------------------------------------------------------------


def _open_session() -> ClientSession:
    session = ClientSession("guest:schema-test", "passkey")
    session.start()
    session.receive_text('{"success":true}')
    return session


def _frame(text: str) -> dict[str, Any]:
    frame: dict[str, Any] = loads(text)
    assert_valid(frame, ENVELOPE_URI, "clientToServerMessage")
    return frame


def outbound_cases() -> list[Any]:
    return [
        pytest.param(namespace, name, kind, id=f"{namespace}.{name}")
        for namespace, name, kind in SCHEMA_ENDPOINTS
    ]


@pytest.mark.parametrize(("namespace", "name", "kind"), outbound_cases())
def test_client_session_frames_validate(namespace: str, name: str, kind: str) -> None:
    spec = ENDPOINTS[namespace][name]
    examples = EXAMPLES[namespace].get(name, {})
    if isinstance(spec, RpcSpec):
        for parameter in examples.get("parameter", [UNSET]):
            _, text = _open_session().call(spec, parameter)
            frame = _frame(text)
            assert (frame["type"], frame["endpoint"]) == ("rpcCall", name)
            if parameter is UNSET:
                assert "parameter" not in frame  # void: left out, never null
            else:
                assert_valid(
                    frame["parameter"], LMS_URI, part_definition(namespace, name, kind, "parameter")
                )
        return
    for creation in examples.get("creationParameter", [UNSET]):
        session = _open_session()
        channel_id, text = session.open_channel(spec, creation)
        frame = _frame(text)
        assert (frame["type"], frame["endpoint"]) == ("channelCreate", name)
        if creation is UNSET:
            assert "creationParameter" not in frame
        else:
            definition = part_definition(namespace, name, kind, "creationParameter")
            assert_valid(frame["creationParameter"], LMS_URI, definition)
        definition = part_definition(namespace, name, kind, "toServerPacket")
        for packet in examples.get("toServerPacket", []):
            frame = _frame(session.send_packet(channel_id, packet))
            assert frame["channelId"] == channel_id
            assert_valid(frame["message"], LMS_URI, definition)
        cancel = session.cancel_channel(channel_id)
        assert (cancel is None) == (spec.cancel_packet is None)
        if cancel is not None:
            assert_valid(_frame(cancel)["message"], LMS_URI, definition)
