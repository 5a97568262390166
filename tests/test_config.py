"""Prediction and load configs: user input, checks, and the KV configs they become.

Every option we support is checked against the protocol's own catalogue of KV keys
(``tests/schemas/js-head-kv-config-keys.json``): its key must exist there and every value we
send for it must validate against that key's value schema.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

import attrs
import jsonschema
import pytest

from lmstudio_sdk.config import (
    LOAD_OPTIONS,
    PREDICTION_OPTIONS,
    GpuSetting,
    LoadModelConfig,
    LoadOptions,
    PredictionConfig,
    PredictionOptions,
    UnknownOptionError,
    load_config_from,
    load_config_from_kv,
    load_config_stack,
    load_config_to_kv,
    prediction_config_from,
    prediction_config_from_kv,
    prediction_stack,
    to_kv_config,
)
from lmstudio_sdk.protocol.codec import structure, unstructure
from lmstudio_sdk.protocol.kv import KVConfig, KVConfigField, KVConfigLayer, KVConfigStack

SCHEMAS = Path(__file__).parent / "schemas"
KV_KEYS: dict[str, Any] = json.loads((SCHEMAS / "js-head-kv-config-keys.json").read_text())["keys"]


def _lenient(schema: Any) -> Any:
    """Drop ``additionalProperties: false`` (an export artifact, PROTOCOL.md section 8)."""
    if isinstance(schema, dict):
        return {
            k: _lenient(v)
            for k, v in schema.items()
            if not (k == "additionalProperties" and v is False)
        }
    if isinstance(schema, list):
        return [_lenient(v) for v in schema]
    return schema


def _definition_validator(name: str) -> jsonschema.Draft7Validator:
    lms = json.loads((SCHEMAS / "js-head-lms.json").read_text())
    schema = {"$ref": f"#/definitions/{name}", "definitions": _lenient(lms["definitions"])}
    return jsonschema.Draft7Validator(schema)


def wire(kv: KVConfig) -> dict[str, Any]:
    """The JSON ``{key: value}`` of a config, as it goes on the wire."""
    return {f["key"]: f["value"] for f in unstructure(kv)["fields"]}


@dataclasses.dataclass
class Answer:
    text: str


# Values for every option; each list covers the plain form and, for checkbox options, False.
PREDICTION_SAMPLES: dict[str, list[Any]] = {
    "temperature": [0, 0.7],
    "max_tokens": [1, 64, -1, False],
    "stop_strings": [["\n\n", "END"], []],
    "tool_call_stop_strings": [["</tool>"]],
    "context_overflow_policy": ["stopAtLimit", "truncateMiddle", "rollingWindow"],
    "structured": [
        {"type": "object", "properties": {"a": {"type": "integer"}}},
        Answer,
        {"type": "gbnf", "gbnfGrammar": 'root ::= "yes" | "no"'},
        {"type": "none"},
    ],
    "raw_tools": [
        {"type": "none"},
        {
            "type": "toolArray",
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "add",
                        "description": "Add two numbers",
                        "parameters": {
                            "type": "object",
                            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                            "required": ["a", "b"],
                        },
                    },
                }
            ],
        },
    ],
    "tool_choice": ["auto", "none", "required", {"type": "generic", "mode": "required"}],
    "tool_naming": ["passThrough", "snakeCase"],
    "top_k_sampling": [40, -1],
    "top_p_sampling": [0.9, False],
    "min_p_sampling": [0.05, False],
    "repeat_penalty": [1.1, False],
    "presence_penalty": [0.5, False],
    "xtc_probability": [0.5, False],
    "xtc_threshold": [0.1, False],
    "log_probs": [5, False],
    "cpu_threads": [4],
    "enable_thinking": [True, False],
    "reasoning_budget": [0, 512, False],
    "reasoning_parsing": [
        {"enabled": True, "startString": "<think>", "endString": "</think>"},
        {"enabled": False, "start_string": "<r>", "end_string": "</r>"},
    ],
    "prompt_template": [
        "{% for m in messages %}{{ m['content'] }}{% endfor %}",
        {
            "type": "manual",
            "manualPromptTemplate": {
                "beforeSystem": "S: ",
                "afterSystem": "\n",
                "beforeUser": "U: ",
                "afterUser": "\n",
                "beforeAssistant": "A: ",
                "afterAssistant": "\n",
            },
            "stopStrings": ["U:"],
        },
    ],
    "draft_model": ["qwen2.5-0.5b-instruct"],
    "speculative_decoding_num_draft_tokens_exact": [2],
    "speculative_decoding_min_draft_length_to_consider": [0],
    "speculative_decoding_min_continue_drafting_probability": [0.75],
    "user_max_image_dimension_pixels": [1024, False],
    "ignore_model_preferred_max_image_dimension": [True],
    "seed": [42, -1, False],
    "system_prompt": ["Be brief."],
}

LOAD_SAMPLES: dict[str, list[Any]] = {
    "context_length": [4096],
    "gpu": [0.5, "max", "off", {"ratio": 1, "mainGpu": 0}, GpuSetting(disabled_gpus=[1])],
    "gpu_strict_vram_cap": [True],
    "max_parallel_predictions": [4],
    "use_unified_kv_cache": [False],
    "offload_kv_cache_to_gpu": [True],
    "num_experts": [2],
    "seed": [7, False],
    "prompt_template": [
        "{{ messages }}",
        {"type": "jinja", "jinjaPromptTemplate": {"template": "x"}},
    ],
    "eval_batch_size": [512],
    "physical_batch_size": [256],
    "flash_attention": [True],
    "context_checkpoints": [8],
    "keep_model_in_memory": [False],
    "use_fp16_for_kv_cache": [True],
    "try_mmap": [False],
    "try_direct_io": [True],
    "reasoning_budget_message": ["Stop thinking now."],
    "rope_frequency_base": [10000.0, False],
    "rope_frequency_scale": [0.5, False],
    "llama_k_cache_quantization_type": ["q8_0", False],
    "llama_v_cache_quantization_type": ["q4_0", False],
    "speculative_draft_model": ["draft"],
    "speculative_draft_max_tokens": [4],
    "speculative_draft_min_tokens": [1],
    "speculative_draft_min_continue_probability": [0.5],
    "speculative_draft_mtp": [True],
    "speculative_draft_simple": [False],
    "mlx_disk_cache": [True],
    "mlx_kv_cache_quantization": [
        {"enabled": True, "bits": 4, "groupSize": 64, "quantizedStart": 0},
        False,
    ],
}

EMBEDDING_LOAD_OPTIONS = {
    "context_length",
    "gpu",
    "gpu_strict_vram_cap",
    "seed",
    "eval_batch_size",
    "keep_model_in_memory",
    "try_mmap",
    "rope_frequency_base",
    "rope_frequency_scale",
}


def _options(cls: type) -> set[str]:
    return {f.name for f in attrs.fields(cls)} - {"raw"}


def test_every_option_has_samples() -> None:
    # A new option without samples would escape the schema checks below.
    assert set(PREDICTION_SAMPLES) == _options(PredictionConfig)
    assert set(LOAD_SAMPLES) == _options(LoadModelConfig)


def _validate_against_catalogue(fields: dict[str, Any]) -> None:
    assert fields, "nothing was encoded"
    for key, value in fields.items():
        assert key in KV_KEYS, f"{key} is not a KV key of the protocol"
        jsonschema.validate(value, _lenient(KV_KEYS[key]["valueSchema"]))


@pytest.mark.parametrize(
    ("name", "value"),
    [(name, value) for name, values in PREDICTION_SAMPLES.items() for value in values],
)
def test_prediction_option_key_and_value_match_the_protocol(name: str, value: Any) -> None:
    fields = wire(to_kv_config(PredictionConfig(**{name: value})))
    assert len(fields) == 1
    _validate_against_catalogue(fields)


@pytest.mark.parametrize(
    ("name", "value"),
    [(name, value) for name, values in LOAD_SAMPLES.items() for value in values],
)
def test_llm_load_option_keys_and_values_match_the_protocol(name: str, value: Any) -> None:
    fields = wire(load_config_to_kv(LoadModelConfig(**{name: value}), "llm"))
    _validate_against_catalogue(fields)
    assert all(k.startswith(("llm.load.", "load.")) for k in fields)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (name, value)
        for name, values in LOAD_SAMPLES.items()
        if name in EMBEDDING_LOAD_OPTIONS
        for value in values
    ],
)
def test_embedding_load_option_keys_and_values_match_the_protocol(name: str, value: Any) -> None:
    fields = wire(load_config_to_kv(LoadModelConfig(**{name: value}), "embedding"))
    _validate_against_catalogue(fields)
    assert all(k.startswith(("embedding.load.", "load.")) for k in fields)
    for key in fields:
        assert any(s.startswith("embedding") for s in KV_KEYS[key]["includedIn"])


@pytest.mark.parametrize("name", sorted(set(LOAD_SAMPLES) - EMBEDDING_LOAD_OPTIONS))
def test_llm_only_load_options_are_refused_for_embedding_models(name: str) -> None:
    cfg = LoadModelConfig(**{name: LOAD_SAMPLES[name][0]})
    with pytest.raises(ValueError, match=name):
        load_config_to_kv(cfg, "embedding")


def test_checkbox_encodings() -> None:
    fields = wire(
        to_kv_config(
            PredictionConfig(
                max_tokens=64, top_p_sampling=False, seed=3, reasoning_budget=False, temperature=0.2
            )
        )
    )
    assert fields == {
        "llm.prediction.temperature": 0.2,
        "llm.prediction.maxPredictedTokens": {"checked": True, "value": 64},
        "llm.prediction.topPSampling": {"checked": False, "value": 0.95},
        "llm.prediction.reasoning.budgetTokens": {"checked": False, "value": 1024},
        "llm.prediction.seed": {"checked": True, "value": 3},
    }


@pytest.mark.parametrize("unlimited", [-1, False])
def test_unlimited_max_tokens_is_an_unchecked_box(unlimited: Any) -> None:
    fields = wire(to_kv_config(PredictionConfig(max_tokens=unlimited)))
    assert fields == {"llm.prediction.maxPredictedTokens": {"checked": False, "value": 1}}


def test_load_checkbox_encodings() -> None:
    fields = wire(
        load_config_to_kv(
            LoadModelConfig(
                seed=False, rope_frequency_base=10000, llama_k_cache_quantization_type="q8_0"
            )
        )
    )
    assert fields == {
        "llm.load.seed": {"checked": False, "value": -1},
        "llm.load.llama.ropeFrequencyBase": {"checked": True, "value": 10000},
        "llm.load.llama.kCacheQuantizationType": {"checked": True, "value": "q8_0"},
    }


def test_dict_input_accepts_both_key_styles() -> None:
    camel = prediction_config_from(
        {"maxTokens": 64, "topKSampling": 20, "stopStrings": ["x"], "toolCallStopStrings": ["y"]}
    )
    snake = prediction_config_from(
        {
            "max_tokens": 64,
            "top_k_sampling": 20,
            "stop_strings": ["x"],
            "tool_call_stop_strings": ["y"],
        }
    )
    assert (
        camel
        == snake
        == PredictionConfig(
            max_tokens=64, top_k_sampling=20, stop_strings=("x",), tool_call_stop_strings=("y",)
        )
    )
    assert load_config_from({"contextLength": 4096, "gpu": {"ratio": 0.5, "mainGpu": 1}}) == (
        LoadModelConfig(context_length=4096, gpu=GpuSetting(ratio=0.5, main_gpu=1))
    )


def test_keywords_win_over_the_config() -> None:
    cfg = prediction_config_from({"maxTokens": 64, "temperature": 0.1}, max_tokens=8)
    assert (cfg.max_tokens, cfg.temperature) == (8, 0.1)
    again = prediction_config_from(cfg, temperature=0.9)
    assert (again.max_tokens, again.temperature) == (8, 0.9)
    assert prediction_config_from() == PredictionConfig()


def test_raw_dicts_are_merged_and_keywords_win() -> None:
    cfg = prediction_config_from(
        {"raw": {"llm.prediction.llama.frequencyPenalty": {"checked": True, "value": 0.1}}},
        raw={"llm.prediction.contextPrefill": []},
    )
    assert cfg.raw == {
        "llm.prediction.llama.frequencyPenalty": {"checked": True, "value": 0.1},
        "llm.prediction.contextPrefill": [],
    }


def test_an_option_given_twice_in_one_dict_is_an_error() -> None:
    with pytest.raises(ValueError, match="given twice"):
        prediction_config_from({"maxTokens": 1, "max_tokens": 2})


@pytest.mark.parametrize(
    ("given", "suggestion"),
    [
        ("maxToken", "max_tokens"),
        ("max_token", "max_tokens"),
        ("temprature", "temperature"),
        ("topP", "top_p_sampling"),
    ],
)
def test_unknown_option_names_it_and_suggests_the_closest(given: str, suggestion: str) -> None:
    with pytest.raises(ValueError, match=rf"unknown prediction option '{given}'") as info:
        prediction_config_from({given: 1})
    assert repr(suggestion) in str(info.value)
    with pytest.raises(ValueError, match=given):
        prediction_config_from(**{given: 1})


def test_unknown_load_option_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"unknown load option 'contextLenght'.*context_length"):
        load_config_from({"contextLenght": 4096})


def test_an_unknown_keyword_option_is_a_type_error_that_is_also_a_value_error() -> None:
    # TypeError is Python's error for an unexpected keyword; ValueError is what this SDK
    # raised before, so code catching either keeps working.
    with pytest.raises(TypeError, match=r"did you mean 'max_tokens'\?") as info:
        prediction_config_from(max_token=5)  # type: ignore[call-arg]
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, UnknownOptionError)
    with pytest.raises(TypeError, match=r"did you mean 'context_length'\?"):
        load_config_from(context_lenght=5)  # type: ignore[call-arg]


def _hints_without_none(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {
        name: {arg for arg in typing.get_args(hint) or (hint,) if arg is not type(None)}
        for name, hint in hints.items()
    }


@pytest.mark.parametrize(
    ("table", "options", "config"),
    [
        (PREDICTION_OPTIONS, PredictionOptions, PredictionConfig),
        (LOAD_OPTIONS, LoadOptions, LoadModelConfig),
    ],
)
def test_each_option_is_declared_once_and_the_typed_views_agree(
    table: Any, options: Any, config: Any
) -> None:
    """The option table, the keyword-option TypedDict and the config class name the same
    options, and the TypedDict and class give each the same type."""
    fields = {f.name for f in attrs.fields(config)}
    extra = {"raw", "gpu"}  # not KV options of their own: raw is the escape hatch, gpu a group
    assert set(table) == fields - extra
    assert set(options.__annotations__) == fields
    typed, declared = _hints_without_none(options), _hints_without_none(config)
    for name in fields - extra - {"stop_strings", "tool_call_stop_strings"}:
        assert typed[name] == declared[name], name


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_tokens": 0}, r"max_tokens must be an integer >= 1.*False or -1"),
        ({"max_tokens": -2}, "max_tokens"),
        ({"max_tokens": 1.5}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"temperature": -0.1}, r"temperature must be a number >= 0"),
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_p_sampling": 1.5}, r"top_p_sampling must be a number from 0 to 1"),
        ({"min_p_sampling": -0.1}, "min_p_sampling"),
        ({"log_probs": 101}, "log_probs"),
        ({"top_k_sampling": 501}, "top_k_sampling"),
        ({"cpu_threads": 0}, "cpu_threads"),
        ({"stop_strings": "END"}, r"stop_strings must be a list of strings"),
        ({"stop_strings": [""]}, "non-empty"),
        ({"context_overflow_policy": "drop"}, r"'stopAtLimit', 'truncateMiddle'"),
        ({"tool_choice": "maybe"}, "tool_choice"),
        ({"tool_naming": "kebab"}, "tool_naming"),
        ({"structured": {"type": "object", "default": {1, 2}}}, "JSON-serialisable"),
        ({"structured": {"type": 5}}, "not a valid JSON schema"),
        ({"structured": 42}, "response_format must be"),
        ({"raw_tools": {"type": "tools"}}, "raw_tools"),
        ({"reasoning_parsing": {"enabled": True}}, "startString"),
        ({"prompt_template": {"type": "jinja"}}, "jinjaPromptTemplate"),
        ({"enable_thinking": "yes"}, "enable_thinking must be True or False"),
        ({"raw": {"temperature": 1}}, "full KV keys"),
        ({"raw": {"llm.prediction.x": object()}}, r"raw\['llm.prediction.x'\] must be JSON"),
        ({"seed": -2}, "seed"),
    ],
)
def test_invalid_values_raise_value_error_saying_what_is_allowed(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        prediction_config_from(**options)
    with pytest.raises(ValueError, match=message):
        PredictionConfig(**options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"context_length": 0}, "context_length"),
        ({"gpu": 1.5}, r"gpu must be a number from 0 to 1, 'max' or 'off'"),
        ({"gpu": {"ratio": 0.5, "mainGPU": 0}}, "unknown key 'mainGPU'"),
        ({"gpu": {"split_strategy": "random"}}, "split_strategy"),
        ({"max_parallel_predictions": 0}, "max_parallel_predictions"),
        ({"llama_k_cache_quantization_type": "q3"}, "q8_0"),
        ({"mlx_kv_cache_quantization": {"enabled": True, "bits": 5}}, "bits"),
    ],
)
def test_invalid_load_values_raise_value_error(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_config_from(**options)


def test_a_config_of_the_wrong_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="PredictionConfig or a dict"):
        prediction_config_from(LoadModelConfig())  # type: ignore[arg-type]


def test_raw_goes_under_the_typed_options() -> None:
    cfg = PredictionConfig(
        temperature=0.5,
        raw={
            "llm.prediction.temperature": 0.9,
            "llm.prediction.llama.mirostatSampling": {
                "version": 2,
                "learningRate": 0.1,
                "targetEntropy": 5,
            },
        },
    )
    kv = to_kv_config(cfg)
    assert [f.key for f in kv.fields].count("llm.prediction.temperature") == 1
    assert wire(kv) == {
        "llm.prediction.llama.mirostatSampling": {
            "version": 2,
            "learningRate": 0.1,
            "targetEntropy": 5,
        },
        "llm.prediction.temperature": 0.5,
    }


def test_raw_accepts_a_kv_config() -> None:
    raw = KVConfig([KVConfigField("llm.prediction.contextPrefill", [])])
    assert PredictionConfig(raw=raw).raw == {"llm.prediction.contextPrefill": []}
    json_form = {"fields": [{"key": "llm.prediction.contextPrefill", "value": []}]}
    assert prediction_config_from(raw=json_form).raw == {"llm.prediction.contextPrefill": []}


def test_structured_classes_become_json_schema_settings() -> None:
    value = wire(to_kv_config(PredictionConfig(structured=Answer)))["llm.prediction.structured"]
    assert value["type"] == "json"
    assert value["jsonSchema"]["required"] == ["text"]


def test_prediction_stack_is_one_api_override_layer_then_extra_layers() -> None:
    cfg = PredictionConfig(temperature=0.2, max_tokens=64)
    stack = prediction_stack(cfg)
    assert [layer.layer_name for layer in stack.layers] == ["apiOverride"]
    assert stack.layers[0].config == to_kv_config(cfg)
    extra = KVConfigLayer(
        "completeModeFormatting",
        KVConfig([KVConfigField("llm.prediction.promptTemplate", {"type": "jinja"})]),
    )
    with_extra = prediction_stack(cfg, extra_layers=[extra])
    assert [layer.layer_name for layer in with_extra.layers] == [
        "apiOverride",
        "completeModeFormatting",
    ]
    _definition_validator("kvConfigStack").validate(unstructure(with_extra))


def test_load_stack_is_one_api_override_layer() -> None:
    stack = load_config_stack(LoadModelConfig(context_length=2048), "embedding")
    assert unstructure(stack) == {
        "layers": [
            {
                "layerName": "apiOverride",
                "config": {"fields": [{"key": "embedding.load.contextLength", "value": 2048}]},
            }
        ]
    }
    empty = unstructure(load_config_stack(LoadModelConfig()))
    assert empty == {"layers": [{"layerName": "apiOverride", "config": {"fields": []}}]}
    _definition_validator("kvConfigStack").validate(empty)


def test_a_bare_gpu_ratio_does_not_reset_the_split() -> None:
    assert wire(load_config_to_kv(LoadModelConfig(gpu=0.5))) == {
        "llm.load.llama.acceleration.offloadRatio": 0.5
    }
    fields = wire(load_config_to_kv(LoadModelConfig(gpu={"main_gpu": 1, "disabled_gpus": [2]})))
    assert fields == {
        "load.gpuSplitConfig": {
            "strategy": "priorityOrder",
            "disabledGpus": [2],
            "priority": [1],
            "customRatio": [],
        }
    }


def test_speculative_draft_selectors_clear_the_sidecar_modes() -> None:
    fields = wire(load_config_to_kv(LoadModelConfig(speculative_draft_model="draft")))
    prefix = "llm.load.llama.speculativeDecoding."
    assert fields == {
        prefix + "draftModel": "draft",
        prefix + "draftDflashSidecar": False,
        prefix + "draftDsparkSidecar": False,
        prefix + "draftMtpSidecar": False,
    }


def test_prediction_config_round_trips_through_kv() -> None:
    cfg = PredictionConfig(
        temperature=0.3,
        max_tokens=False,
        top_p_sampling=0.9,
        min_p_sampling=False,
        stop_strings=["END"],
        tool_choice={"type": "generic", "mode": "required"},
        seed=5,
        system_prompt="hi",
        raw={"llm.prediction.contextPrefill": []},
    )
    # Through JSON, as the server's ``success`` packet carries it.
    kv = structure(json.loads(json.dumps(unstructure(to_kv_config(cfg)))), KVConfig)
    assert prediction_config_from_kv(kv) == cfg


def test_reading_a_server_config_keeps_unknown_keys_and_bad_values_raw() -> None:
    kv = structure(
        {
            "fields": [
                {"key": "llm.prediction.temperature", "value": 0.8},
                {
                    "key": "llm.prediction.maxPredictedTokens",
                    "value": {"checked": False, "value": 1000},
                },
                {"key": "llm.prediction.topPSampling", "value": "weird"},
                {"key": "llm.prediction.someFutureKey", "value": {"x": 1}},
                {"key": "llm.prediction.tools", "value": {"type": "none"}},
            ]
        },
        KVConfig,
    )
    cfg = prediction_config_from_kv(kv)
    assert cfg.temperature == 0.8
    assert cfg.max_tokens is False
    assert cfg.top_p_sampling is None
    assert cfg.raw_tools == {"type": "none"}
    assert cfg.raw == {
        "llm.prediction.topPSampling": "weird",
        "llm.prediction.someFutureKey": {"x": 1},
    }
    # What we read can be sent back: it reads the same again.
    assert prediction_config_from_kv(to_kv_config(cfg)) == cfg


def test_load_config_round_trips_through_kv() -> None:
    cfg = LoadModelConfig(
        context_length=4096,
        gpu=GpuSetting(ratio=0.5, main_gpu=1, split_strategy="favorMainGpu", disabled_gpus=[0]),
        seed=False,
        flash_attention=True,
        llama_v_cache_quantization_type="q8_0",
        offload_kv_cache_to_gpu=True,
    )
    kv = structure(json.loads(json.dumps(unstructure(load_config_to_kv(cfg)))), KVConfig)
    assert load_config_from_kv(kv) == cfg


def test_reading_an_embedding_load_config() -> None:
    kv = KVConfig(
        [
            KVConfigField("embedding.load.contextLength", 512),
            KVConfigField("embedding.load.llama.acceleration.offloadRatio", "max"),
            KVConfigField(
                "load.gpuSplitConfig",
                {"strategy": "custom", "disabledGpus": [], "priority": [], "customRatio": [1]},
            ),
        ]
    )
    cfg = load_config_from_kv(kv, "embedding")
    assert cfg.context_length == 512
    # A custom split has no GpuSetting form: the GPU settings stay raw, as sent.
    assert cfg.gpu is None
    assert cfg.raw["embedding.load.llama.acceleration.offloadRatio"] == "max"
    assert cfg.raw["load.gpuSplitConfig"]["strategy"] == "custom"


def test_configs_are_immutable() -> None:
    cfg = PredictionConfig(temperature=0.1)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        cfg.temperature = 0.2  # type: ignore[misc]


def test_the_kv_config_stack_wire_class_is_used() -> None:
    stack = prediction_stack(PredictionConfig(max_tokens=3))
    assert isinstance(stack, KVConfigStack)
    assert isinstance(stack.layers[0].config, KVConfig)
