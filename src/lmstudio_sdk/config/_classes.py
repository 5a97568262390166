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


def _checked_by(
    table: Mapping[str, ConfigOption],
) -> Callable[[type, list[attrs.Attribute[Any]]], list[attrs.Attribute[Any]]]:
    """A field transformer: every field without a converter (which checks the value itself)
    gets the check of its option in ``table``; ``None`` always passes."""

    def validate(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None:
            table[attribute.name].check(attribute.name, value)

    def transform(_: type, fields: list[attrs.Attribute[Any]]) -> list[attrs.Attribute[Any]]:
        return [f if f.converter else f.evolve(validator=validate) for f in fields]

    return transform


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


@attrs.frozen(kw_only=True, field_transformer=_checked_by(PREDICTION_OPTIONS))
class PredictionConfig:
    """Settings for one prediction; ``None`` leaves a setting to the server.

    For options that accept ``False`` (``max_tokens``, ``top_p_sampling``, ``seed``...),
    ``False`` switches the setting off; ``max_tokens=-1`` also means "unlimited".
    ``structured`` takes anything ``response_format`` does (a JSON schema dict, a pydantic
    model class, an attrs class or a dataclass, or a ``{"type": "json"|"gbnf", ...}``
    setting). ``raw`` is a dict of full KV keys to values, sent *under* the typed options:
    a typed option wins over the same key in ``raw``.
    """

    temperature: float | None = None
    max_tokens: int | Literal[False] | None = None
    stop_strings: tuple[str, ...] | None = attrs.field(default=None, converter=_stop_strings)
    tool_call_stop_strings: tuple[str, ...] | None = attrs.field(
        default=None, converter=_tool_call_stop_strings
    )
    context_overflow_policy: ContextOverflowPolicy | None = None
    structured: Any = None
    raw_tools: Mapping[str, Any] | None = None
    tool_choice: Literal["none", "auto", "required"] | Mapping[str, Any] | None = None
    tool_naming: ToolNaming | None = None
    top_k_sampling: int | None = None
    top_p_sampling: float | Literal[False] | None = None
    min_p_sampling: float | Literal[False] | None = None
    repeat_penalty: float | Literal[False] | None = None
    presence_penalty: float | Literal[False] | None = None
    xtc_probability: float | Literal[False] | None = None
    xtc_threshold: float | Literal[False] | None = None
    log_probs: int | Literal[False] | None = None
    cpu_threads: int | None = None
    enable_thinking: bool | None = None
    reasoning_budget: int | Literal[False] | None = None
    reasoning_parsing: Mapping[str, Any] | None = None
    prompt_template: str | Mapping[str, Any] | None = None
    draft_model: str | None = None
    speculative_decoding_num_draft_tokens_exact: int | None = None
    speculative_decoding_min_draft_length_to_consider: int | None = None
    speculative_decoding_min_continue_drafting_probability: float | None = None
    user_max_image_dimension_pixels: int | Literal[False] | None = None
    ignore_model_preferred_max_image_dimension: bool | None = None
    seed: int | Literal[False] | None = None
    system_prompt: str | None = None
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


@attrs.frozen(kw_only=True, field_transformer=_checked_by(LOAD_OPTIONS))
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

    context_length: int | None = None
    gpu: GpuSetting | None = attrs.field(default=None, converter=_gpu_setting)
    gpu_strict_vram_cap: bool | None = None
    max_parallel_predictions: int | None = None
    use_unified_kv_cache: bool | None = None
    offload_kv_cache_to_gpu: bool | None = None
    num_experts: int | None = None
    seed: int | Literal[False] | None = None
    prompt_template: str | Mapping[str, Any] | None = None
    eval_batch_size: int | None = None
    physical_batch_size: int | None = None
    flash_attention: bool | None = None
    context_checkpoints: int | None = None
    keep_model_in_memory: bool | None = None
    use_fp16_for_kv_cache: bool | None = None
    try_mmap: bool | None = None
    try_direct_io: bool | None = None
    reasoning_budget_message: str | None = None
    rope_frequency_base: float | Literal[False] | None = None
    rope_frequency_scale: float | Literal[False] | None = None
    llama_k_cache_quantization_type: KVCacheQuantizationType | Literal[False] | None = None
    llama_v_cache_quantization_type: KVCacheQuantizationType | Literal[False] | None = None
    speculative_draft_model: str | None = None
    speculative_draft_max_tokens: int | None = None
    speculative_draft_min_tokens: int | None = None
    speculative_draft_min_continue_probability: float | None = None
    speculative_draft_mtp: bool | None = None
    speculative_draft_simple: bool | None = None
    mlx_disk_cache: bool | None = None
    mlx_kv_cache_quantization: Mapping[str, Any] | Literal[False] | None = None
    raw: dict[str, Any] = attrs.field(factory=dict, converter=_raw_dict)
