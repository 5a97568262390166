"""Prediction and load settings, and how they become KV configs on the wire.

:class:`PredictionConfig` and :class:`LoadModelConfig` hold the SDK-level options with
snake_case names (PROTOCOL.md section 5). ``None`` means "not set": the key is not sent and
the server's own layers (preset, model defaults) decide. Each option maps to one full KV key
(``temperature`` -> ``llm.prediction.temperature``), plain or as a checkbox
``{"checked", "value"}``; for checkbox options ``False`` switches the setting off.

User input comes as a config object, as a dict with snake_case *or* camelCase keys (so dicts
written for the official SDKs, ``{"maxTokens": 64}``, work unchanged), and as keyword
arguments: see :func:`prediction_config_from` and :func:`load_config_from`. Every value is
checked when the config is built, before anything is sent.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import attrs

from ._structured import response_format
from .errors import LMStudioProtocolError
from .protocol._unset import UNSET
from .protocol.codec import unstructure
from .protocol.kv import Checkbox, KVConfig, KVConfigField, KVConfigLayer, KVConfigStack
from .protocol.naming import to_camel

__all__ = [
    "ContextOverflowPolicy",
    "GpuSetting",
    "KVCacheQuantizationType",
    "LoadModelConfig",
    "PredictionConfig",
    "ToolNaming",
    "load_config_from",
    "load_config_from_kv",
    "load_config_stack",
    "load_config_to_kv",
    "prediction_config_from",
    "prediction_config_from_kv",
    "prediction_stack",
    "to_kv_config",
]

ContextOverflowPolicy = Literal["stopAtLimit", "truncateMiddle", "rollingWindow"]
ToolNaming = Literal["passThrough", "removeSpecial", "snakeCase", "camelCase"]
KVCacheQuantizationType = Literal["f32", "f16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"]
Domain = Literal["llm", "embedding"]

# --- value checks: each raises ValueError saying what is allowed ----------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _range_text(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f" from {low} to {high}"
    if low is not None:
        return f" >= {low}"
    if high is not None:
        return f" <= {high}"
    return ""


Check = Callable[[str, Any], object]
"""Raises ValueError for a bad value; what it returns is ignored."""


def _number(low: float | None = None, high: float | None = None) -> Check:
    def check(name: str, value: Any) -> None:
        if (
            not _is_number(value)
            or (low is not None and value < low)
            or (high is not None and value > high)
        ):
            raise ValueError(f"{name} must be a number{_range_text(low, high)}, got {value!r}")

    return check


def _integer(low: int | None = None, high: int | None = None) -> Check:
    def check(name: str, value: Any) -> None:
        if (
            not _is_int(value)
            or (low is not None and value < low)
            or (high is not None and value > high)
        ):
            raise ValueError(f"{name} must be an integer{_range_text(low, high)}, got {value!r}")

    return check


def _boolean(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def _string(name: str, value: Any) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {value!r}")


def _one_of(*choices: Any) -> Check:
    def check(name: str, value: Any) -> None:
        if value not in choices or not isinstance(value, str):
            allowed = ", ".join(repr(c) for c in choices)
            raise ValueError(f"{name} must be one of {allowed}; got {value!r}")

    return check


def _or_false(check: Check, *, also: tuple[Any, ...] = ()) -> Check:
    """A checkbox option: ``False`` (or a value in ``also``) disables it."""

    def check_or_false(name: str, value: Any) -> None:
        if value is False or (value in also and not isinstance(value, bool)):
            return
        try:
            check(name, value)
        except ValueError as exc:
            off = " or ".join(["False", *(repr(v) for v in also)])
            raise ValueError(f"{exc} (or {off} to switch it off)") from None

    return check_or_false


def _json_value(name: str, value: Any) -> Any:
    """``value`` as plain JSON (wire classes are unstructured); ValueError if it is not JSON."""
    try:
        plain = unstructure(value, what=name)
        return json.loads(json.dumps(plain, allow_nan=False))
    except (TypeError, ValueError, LMStudioProtocolError) as exc:
        raise ValueError(f"{name} must be JSON-serialisable: {exc}") from None


def _camelize(value: Any) -> Any:
    """Nested dict keys to camelCase (for settings objects whose keys are all known)."""
    if isinstance(value, Mapping):
        return {to_camel(str(k)): _camelize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_camelize(v) for v in value]
    return value


def _shape(
    what: str,
    value: Any,
    required: Mapping[str, Check],
    optional: Mapping[str, Check] | None = None,
) -> dict[str, Any]:
    """Check a settings object (camelCase keys) and return it as a plain dict."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} must be a dict, got {value!r}")
    obj: dict[str, Any] = _camelize(value)
    optional = optional or {}
    for key in obj:
        if key not in required and key not in optional:
            known = ", ".join(repr(k) for k in [*required, *optional])
            raise ValueError(f"{what} has an unknown key {key!r}; allowed: {known}")
    for key, check in required.items():
        if key not in obj:
            raise ValueError(f"{what} needs the key {key!r}")
        check(f"{what}[{key!r}]", obj[key])
    for key, check in optional.items():
        if key in obj:
            check(f"{what}[{key!r}]", obj[key])
    return obj


