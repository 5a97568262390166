"""Every frame the server sends in a scripted session validates against the current schema.

The session touches every namespace and most endpoints, successes and failures alike. Each
received frame is validated whole: the envelope against ``js-head-envelope.json``, the
payload against its endpoint in ``js-head-lms.json`` (the endpoint is known from the call or
channel id). ``additionalProperties: false`` is an export artifact and is dropped first
(tests/schemas/SOURCES.md); ``$ref``s to definitions whose names contain ``/`` are rewritten
as proper JSON pointers, and ``\\p{L}\\p{N}`` patterns approximated with ``\\w``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from _server_helpers import (
    EMBEDDING,
    LLM,
    REASONING,
    SLOW,
    TOOLS,
    TestClient,
    chat,
    connect,
    get_or_load,
    query,
    scripted_test_models,
    stack,
)
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from lmstudio_sdk.protocol.endpoints import diagnostics, embedding, files, llm, repository, system
from lmstudio_sdk.protocol.endpoints.embedding import EmbedStringParameter
from lmstudio_sdk.protocol.endpoints.files import (
    GetLocalFileAbsolutePathParameter,
    ParseDocumentCreationParameter,
    UploadFileBase64Parameter,
)
from lmstudio_sdk.protocol.endpoints.llm import (
    ApplyPromptTemplateParameter,
    CompleteRawTextCreationParameter,
    PredictCreationParameter,
    PredictFragment,
)
from lmstudio_sdk.protocol.endpoints.repository import (
    DownloadModelCreationParameter,
    GetModelDownloadOptionsParameter,
    ModelSearchOpts,
    SearchModelsParameter,
)
from lmstudio_sdk.protocol.endpoints.shared import (
    CountTokensParameter,
    EstimateModelUsageParameter,
    GetBasePredictionConfigParameter,
    GetInstanceProcessingStateParameter,
    GetLoadConfigParameter,
    GetModelInfoParameter,
    LoadModelCreationParameter,
    TokenizeParameter,
    UnloadModelParameter,
)
from lmstudio_sdk.protocol.endpoints.system import (
    ListDownloadedModelVariantsParameter,
    NotifyParameter,
    SetExperimentFlagParameter,
)
from lmstudio_sdk.server import BackgroundServer, Faults, Script, ScriptedToolCall, scripted_model

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
LMS_URI = "urn:lms"
ENVELOPE_URI = "urn:envelope"
TOOL_SETTING = {
    "type": "toolArray",
    "tools": [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}],
}


def _prepare(schema: dict[str, Any]) -> dict[str, Any]:
    names = set(schema.get("definitions", {}))

    def rewrite_ref(ref: str) -> str:
        prefix = "#/definitions/"
        if not ref.startswith(prefix):
            return ref
        parts = ref[len(prefix) :].split("/")
        for end in range(len(parts), 0, -1):  # the longest prefix that names a definition
            name = "/".join(parts[:end])
            if name in names:
                escaped = name.replace("~", "~0").replace("/", "~1")
                return prefix + "/".join([escaped, *parts[end:]])
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

    return clean(schema)  # type: ignore[no-any-return]


def _load(name: str) -> dict[str, Any]:
    return _prepare(json.loads((SCHEMAS / name).read_text(encoding="utf-8")))


LMS = _load("js-head-lms.json")
ENVELOPE = _load("js-head-envelope.json")
REGISTRY: Registry[Any] = Registry().with_resources(
    [
        (LMS_URI, Resource.from_contents(LMS, default_specification=DRAFT7)),
        (ENVELOPE_URI, Resource.from_contents(ENVELOPE, default_specification=DRAFT7)),
    ]
)
_validators: dict[tuple[str, str], jsonschema.Draft7Validator] = {}


def validate(uri: str, definition: str, value: Any, where: str) -> None:
    key = (uri, definition)
    if key not in _validators:
        pointer = definition.replace("~", "~0").replace("/", "~1")
        _validators[key] = jsonschema.Draft7Validator(
            {"$ref": f"{uri}#/definitions/{pointer}"}, registry=REGISTRY
        )
    errors = sorted(_validators[key].iter_errors(value), key=lambda e: list(e.path))
    assert not errors, f"{where}: {definition}: " + "; ".join(
        f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message[:300]}" for e in errors[:5]
    )


def validate_frames(client: TestClient) -> int:
    """Validate every frame a test client received; returns how many payloads were checked."""
    namespace = client.session.namespace
    assert client.frames, "no frames"
    validate(ENVELOPE_URI, "wsAuthenticationResult", json.loads(client.frames[0]), "auth reply")
    payloads = 0
    for index, text in enumerate(client.frames[1:], 1):
        frame = json.loads(text)  # also proves the frame is JSON (no NaN/Infinity)
        where = f"/{namespace} frame {index} {text[:120]}"
        validate(ENVELOPE_URI, "serverToClientMessage", frame, where)
        kind = frame["type"]
        if kind == "rpcResult":
            spec = client.endpoint_of_call[frame["callId"]]
            if "result" in frame:
                validate(LMS_URI, f"{namespace}/rpc/{spec.name}/returns", frame["result"], where)
                payloads += 1
            else:
                assert spec.result is None or spec.name == "getModelInfo", f"{where}: no result"
        elif kind == "channelSend":
            spec = client.endpoint_of_channel[frame["channelId"]]
            validate(
                LMS_URI, f"{namespace}/channel/{spec.name}/toClientPacket", frame["message"], where
            )
            payloads += 1
        elif kind in ("rpcError", "channelError"):
            display = frame["error"].get("displayData")
            if display is not None:
                validate(LMS_URI, "errorDisplayData", display, where)
            payloads += 1
    return payloads


async def _predict(client: TestClient, model: str, config: dict[str, Any] | None = None) -> int:
    return await client.open(
        llm.PREDICT,
        PredictCreationParameter(
            model_specifier=query(model),
            history=chat("2+2?"),
            prediction_config_stack=stack(config),
        ),
    )


async def test_every_frame_of_a_scripted_session_matches_the_schema(
    server_factory: Callable[..., BackgroundServer],
) -> None:
    server = server_factory(
        models=[
            *scripted_test_models(),
            scripted_model(
                "bad-tools",
                script=Script(tool_calls=(ScriptedToolCall(name="add", malformed=True),)),
            ),
            scripted_model(
                "fails", faults=Faults(error="Scripted failure", error_after_fragments=1)
            ),
        ]
    )
    identity = ("guest:schema-session", "schema-passkey")
    async with (
        connect(server, "system", identity) as sys_client,
        connect(server, "llm", identity) as llm_client,
        connect(server, "embedding", identity) as emb_client,
        connect(server, "diagnostics", identity) as diag_client,
        connect(server, "files", identity) as files_client,
        connect(server, "repository", identity) as repo_client,
    ):
        logs = await diag_client.open(diagnostics.STREAM_LOGS)

        # system
        await sys_client.result(system.LIST_DOWNLOADED_MODELS)
        await sys_client.result(system.VERSION)
        await sys_client.result(system.INFO)
        await sys_client.result(system.NOTIFY, NotifyParameter("Hi"))
        await sys_client.result(
            system.LIST_DOWNLOADED_MODEL_VARIANTS, ListDownloadedModelVariantsParameter(LLM)
        )
        await sys_client.result(system.SET_EXPERIMENT_FLAG, SetExperimentFlagParameter("x", True))
        await sys_client.result(system.GET_EXPERIMENT_FLAGS)
        await sys_client.send(
            json.dumps({"type": "rpcCall", "endpoint": "unknownThing", "callId": 99})
        )

        # llm: model management
        await llm_client.result(llm.LIST_LOADED)
        await llm_client.call(llm.GET_MODEL_INFO, GetModelInfoParameter(query(), False))
        await llm_client.call(llm.GET_MODEL_INFO, GetModelInfoParameter(query(LLM), True))
        for model in (LLM, REASONING, TOOLS, SLOW, "bad-tools", "fails"):
            await get_or_load(llm_client, model, load_ttl_ms=3_600_000)
        await get_or_load(llm_client, LLM)  # alreadyLoaded
        channel = await llm_client.open(
            llm.LOAD_MODEL,
            LoadModelCreationParameter(
                model_key=LLM, identifier="second", load_config_stack=stack()
            ),
        )
        await llm_client.until_end(channel)
        await llm_client.until_end(
            await llm_client.open(
                llm.LOAD_MODEL,
                LoadModelCreationParameter(model_key="missing", load_config_stack=stack()),
            )
        )
        await llm_client.result(llm.GET_MODEL_INFO, GetModelInfoParameter(query(LLM), True))
        await llm_client.result(llm.GET_LOAD_CONFIG, GetLoadConfigParameter(query(LLM)))
        await llm_client.result(
            llm.GET_BASE_PREDICTION_CONFIG, GetBasePredictionConfigParameter(query(LLM))
        )
        await llm_client.result(
            llm.GET_INSTANCE_PROCESSING_STATE, GetInstanceProcessingStateParameter(query(LLM), True)
        )
        await llm_client.result(
            llm.ESTIMATE_MODEL_USAGE,
            EstimateModelUsageParameter(model_key=LLM, load_config_stack=stack()),
        )
        await llm_client.result(
            llm.APPLY_PROMPT_TEMPLATE, ApplyPromptTemplateParameter(query(LLM), chat("Hi"), stack())
        )
        await llm_client.result(llm.TOKENIZE, TokenizeParameter(query(LLM), "Hello there"))
        await llm_client.result(llm.COUNT_TOKENS, CountTokensParameter(query(LLM), "Hello there"))

        # llm: predictions of every shape
        for model, config in (
            (LLM, {"llm.prediction.maxPredictedTokens": {"checked": True, "value": 4}}),
            (LLM, {"llm.prediction.stopStrings": ["am"]}),
            (
                LLM,
                {
                    "llm.prediction.structured": {
                        "type": "json",
                        "jsonSchema": {"type": "object", "properties": {"a": {"type": "number"}}},
                    }
                },
            ),
            (REASONING, None),
            (TOOLS, {"llm.prediction.tools": TOOL_SETTING}),
            ("bad-tools", {"llm.prediction.tools": TOOL_SETTING}),
            ("fails", None),
            ("no-such-model", None),
            (LLM, {"llm.prediction.temperature": "hot"}),
        ):
            await llm_client.until_end(await _predict(llm_client, model, config))
        channel = await _predict(llm_client, SLOW)
        while not isinstance(await llm_client.next_on(channel), PredictFragment):
            pass
        await llm_client.cancel(channel)
        await llm_client.until_end(channel)
        await llm_client.until_end(
            await llm_client.open(
                llm.COMPLETE_RAW_TEXT,
                CompleteRawTextCreationParameter(query(LLM), "Once", stack()),
            )
        )
        await llm_client.call(llm.UNLOAD_MODEL, UnloadModelParameter("second"))
        await llm_client.call(llm.UNLOAD_MODEL, UnloadModelParameter("second"))

        # embedding
        await get_or_load(emb_client, EMBEDDING)
        await emb_client.result(embedding.LIST_LOADED)
        await emb_client.result(
            embedding.EMBED_STRING, EmbedStringParameter(query(EMBEDDING), "hello")
        )
        await emb_client.result(embedding.TOKENIZE, TokenizeParameter(query(EMBEDDING), "hello"))
        await emb_client.result(
            embedding.COUNT_TOKENS, CountTokensParameter(query(EMBEDDING), "hello")
        )
        await emb_client.result(embedding.GET_LOAD_CONFIG, GetLoadConfigParameter(query(EMBEDDING)))
        await emb_client.result(embedding.GET_MODEL_INFO, GetModelInfoParameter(query(), True))

        # files
        upload = await files_client.result(
            files.UPLOAD_FILE_BASE64,
            UploadFileBase64Parameter("a.txt", base64.b64encode(b"text").decode()),
        )
        await files_client.result(
            files.GET_LOCAL_FILE_ABSOLUTE_PATH, GetLocalFileAbsolutePathParameter(upload.identifier)
        )
        await files_client.call(
            files.GET_LOCAL_FILE_ABSOLUTE_PATH, GetLocalFileAbsolutePathParameter("nope")
        )
        await files_client.until_end(
            await files_client.open(
                files.PARSE_DOCUMENT, ParseDocumentCreationParameter(upload.identifier)
            )
        )

        # repository
        found = await repo_client.result(
            repository.SEARCH_MODELS, SearchModelsParameter(ModelSearchOpts(search_term="scripted"))
        )
        options = await repo_client.result(
            repository.GET_MODEL_DOWNLOAD_OPTIONS,
            GetModelDownloadOptionsParameter(found.results[0].identifier),
        )
        await repo_client.until_end(
            await repo_client.open(
                repository.DOWNLOAD_MODEL,
                DownloadModelCreationParameter(options.results[0].download_identifier),
            )
        )

        # diagnostics: every prediction above was logged; stop ends the stream.
        await diag_client.cancel(logs)
        await diag_client.until_end(logs)
        await sys_client.result(system.VERSION)  # the warning for unknownThing came before this

        counts = {
            client.session.namespace: validate_frames(client)
            for client in (
                sys_client,
                llm_client,
                emb_client,
                diag_client,
                files_client,
                repo_client,
            )
        }
    # Sanity: the session really exercised every namespace.
    assert all(counts.values()), counts
    assert counts["llm"] > 100
    frames = [json.loads(f) for f in llm_client.frames[1:]]
    kinds = {f.get("message", {}).get("type") for f in frames if f["type"] == "channelSend"}
    assert {
        "fragment",
        "promptProcessingProgress",
        "success",
        "toolCallGenerationEnd",
        "toolCallGenerationFailed",
        "startLoading",
        "loadProgress",
        "loadSuccess",
        "alreadyLoaded",
        "resolved",
        "progress",
    } <= kinds
    assert {f["type"] for f in frames} >= {
        "rpcResult",
        "rpcError",
        "channelSend",
        "channelClose",
        "channelError",
    }
    assert any(f["type"] == "communicationWarning" for f in map(json.loads, sys_client.frames[1:]))


def test_the_validation_rejects_what_newer_clients_drop() -> None:
    fragment = {"content": "a", "tokensCount": 1, "containsDrafted": False, "reasoningType": "none"}
    packet = {"type": "fragment", "fragment": fragment}
    with pytest.raises(AssertionError):
        validate(LMS_URI, "llm/channel/predict/toClientPacket", packet, "no isStructural")
    validate(
        LMS_URI,
        "llm/channel/predict/toClientPacket",
        {**packet, "fragment": {**fragment, "isStructural": False}},
        "ok",
    )
    with pytest.raises(AssertionError):
        validate(ENVELOPE_URI, "serverToClientMessage", {"type": "rpcResult"}, "no callId")
