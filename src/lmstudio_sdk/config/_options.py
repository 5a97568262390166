"""The one declaration of every config option: its name, KV key(s), value check, and
whether it is a checkbox, for prediction (``PREDICTION_OPTIONS``) and load
(``LOAD_OPTIONS``).

The client builds and reads configs from these tables; the typed ``PredictionOptions`` /
``LoadOptions`` dicts and the config classes are checked against them (tests/test_config.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from .._structured import response_format
from ..errors import LMStudioProtocolError
from ..protocol.kv import Checkbox
from ._checks import (
    Check,
    _boolean,
    _integer,
    _json_value,
    _number,
    _one_of,
    _one_of_numbers,
    _or_false,
    _shape,
    _string,
    _string_list,
)

# --- option tables ---------------------------------------------------------------------


@attrs.frozen
class ConfigOption:
    """One SDK option: its KV key(s), check, and encoding both ways.

    ``keys`` maps a domain (``llm``, ``embedding``) to the KV key; a domain that is missing
    does not support the option. ``encode`` gets a checked value and returns the wire value;
    ``decode`` gets a wire value and returns the SDK value (raising on a value we cannot
    read, which then stays in ``raw``).
    """

    keys: Mapping[str, str]
    check: Check
    encode: Callable[[Any], Any] = lambda value: value
    decode: Callable[[Any], Any] = lambda value: value
    checkbox: bool = False
    """Sent as ``{"checked", "value"}``; ``False`` switches it off."""

    def read(self, name: str, wire_value: Any) -> Any:
        """The SDK value of a wire value (``False`` for an unchecked box).

        Raises ``ValueError`` saying what is wrong with it (a client reading a config
        back keeps such a value raw; the server refuses the request).
        """
        try:
            value = self.decode(wire_value)
        except (TypeError, AttributeError, KeyError, LMStudioProtocolError) as exc:
            raise ValueError(f"{name} cannot be read from {wire_value!r}: {exc}") from None
        self.check(name, value)
        return value


def _plain(key: str | Mapping[str, str], check: Check) -> ConfigOption:
    keys = {"llm": key} if isinstance(key, str) else key
    return ConfigOption(keys, check)


def _checkbox(
    key: str | Mapping[str, str],
    check: Check,
    placeholder: Any,
    *,
    off_values: tuple[Any, ...] = (),
) -> ConfigOption:
    """A ``{checked, value}`` option; ``False`` (and ``off_values``) send it unchecked.

    The value of an unchecked box is a placeholder the server ignores; it still has to pass
    the key's schema, hence per-key placeholders (the JS SDK's).
    """

    def encode(value: Any) -> Checkbox:
        if value is False or (value in off_values and not isinstance(value, bool)):
            return Checkbox(False, placeholder)
        return Checkbox(True, value)

    def decode(value: Any) -> Any:
        box = value if isinstance(value, Checkbox) else Checkbox.from_json(value)
        return box.to_setting()

    keys = {"llm": key} if isinstance(key, str) else key
    return ConfigOption(keys, _or_false(check, also=off_values), encode, decode, checkbox=True)


def _check_structured(name: str, value: Any) -> None:
    response_format(value)  # raises ValueError with the details


def _encode_structured(value: Any) -> Any:
    return response_format(value).setting


def _check_raw_tools(name: str, value: Any) -> None:
    tools = _json_value(name, value)
    if not isinstance(tools, dict) or tools.get("type") not in ("none", "toolArray"):
        raise ValueError(
            f"{name} must be {{'type': 'none'}} or {{'type': 'toolArray', 'tools': [...]}}, "
            f"got {value!r}"
        )
    for tool in tools.get("tools", []):
        if (
            not isinstance(tool, dict)
            or tool.get("type") != "function"
            or not isinstance(tool.get("function"), dict)
        ):
            raise ValueError(
                f"{name}: every tool must be {{'type': 'function', 'function': {{'name': ...}}}}, "
                f"got {tool!r}"
            )


_TOOL_CHOICE_MODES = ("none", "auto", "required")


def _tool_choice_value(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        _one_of(*_TOOL_CHOICE_MODES)(name, value)
        return {"type": "generic", "mode": value}
    return _shape(name, value, {"type": _one_of("generic"), "mode": _one_of(*_TOOL_CHOICE_MODES)})


def _reasoning_parsing_value(name: str, value: Any) -> dict[str, Any]:
    return _shape(name, value, {"enabled": _boolean, "startString": _string, "endString": _string})


_MANUAL_TEMPLATE_KEYS = (
    "beforeSystem",
    "afterSystem",
    "beforeUser",
    "afterUser",
    "beforeAssistant",
    "afterAssistant",
)


def _prompt_template_value(name: str, value: Any) -> dict[str, Any]:
    # A bare string is a Jinja template, the common case.
    if isinstance(value, str):
        return {"type": "jinja", "jinjaPromptTemplate": {"template": value}, "stopStrings": []}
    if isinstance(value, Mapping) and "stopStrings" not in value and "stop_strings" not in value:
        value = {**value, "stopStrings": []}  # required by the schema
    template = _shape(
        name,
        value,
        {"type": _one_of("manual", "jinja"), "stopStrings": _string_list},
        {
            "manualPromptTemplate": lambda n, v: _shape(
                n, v, dict.fromkeys(_MANUAL_TEMPLATE_KEYS, _string)
            ),
            "jinjaPromptTemplate": lambda n, v: _shape(n, v, {"template": _string}),
        },
    )
    wanted = "manualPromptTemplate" if template["type"] == "manual" else "jinjaPromptTemplate"
    if wanted not in template:
        raise ValueError(f"{name} of type {template['type']!r} needs {wanted!r}")
    return template


def _normalizing(
    value_of: Callable[[str, Any], Any],
    key: str,
    decode: Callable[[Any], Any] = lambda value: value,
) -> ConfigOption:
    """An option whose input is normalised (shortcuts, snake_case keys) by ``value_of``."""

    def check(name: str, value: Any) -> None:
        value_of(name, value)

    return ConfigOption({"llm": key}, check, lambda value: value_of(key, value), decode)


_P = "llm.prediction."

PREDICTION_OPTIONS: dict[str, ConfigOption] = {
    "temperature": _plain(_P + "temperature", _number(0)),
    "max_tokens": _checkbox(_P + "maxPredictedTokens", _integer(1), 1, off_values=(-1,)),
    "stop_strings": _plain(_P + "stopStrings", _string_list),
    "tool_call_stop_strings": _plain(_P + "toolCallStopStrings", _string_list),
    "context_overflow_policy": _plain(
        _P + "contextOverflowPolicy", _one_of("stopAtLimit", "truncateMiddle", "rollingWindow")
    ),
    "structured": ConfigOption({"llm": _P + "structured"}, _check_structured, _encode_structured),
    "raw_tools": ConfigOption(
        {"llm": _P + "tools"}, _check_raw_tools, lambda v: _json_value("raw_tools", v)
    ),
    "tool_choice": _normalizing(_tool_choice_value, _P + "toolChoice"),
    "tool_naming": _plain(
        _P + "toolNaming", _one_of("passThrough", "removeSpecial", "snakeCase", "camelCase")
    ),
    "top_k_sampling": _plain(_P + "topKSampling", _integer(-1, 500)),
    "top_p_sampling": _checkbox(_P + "topPSampling", _number(0, 1), 0.95),
    "min_p_sampling": _checkbox(_P + "minPSampling", _number(0, 1), 0.05),
    "repeat_penalty": _checkbox(_P + "repeatPenalty", _number(-1), 1.1),
    "presence_penalty": _checkbox(_P + "llama.presencePenalty", _number(), 0),
    "xtc_probability": _checkbox(_P + "llama.xtcProbability", _number(0, 1), 0),
    "xtc_threshold": _checkbox(_P + "llama.xtcThreshold", _number(0, 1), 0),
    "log_probs": _checkbox(_P + "logProbs", _integer(0, 100), 0),
    "cpu_threads": _plain(_P + "llama.cpuThreads", _integer(1)),
    "enable_thinking": _plain(_P + "reasoning.enableThinking", _boolean),
    "reasoning_budget": _checkbox(_P + "reasoning.budgetTokens", _integer(0), 1024),
    "reasoning_parsing": _normalizing(_reasoning_parsing_value, _P + "reasoning.parsing"),
    "prompt_template": _normalizing(_prompt_template_value, _P + "promptTemplate"),
    "draft_model": _plain(_P + "speculativeDecoding.draftModel", _string),
    "speculative_decoding_num_draft_tokens_exact": _plain(
        _P + "speculativeDecoding.numDraftTokensExact", _integer(1)
    ),
    "speculative_decoding_min_draft_length_to_consider": _plain(
        _P + "speculativeDecoding.minDraftLengthToConsider", _integer(0)
    ),
    "speculative_decoding_min_continue_drafting_probability": _plain(
        _P + "speculativeDecoding.minContinueDraftingProbability", _number(0, 1)
    ),
    "user_max_image_dimension_pixels": _checkbox(
        _P + "vision.userMaxImageDimensionPixels", _integer(1), 1024
    ),
    "ignore_model_preferred_max_image_dimension": _plain(
        _P + "vision.ignoreModelPreferredMaxImageDimension", _boolean
    ),
    "seed": _checkbox(_P + "seed", _integer(-1), -1),
    "system_prompt": _plain(_P + "systemPrompt", _string),
}


# --- load config -----------------------------------------------------------------------

_L = "llm.load."
_E = "embedding.load."


def _both(llm_key: str, embedding_key: str) -> dict[str, str]:
    return {"llm": llm_key, "embedding": embedding_key}


def _mlx_kv_quantization_value(name: str, value: Any) -> dict[str, Any]:
    if value is False:
        # JS sends the default settings with ``enabled: false``.
        return {"enabled": False, "bits": 8, "groupSize": 64, "quantizedStart": 5000}
    return _shape(
        name,
        value,
        {
            "enabled": _boolean,
            "bits": _one_of_numbers(8, 6, 4, 3, 2),
            "groupSize": _one_of_numbers(32, 64, 128),
            "quantizedStart": _integer(0),
        },
    )


def _load_prompt_template_value(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"type": "jinja", "jinjaPromptTemplate": {"template": value}}
    return _shape(
        name,
        value,
        {
            "type": _one_of("jinja"),
            "jinjaPromptTemplate": lambda n, v: _shape(n, v, {"template": _string}),
        },
    )


_CACHE_TYPES = ("f32", "f16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")
_SD = _L + "llama.speculativeDecoding."

LOAD_OPTIONS: dict[str, ConfigOption] = {
    "context_length": _plain(_both(_L + "contextLength", _E + "contextLength"), _integer(1)),
    "gpu_strict_vram_cap": _plain(
        _both("load.gpuStrictVramCap", "load.gpuStrictVramCap"), _boolean
    ),
    "max_parallel_predictions": _plain(_L + "numParallelSessions", _integer(1, 1023)),
    "use_unified_kv_cache": _plain(_L + "useUnifiedKvCache", _boolean),
    "offload_kv_cache_to_gpu": _plain(_L + "offloadKVCacheToGpu", _boolean),
    "num_experts": _plain(_L + "numExperts", _integer(0)),
    "seed": _checkbox(_both(_L + "seed", _E + "seed"), _integer(-1), -1),
    "prompt_template": _normalizing(_load_prompt_template_value, _L + "promptTemplate"),
    "eval_batch_size": _plain(
        _both(_L + "llama.evalBatchSize", _E + "llama.evalBatchSize"), _integer(1)
    ),
    "physical_batch_size": _plain(_L + "llama.physicalBatchSize", _integer(1)),
    "flash_attention": _plain(_L + "llama.flashAttention", _boolean),
    "context_checkpoints": _plain(_L + "llama.contextCheckpoints", _integer(0)),
    "keep_model_in_memory": _plain(
        _both(_L + "llama.keepModelInMemory", _E + "llama.keepModelInMemory"), _boolean
    ),
    "use_fp16_for_kv_cache": _plain(_L + "llama.useFp16ForKVCache", _boolean),
    "try_mmap": _plain(_both(_L + "llama.tryMmap", _E + "llama.tryMmap"), _boolean),
    "try_direct_io": _plain(_L + "llama.tryDirectIO", _boolean),
    "reasoning_budget_message": _plain(_L + "llama.reasoningBudgetMessage", _string),
    "rope_frequency_base": _checkbox(
        _both(_L + "llama.ropeFrequencyBase", _E + "llama.ropeFrequencyBase"), _number(0), 0
    ),
    "rope_frequency_scale": _checkbox(
        _both(_L + "llama.ropeFrequencyScale", _E + "llama.ropeFrequencyScale"), _number(0), 0
    ),
    "llama_k_cache_quantization_type": _checkbox(
        _L + "llama.kCacheQuantizationType", _one_of(*_CACHE_TYPES), "f16"
    ),
    "llama_v_cache_quantization_type": _checkbox(
        _L + "llama.vCacheQuantizationType", _one_of(*_CACHE_TYPES), "f16"
    ),
    "speculative_draft_model": _plain(_SD + "draftModel", _string),
    "speculative_draft_max_tokens": _plain(_SD + "draftMaxTokens", _integer(0)),
    "speculative_draft_min_tokens": _plain(_SD + "draftMinTokens", _integer(0)),
    "speculative_draft_min_continue_probability": _plain(
        _SD + "draftMinContinueProbability", _number(0, 1)
    ),
    "speculative_draft_mtp": _plain(_SD + "draftMtp", _boolean),
    "speculative_draft_simple": _plain(_SD + "draftSimple", _boolean),
    "mlx_disk_cache": _plain(_L + "mlx.diskCache", _boolean),
    "mlx_kv_cache_quantization": _normalizing(
        _mlx_kv_quantization_value,
        _L + "mlx.kvCacheQuantization",
        decode=lambda value: value if value["enabled"] else False,
    ),
}

# Setting any public draft selector clears the newer "sidecar" selectors in the same layer,
# as the JS SDK does, so that the request cannot inherit a sidecar mode from a lower layer.
_SPECULATIVE_SELECTORS = (
    "speculative_draft_model",
    "speculative_draft_mtp",
    "speculative_draft_simple",
)
_SIDECAR_KEYS = (
    _SD + "draftDflashSidecar",
    _SD + "draftDsparkSidecar",
    _SD + "draftMtpSidecar",
)

_GPU_RATIO_KEYS = {
    "llm": _L + "llama.acceleration.offloadRatio",
    "embedding": _E + "llama.acceleration.offloadRatio",
}
_GPU_SPLIT_KEY = "load.gpuSplitConfig"
_CPU_EXPERT_RATIO_KEY = _L + "numCpuExpertLayersRatio"
