"""Prediction and load settings, and how they become KV configs on the wire.

:class:`PredictionConfig` and :class:`LoadModelConfig` hold the SDK-level options with
snake_case names (PROTOCOL.md section 5). ``None`` means "not set": the key is not sent and
the server's own layers (preset, model defaults) decide. Each option maps to one full KV key
(``temperature`` -> ``llm.prediction.temperature``), plain or as a checkbox
``{"checked", "value"}``; for checkbox options ``False`` switches the setting off.

User input comes as a config object, as a dict with snake_case *or* camelCase keys (so dicts
written for the official SDKs, ``{"maxTokens": 64}``, work unchanged), and as keyword
arguments typed by :class:`PredictionOptions` / :class:`LoadOptions`: see
:func:`prediction_config_from` and :func:`load_config_from`. Every value is checked when the
config is built, before anything is sent; an unknown option raises
:class:`UnknownOptionError` (a ``TypeError`` and a ``ValueError``) with a suggestion.

The package splits by job: ``_checks`` (value checks), ``_options`` (the one table of
options: name, KV key, check, checkbox or plain, load or prediction), ``_classes`` (the
config classes), ``_typed`` (the keyword-option ``TypedDict`` s), ``_convert`` (user input
and KV configs both ways).
"""

from __future__ import annotations

from ._classes import GpuSetting, LoadModelConfig, PredictionConfig
from ._convert import (
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
from ._options import LOAD_OPTIONS, PREDICTION_OPTIONS, ConfigOption
from ._typed import LoadOptions, PredictionOptions
from ._types import ContextOverflowPolicy, Domain, KVCacheQuantizationType, ToolNaming

__all__ = [
    "LOAD_OPTIONS",
    "PREDICTION_OPTIONS",
    "ConfigOption",
    "ContextOverflowPolicy",
    "Domain",
    "GpuSetting",
    "KVCacheQuantizationType",
    "LoadModelConfig",
    "LoadOptions",
    "PredictionConfig",
    "PredictionOptions",
    "ToolNaming",
    "UnknownOptionError",
    "load_config_from",
    "load_config_from_kv",
    "load_config_stack",
    "load_config_to_kv",
    "prediction_config_from",
    "prediction_config_from_kv",
    "prediction_stack",
    "to_kv_config",
]
