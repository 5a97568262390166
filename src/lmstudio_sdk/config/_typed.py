"""The keyword options of prediction and load methods, as ``TypedDict`` s.

Methods take ``**options: Unpack[PredictionOptions]`` (or ``LoadOptions``), so a type
checker rejects a misspelt option (``max_token=5``) and an IDE completes the names. Each
key is an option of ``PREDICTION_OPTIONS`` / ``LOAD_OPTIONS`` and a field of the config
class with the same type (tests/test_config.py checks all three agree).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from typing_extensions import TypedDict

from ..protocol.kv import KVConfig
from ._classes import GpuSetting
from ._types import ContextOverflowPolicy, KVCacheQuantizationType, ToolNaming

__all__ = ["LoadOptions", "PredictionOptions"]


class PredictionOptions(TypedDict, total=False):
    """Prediction options as keyword arguments (see :class:`PredictionConfig`)."""

    temperature: float | None
    max_tokens: int | Literal[False] | None
    stop_strings: Sequence[str] | None
    tool_call_stop_strings: Sequence[str] | None
    context_overflow_policy: ContextOverflowPolicy | None
    structured: Any
    raw_tools: Mapping[str, Any] | None
    tool_choice: Literal["none", "auto", "required"] | Mapping[str, Any] | None
    tool_naming: ToolNaming | None
    top_k_sampling: int | None
    top_p_sampling: float | Literal[False] | None
    min_p_sampling: float | Literal[False] | None
    repeat_penalty: float | Literal[False] | None
    presence_penalty: float | Literal[False] | None
    xtc_probability: float | Literal[False] | None
    xtc_threshold: float | Literal[False] | None
    log_probs: int | Literal[False] | None
    cpu_threads: int | None
    enable_thinking: bool | None
    reasoning_budget: int | Literal[False] | None
    reasoning_parsing: Mapping[str, Any] | None
    prompt_template: str | Mapping[str, Any] | None
    draft_model: str | None
    speculative_decoding_num_draft_tokens_exact: int | None
    speculative_decoding_min_draft_length_to_consider: int | None
    speculative_decoding_min_continue_drafting_probability: float | None
    user_max_image_dimension_pixels: int | Literal[False] | None
    ignore_model_preferred_max_image_dimension: bool | None
    seed: int | Literal[False] | None
    system_prompt: str | None
    raw: Mapping[str, Any] | KVConfig | None


class LoadOptions(TypedDict, total=False):
    """Load options as keyword arguments (see :class:`LoadModelConfig`)."""

    context_length: int | None
    gpu: GpuSetting | Mapping[str, Any] | float | Literal["max", "off"] | None
    gpu_strict_vram_cap: bool | None
    max_parallel_predictions: int | None
    use_unified_kv_cache: bool | None
    offload_kv_cache_to_gpu: bool | None
    num_experts: int | None
    seed: int | Literal[False] | None
    prompt_template: str | Mapping[str, Any] | None
    eval_batch_size: int | None
    physical_batch_size: int | None
    flash_attention: bool | None
    context_checkpoints: int | None
    keep_model_in_memory: bool | None
    use_fp16_for_kv_cache: bool | None
    try_mmap: bool | None
    try_direct_io: bool | None
    reasoning_budget_message: str | None
    rope_frequency_base: float | Literal[False] | None
    rope_frequency_scale: float | Literal[False] | None
    llama_k_cache_quantization_type: KVCacheQuantizationType | Literal[False] | None
    llama_v_cache_quantization_type: KVCacheQuantizationType | Literal[False] | None
    speculative_draft_model: str | None
    speculative_draft_max_tokens: int | None
    speculative_draft_min_tokens: int | None
    speculative_draft_min_continue_probability: float | None
    speculative_draft_mtp: bool | None
    speculative_draft_simple: bool | None
    mlx_disk_cache: bool | None
    mlx_kv_cache_quantization: Mapping[str, Any] | Literal[False] | None
    raw: Mapping[str, Any] | KVConfig | None
