"""Configs from user input (config objects, dicts, keyword options), and to and from KV configs."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from typing_extensions import Unpack

from ..protocol.kv import KVConfig, KVConfigField, KVConfigLayer, KVConfigStack
from ..protocol.naming import to_camel
from ._checks import _raw_dict
from ._classes import GpuSetting, LoadModelConfig, PredictionConfig
from ._options import (
    _CPU_EXPERT_RATIO_KEY,
    _GPU_RATIO_KEYS,
    _GPU_SPLIT_KEY,
    _SIDECAR_KEYS,
    _SPECULATIVE_SELECTORS,
    LOAD_OPTIONS,
    PREDICTION_OPTIONS,
    ConfigOption,
)
from ._typed import LoadOptions, PredictionOptions
from ._types import Domain


class UnknownOptionError(TypeError, ValueError):
    """An option name that no config has, with the closest known name in the message.

    A ``TypeError`` (Python's error for an unexpected keyword argument) and, as before, a
    ``ValueError``: code catching either keeps working.
    """


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
            raise UnknownOptionError(_unknown_option_message(key, by_spelling, what))
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
    config: PredictionConfig | Mapping[str, Any] | None = None,
    **options: Unpack[PredictionOptions],
) -> PredictionConfig:
    """Build a :class:`PredictionConfig` from a config or dict plus keyword options.

    Dict keys may be snake_case (``max_tokens``) or camelCase (``maxTokens``); keyword
    options win over the config. An unknown option raises :class:`UnknownOptionError`
    naming it and the closest known option; an invalid value raises ``ValueError``.
    """
    cfg: PredictionConfig = _config_from(PredictionConfig, config, options, "prediction")
    return cfg


def load_config_from(
    config: LoadModelConfig | Mapping[str, Any] | None = None, **options: Unpack[LoadOptions]
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
        (PREDICTION_OPTIONS[name].keys["llm"], PREDICTION_OPTIONS[name].encode(value))
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
        option = LOAD_OPTIONS[name]
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
    items: dict[str, Any], table: Mapping[str, ConfigOption], domain: str
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
            typed[name] = table[name].read(name, value)
        except ValueError:
            raw[key] = value
    return typed, raw


def prediction_config_from_kv(kv: KVConfig | Mapping[str, Any]) -> PredictionConfig:
    """Read a prediction KV config (e.g. the one ``success`` reports) back into a config.

    Keys we do not model, and values we cannot read, are kept in ``raw``.
    """
    typed, raw = _decode(_kv_items(kv), PREDICTION_OPTIONS, "llm")
    return PredictionConfig(**typed, raw=raw)


def load_config_from_kv(
    kv: KVConfig | Mapping[str, Any], domain: Domain = "llm"
) -> LoadModelConfig:
    """Read a load KV config back into a config; unknown keys are kept in ``raw``."""
    typed, raw = _decode(_kv_items(kv), LOAD_OPTIONS, domain)
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