def _string_list(name: str, value: Any) -> None:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"{name} must be a list of strings, got {value!r}")
    for item in value:
        if not isinstance(item, str) or not item:
            raise ValueError(f"{name} must hold non-empty strings, got {item!r}")


# --- option tables ---------------------------------------------------------------------


@attrs.frozen
class _Option:
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


def _plain(key: str | Mapping[str, str], check: Check) -> _Option:
    keys = {"llm": key} if isinstance(key, str) else key
    return _Option(keys, check)


def _checkbox(
    key: str | Mapping[str, str],
    check: Check,
    placeholder: Any,
    *,
    off_values: tuple[Any, ...] = (),
) -> _Option:
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
    return _Option(keys, _or_false(check, also=off_values), encode, decode)


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
) -> _Option:
    """An option whose input is normalised (shortcuts, snake_case keys) by ``value_of``."""

    def check(name: str, value: Any) -> None:
        value_of(name, value)

    return _Option({"llm": key}, check, lambda value: value_of(key, value), decode)


_P = "llm.prediction."

_PREDICTION_OPTIONS: dict[str, _Option] = {
    "temperature": _plain(_P + "temperature", _number(0)),
    "max_tokens": _checkbox(_P + "maxPredictedTokens", _integer(1), 1, off_values=(-1,)),
    "stop_strings": _plain(_P + "stopStrings", _string_list),
    "tool_call_stop_strings": _plain(_P + "toolCallStopStrings", _string_list),
    "context_overflow_policy": _plain(
        _P + "contextOverflowPolicy", _one_of("stopAtLimit", "truncateMiddle", "rollingWindow")
    ),
    "structured": _Option({"llm": _P + "structured"}, _check_structured, _encode_structured),
    "raw_tools": _Option(
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


def _raw_dict(value: Mapping[str, Any] | KVConfig | None) -> dict[str, Any]:
    """``raw`` as ``{full key: plain JSON value}``; ValueError for anything else."""
    if value is None:
        return {}
    items: dict[Any, Any]
    if isinstance(value, KVConfig):
        items = value.to_dict()
    elif isinstance(value, Mapping) and isinstance(value.get("fields"), list):
        # A KVConfig in its JSON form, as the JS SDK's ``raw`` takes it.
        items = {
            f.get("key"): f.get("value", UNSET) for f in value["fields"] if isinstance(f, Mapping)
        }
    elif isinstance(value, Mapping):
        items = dict(value)
    else:
        raise ValueError(f"raw must be a dict of full KV keys to values, got {value!r}")
    for key, item in items.items():
        if not isinstance(key, str) or "." not in key:
            raise ValueError(
                f"raw keys are full KV keys such as 'llm.prediction.temperature', got {key!r}"
            )
        # UNSET (a field without a value) is valid on the wire: it still overrides.
        if item is not UNSET:
            items[key] = _json_value(f"raw[{key!r}]", item)
    return items


def _validator(table: Mapping[str, _Option]) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def validate(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None:
            table[attribute.name].check(attribute.name, value)

    return validate


def _stop_strings(value: Sequence[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    _string_list("stop_strings", value)
    return tuple(value)


def _tool_call_stop_strings(value: Sequence[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    _string_list("tool_call_stop_strings", value)
    return tuple(value)


_vp = _validator(_PREDICTION_OPTIONS)


@attrs.frozen(kw_only=True)
class PredictionConfig:
    """Settings for one prediction; ``None`` leaves a setting to the server.

    For options that accept ``False`` (``max_tokens``, ``top_p_sampling``, ``seed``...),
    ``False`` switches the setting off; ``max_tokens=-1`` also means "unlimited".
    ``structured`` takes anything ``response_format`` does (a JSON schema dict, a pydantic
    model class, an attrs class or a dataclass, or a ``{"type": "json"|"gbnf", ...}``
    setting). ``raw`` is a dict of full KV keys to values, sent *under* the typed options:
    a typed option wins over the same key in ``raw``.
    """

    temperature: float | None = attrs.field(default=None, validator=_vp)
    max_tokens: int | Literal[False] | None = attrs.field(default=None, validator=_vp)
    stop_strings: tuple[str, ...] | None = attrs.field(default=None, converter=_stop_strings)
    tool_call_stop_strings: tuple[str, ...] | None = attrs.field(
        default=None, converter=_tool_call_stop_strings
    )
    context_overflow_policy: ContextOverflowPolicy | None = attrs.field(default=None, validator=_vp)
    structured: Any = attrs.field(default=None, validator=_vp)
    raw_tools: Mapping[str, Any] | None = attrs.field(default=None, validator=_vp)
    tool_choice: Literal["none", "auto", "required"] | Mapping[str, Any] | None = attrs.field(
        default=None, validator=_vp
    )
    tool_naming: ToolNaming | None = attrs.field(default=None, validator=_vp)
    top_k_sampling: int | None = attrs.field(default=None, validator=_vp)
    top_p_sampling: float | Literal[False] | None = attrs.field(default=None, validator=_vp)
    min_p_sampling: float | Literal[False] | None = attrs.field(default=None, validator=_vp)
    repeat_penalty: float | Literal[False] | None = attrs.field(default=None, validator=_vp)
    presence_penalty: float | Literal[False] | None = attrs.field(default=None, validator=_vp)
    xtc_probability: float | Literal[False] | None = attrs.field(default=None, validator=_vp)
    xtc_threshold: float | Literal[False] | None = attrs.field(default=None, validator=_vp)
    log_probs: int | Literal[False] | None = attrs.field(default=None, validator=_vp)
    cpu_threads: int | None = attrs.field(default=None, validator=_vp)
    enable_thinking: bool | None = attrs.field(default=None, validator=_vp)
    reasoning_budget: int | Literal[False] | None = attrs.field(default=None, validator=_vp)
    reasoning_parsing: Mapping[str, Any] | None = attrs.field(default=None, validator=_vp)
    prompt_template: str | Mapping[str, Any] | None = attrs.field(default=None, validator=_vp)
    draft_model: str | None = attrs.field(default=None, validator=_vp)
    speculative_decoding_num_draft_tokens_exact: int | None = attrs.field(
        default=None, validator=_vp
    )
    speculative_decoding_min_draft_length_to_consider: int | None = attrs.field(
        default=None, validator=_vp
    )
    speculative_decoding_min_continue_drafting_probability: float | None = attrs.field(
        default=None, validator=_vp
    )
    user_max_image_dimension_pixels: int | Literal[False] | None = attrs.field(
        default=None, validator=_vp
    )
    ignore_model_preferred_max_image_dimension: bool | None = attrs.field(
        default=None, validator=_vp
    )
    seed: int | Literal[False] | None = attrs.field(default=None, validator=_vp)
    system_prompt: str | None = attrs.field(default=None, validator=_vp)
    raw: dict[str, Any] = attrs.field(factory=dict, converter=_raw_dict)


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


def _one_of_numbers(*choices: int) -> Check:
    def check(name: str, value: Any) -> None:
        if not _is_number(value) or value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")

    return check


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

_LOAD_OPTIONS: dict[str, _Option] = {
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


def _check_ratio(name: str, value: Any) -> None:
    if value in ("max", "off") and isinstance(value, str):
        return
    if not _is_number(value) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number from 0 to 1, 'max' or 'off'; got {value!r}")


def _check_gpu_list(name: str, value: Any) -> None:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"{name} must be a list of GPU indices, got {value!r}")
    for item in value:
        _integer(0)(f"{name} item", item)


def _gpu_indices(value: Sequence[int] | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    _check_gpu_list("gpu.disabled_gpus", value)
    return tuple(value)


def _optional(check: Check) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def validate(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None:
            check(f"gpu.{attribute.name}", value)

    return validate


@attrs.frozen(kw_only=True)
class GpuSetting:
    """How a model uses the GPUs.

    ``ratio`` is the share of layers offloaded: a number from 0 to 1, ``"max"`` or ``"off"``.
    ``main_gpu``, ``split_strategy`` (``"evenly"`` or ``"favorMainGpu"``) and
    ``disabled_gpus`` choose how work is split across several GPUs.
    ``num_cpu_expert_layers_ratio`` keeps that share of mixture-of-experts layers on the CPU.
    """

    ratio: float | Literal["max", "off"] | None = attrs.field(
        default=None, validator=_optional(_check_ratio)
    )
    main_gpu: int | None = attrs.field(default=None, validator=_optional(_integer(0)))
    split_strategy: Literal["evenly", "favorMainGpu"] | None = attrs.field(
        default=None, validator=_optional(_one_of("evenly", "favorMainGpu"))
    )
    disabled_gpus: tuple[int, ...] | None = attrs.field(
        default=None,
        converter=_gpu_indices,
    )
    num_cpu_expert_layers_ratio: float | Literal["max", "off"] | None = attrs.field(
        default=None, validator=_optional(_check_ratio)
    )


def _gpu_setting(value: Any) -> GpuSetting | None:
    """A ``GpuSetting`` from one, from a dict (either key style), or from a bare ratio."""
    if value is None or isinstance(value, GpuSetting):
        return value
    if isinstance(value, Mapping):
        names = {f.name for f in attrs.fields(GpuSetting)}
        camel = {to_camel(n): n for n in names}
        kwargs: dict[str, Any] = {}
        for key, item in value.items():
            name = camel.get(key, key)
            if name not in names:
                raise ValueError(
                    f"gpu has an unknown key {key!r}; allowed: {', '.join(sorted(names))}"
                )
            kwargs[name] = item
        return GpuSetting(**kwargs)
    _check_ratio("gpu", value)  # a bare ratio: LoadModelConfig(gpu=0.5) or gpu="max"
    return GpuSetting(ratio=value)


_vl = _validator(_LOAD_OPTIONS)


@attrs.frozen(kw_only=True)
class LoadModelConfig:
    """Settings for loading a model; ``None`` leaves a setting to the server.

    ``gpu`` takes a :class:`GpuSetting`, a dict of its fields, or just the offload ratio
    (``gpu=0.5``, ``gpu="max"``). For checkbox options (``seed``, ``rope_frequency_*``,
    ``llama_*_cache_quantization_type``, ``mlx_kv_cache_quantization``) ``False`` switches
    the setting off. Embedding models support only ``context_length``, ``gpu`` (ratio and
    split), ``gpu_strict_vram_cap``, ``seed``, ``eval_batch_size``, ``rope_frequency_*``,
    ``keep_model_in_memory`` and ``try_mmap``. ``raw`` is a dict of full KV keys to values,
    sent under the typed options.
    """

    context_length: int | None = attrs.field(default=None, validator=_vl)
    gpu: GpuSetting | None = attrs.field(default=None, converter=_gpu_setting)
    gpu_strict_vram_cap: bool | None = attrs.field(default=None, validator=_vl)
    max_parallel_predictions: int | None = attrs.field(default=None, validator=_vl)
    use_unified_kv_cache: bool | None = attrs.field(default=None, validator=_vl)
    offload_kv_cache_to_gpu: bool | None = attrs.field(default=None, validator=_vl)
    num_experts: int | None = attrs.field(default=None, validator=_vl)
    seed: int | Literal[False] | None = attrs.field(default=None, validator=_vl)
    prompt_template: str | Mapping[str, Any] | None = attrs.field(default=None, validator=_vl)
    eval_batch_size: int | None = attrs.field(default=None, validator=_vl)
    physical_batch_size: int | None = attrs.field(default=None, validator=_vl)
    flash_attention: bool | None = attrs.field(default=None, validator=_vl)
    context_checkpoints: int | None = attrs.field(default=None, validator=_vl)
    keep_model_in_memory: bool | None = attrs.field(default=None, validator=_vl)
    use_fp16_for_kv_cache: bool | None = attrs.field(default=None, validator=_vl)
    try_mmap: bool | None = attrs.field(default=None, validator=_vl)
    try_direct_io: bool | None = attrs.field(default=None, validator=_vl)
    reasoning_budget_message: str | None = attrs.field(default=None, validator=_vl)
    rope_frequency_base: float | Literal[False] | None = attrs.field(default=None, validator=_vl)
    rope_frequency_scale: float | Literal[False] | None = attrs.field(default=None, validator=_vl)
    llama_k_cache_quantization_type: KVCacheQuantizationType | Literal[False] | None = attrs.field(
        default=None, validator=_vl
    )
    llama_v_cache_quantization_type: KVCacheQuantizationType | Literal[False] | None = attrs.field(
        default=None, validator=_vl
    )
    speculative_draft_model: str | None = attrs.field(default=None, validator=_vl)
    speculative_draft_max_tokens: int | None = attrs.field(default=None, validator=_vl)
    speculative_draft_min_tokens: int | None = attrs.field(default=None, validator=_vl)
    speculative_draft_min_continue_probability: float | None = attrs.field(
        default=None, validator=_vl
    )
    speculative_draft_mtp: bool | None = attrs.field(default=None, validator=_vl)
    speculative_draft_simple: bool | None = attrs.field(default=None, validator=_vl)
    mlx_disk_cache: bool | None = attrs.field(default=None, validator=_vl)
    mlx_kv_cache_quantization: Mapping[str, Any] | Literal[False] | None = attrs.field(
        default=None, validator=_vl
    )
    raw: dict[str, Any] = attrs.field(factory=dict, converter=_raw_dict)


# --- building configs from user input ----------------------------------------------------


def _field_names(cls: type) -> list[str]:
    return [f.name for f in attrs.fields(cls)]


def _normalize_options(cls: type, options: Mapping[str, Any], what: str) -> dict[str, Any]:
    """Map snake_case and camelCase option names to field names; unknown names fail."""
    names = _field_names(cls)
    by_spelling: dict[str, str] = {}
    for name in names:
        by_spelling[name] = name
        by_spelling[to_camel(name)] = name
    normalized: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for key, value in options.items():
        found = by_spelling.get(key) if isinstance(key, str) else None
        if found is None:
            raise ValueError(_unknown_option_message(key, by_spelling, what))
        if found in spelled:
            raise ValueError(
                f"{what} option {found!r} is given twice ({spelled[found]!r} and {key!r})"
            )
        spelled[found] = key
        if value is not None:
            normalized[found] = value
    return normalized


def _unknown_option_message(key: Any, spellings: Mapping[str, str], what: str) -> str:
    message = f"unknown {what} option {key!r}"
    close = difflib.get_close_matches(str(key), list(spellings), n=1, cutoff=0.6)
    if not close:
        # Compare without separators and case too ("max_token" vs "maxTokens"), and take
        # an abbreviation for the option it starts ("topP" for "topPSampling").
        squashed = {k.replace("_", "").lower(): k for k in spellings}
        given = str(key).replace("_", "").lower()
        close = [squashed[s] for s in squashed if given and s.startswith(given)][:1]
        close = close or [
            squashed[c] for c in difflib.get_close_matches(given, list(squashed), n=1, cutoff=0.6)
        ]
    if close:
        return f"{message}; did you mean {spellings[close[0]]!r}?"
    return f"{message}; known options: {', '.join(sorted(set(spellings.values())))}"


def _config_from(cls: Any, config: Any, options: Mapping[str, Any], what: str) -> Any:
    if config is None:
        base: dict[str, Any] = {}
    elif isinstance(config, cls):
        base = {
            name: value
            for name, value in attrs.asdict(config, recurse=False).items()
            if value is not None
        }
    elif isinstance(config, Mapping):
        base = _normalize_options(cls, config, what)
    else:
        raise ValueError(
            f"a {what} config must be a {cls.__name__} or a dict, got {type(config).__name__}"
        )
    overrides = _normalize_options(cls, options, what)
    raw = {**_raw_dict(base.pop("raw", None)), **_raw_dict(overrides.pop("raw", None))}
    return cls(**{**base, **overrides}, raw=raw)


def prediction_config_from(
    config: PredictionConfig | Mapping[str, Any] | None = None, **options: Any
) -> PredictionConfig:
    """Build a :class:`PredictionConfig` from a config or dict plus keyword options.

    Dict keys may be snake_case (``max_tokens``) or camelCase (``maxTokens``); keyword
    options win over the config. An unknown option or an invalid value raises
    ``ValueError`` naming it (and the closest known option).
    """
    cfg: PredictionConfig = _config_from(PredictionConfig, config, options, "prediction")
    return cfg


def load_config_from(
    config: LoadModelConfig | Mapping[str, Any] | None = None, **options: Any
) -> LoadModelConfig:
    """Build a :class:`LoadModelConfig` like :func:`prediction_config_from` does."""
    cfg: LoadModelConfig = _config_from(LoadModelConfig, config, options, "load")
    return cfg


# --- to and from KV configs -------------------------------------------------------------


def _typed_fields(cfg: Any) -> list[tuple[str, Any]]:
    return [
        (f.name, getattr(cfg, f.name))
        for f in attrs.fields(type(cfg))
        if f.name not in ("raw", "gpu") and getattr(cfg, f.name) is not None
    ]


def _merge(raw: Mapping[str, Any], typed: list[tuple[str, Any]]) -> KVConfig:
    # ``raw`` goes under the typed options: a typed option replaces the same raw key.
    typed_keys = {key for key, _ in typed}
    fields = [KVConfigField(k, v) for k, v in raw.items() if k not in typed_keys]
    fields.extend(KVConfigField(k, v) for k, v in typed)
    return KVConfig(fields)


def to_kv_config(cfg: PredictionConfig) -> KVConfig:
    """The ``llm.prediction.*`` KV config of ``cfg`` (``raw`` first, typed options after)."""
    typed = [
        (_PREDICTION_OPTIONS[name].keys["llm"], _PREDICTION_OPTIONS[name].encode(value))
        for name, value in _typed_fields(cfg)
    ]
    return _merge(cfg.raw, typed)


def prediction_stack(
    cfg: PredictionConfig, *, extra_layers: Sequence[KVConfigLayer] = ()
) -> KVConfigStack:
    """The ``predictionConfigStack`` to send: one ``apiOverride`` layer, then ``extra_layers``
    (e.g. Python-style completion's ``completeModeFormatting``); the last layer wins."""
    return KVConfigStack([KVConfigLayer("apiOverride", to_kv_config(cfg)), *extra_layers])


def load_config_to_kv(cfg: LoadModelConfig, domain: Domain = "llm") -> KVConfig:
    """The load KV config of ``cfg`` for an ``llm`` or ``embedding`` model.

    Raises ``ValueError`` naming any option the domain does not support.
    """
    if domain not in ("llm", "embedding"):
        raise ValueError(f"domain must be 'llm' or 'embedding', got {domain!r}")
    typed: list[tuple[str, Any]] = []
    unsupported: list[str] = []
    for name, value in _typed_fields(cfg):
        option = _LOAD_OPTIONS[name]
        key = option.keys.get(domain)
        if key is None:
            unsupported.append(name)
            continue
        typed.append((key, option.encode(value)))
    if cfg.gpu is not None:
        typed.extend(_gpu_fields(cfg.gpu, domain, unsupported))
    if unsupported:
        raise ValueError(f"{', '.join(unsupported)} cannot be set when loading an {domain} model")
    if any(getattr(cfg, name) is not None for name in _SPECULATIVE_SELECTORS):
        typed.extend((key, False) for key in _SIDECAR_KEYS)
    return _merge(cfg.raw, typed)


def _gpu_fields(gpu: GpuSetting, domain: str, unsupported: list[str]) -> list[tuple[str, Any]]:
    fields: list[tuple[str, Any]] = []
    if gpu.ratio is not None:
        fields.append((_GPU_RATIO_KEYS[domain], gpu.ratio))
    if gpu.num_cpu_expert_layers_ratio is not None:
        if domain == "llm":
            fields.append((_CPU_EXPERT_RATIO_KEY, gpu.num_cpu_expert_layers_ratio))
        else:
            unsupported.append("gpu.num_cpu_expert_layers_ratio")
    # Only send the split config when the user chose split settings: sending it for a bare
    # ratio would reset a split chosen in LM Studio to "evenly".
    if gpu.main_gpu is not None or gpu.split_strategy is not None or gpu.disabled_gpus is not None:
        strategy = gpu.split_strategy or ("priorityOrder" if gpu.main_gpu is not None else "evenly")
        split = {
            "strategy": "priorityOrder" if strategy == "favorMainGpu" else strategy,
            "disabledGpus": list(gpu.disabled_gpus or ()),
            "priority": [gpu.main_gpu] if gpu.main_gpu is not None else [],
            "customRatio": [],
        }
        fields.append((_GPU_SPLIT_KEY, split))
    return fields


def load_config_stack(cfg: LoadModelConfig, domain: Domain = "llm") -> KVConfigStack:
    """The ``loadConfigStack`` to send: one ``apiOverride`` layer."""
    return KVConfigStack([KVConfigLayer("apiOverride", load_config_to_kv(cfg, domain))])


def _kv_items(kv: KVConfig | Mapping[str, Any]) -> dict[str, Any]:
    return kv.to_dict() if isinstance(kv, KVConfig) else dict(kv)


def _decode(
    items: dict[str, Any], table: Mapping[str, _Option], domain: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split KV items into typed options and the rest; unreadable values stay raw."""
    by_key = {opt.keys[domain]: name for name, opt in table.items() if domain in opt.keys}
    typed: dict[str, Any] = {}
    raw: dict[str, Any] = {}
    for key, value in items.items():
        name = by_key.get(key)
        if name is None:
            raw[key] = value
            continue
        try:
            decoded = table[name].decode(value)
            table[name].check(name, decoded)
        except (ValueError, TypeError, AttributeError, LMStudioProtocolError):
            raw[key] = value
        else:
            typed[name] = decoded
    return typed, raw


def prediction_config_from_kv(kv: KVConfig | Mapping[str, Any]) -> PredictionConfig:
    """Read a prediction KV config (e.g. the one ``success`` reports) back into a config.

    Keys we do not model, and values we cannot read, are kept in ``raw``.
    """
    typed, raw = _decode(_kv_items(kv), _PREDICTION_OPTIONS, "llm")
    return PredictionConfig(**typed, raw=raw)


def load_config_from_kv(
    kv: KVConfig | Mapping[str, Any], domain: Domain = "llm"
) -> LoadModelConfig:
    """Read a load KV config back into a config; unknown keys are kept in ``raw``."""
    typed, raw = _decode(_kv_items(kv), _LOAD_OPTIONS, domain)
    gpu_keys = [_GPU_RATIO_KEYS[domain], _GPU_SPLIT_KEY]
    if domain == "llm":
        gpu_keys.append(_CPU_EXPERT_RATIO_KEY)
    gpu_raw = {key: raw.pop(key) for key in gpu_keys if key in raw}
    try:
        gpu = _gpu_from_kv(gpu_raw, domain)
    except (ValueError, TypeError, KeyError, IndexError):
        gpu = None
        raw.update(gpu_raw)  # unreadable: keep it as the server sent it
    return LoadModelConfig(**typed, gpu=gpu, raw=raw)


def _gpu_from_kv(items: Mapping[str, Any], domain: str) -> GpuSetting | None:
    if not items:
        return None
    gpu: dict[str, Any] = {
        "ratio": items.get(_GPU_RATIO_KEYS[domain]),
        "num_cpu_expert_layers_ratio": items.get(_CPU_EXPERT_RATIO_KEY),
    }
    split = items.get(_GPU_SPLIT_KEY)
    if split is not None:
        strategy = split["strategy"]
        if strategy in ("evenly", "priorityOrder"):
            gpu["split_strategy"] = "favorMainGpu" if strategy == "priorityOrder" else "evenly"
        else:
            raise ValueError(f"split strategy {strategy!r} has no GpuSetting equivalent")
        gpu["main_gpu"] = split["priority"][0] if split["priority"] else None
        gpu["disabled_gpus"] = split["disabledGpus"]
    return GpuSetting(**gpu)
