"""The config classes: :class:`PredictionConfig`, :class:`GpuSetting`, :class:`LoadModelConfig`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import attrs

from ..protocol.naming import to_camel
from ._checks import (
    Check,
    _check_gpu_list,
    _check_ratio,
    _integer,
    _one_of,
    _raw_dict,
    _string_list,
)
from ._options import LOAD_OPTIONS, PREDICTION_OPTIONS, ConfigOption
from ._types import ContextOverflowPolicy, KVCacheQuantizationType, ToolNaming


def _validator(
    table: Mapping[str, ConfigOption],
) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
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


_vp = _validator(PREDICTION_OPTIONS)


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


_vl = _validator(LOAD_OPTIONS)


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
