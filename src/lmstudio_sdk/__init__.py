"""lmstudio-sdk: a structured-concurrency Python SDK for LM Studio (Trio and asyncio).

::

    import lmstudio_sdk

    async with lmstudio_sdk.AsyncClient() as client:
        model = await client.llm.model("smollm2-135m-instruct")

Public names are imported lazily (PEP 562), on first attribute access: ``import
lmstudio_sdk.protocol`` (the sans-io core) loads no async library, and ``import
lmstudio_sdk`` stays cheap. Type checkers see the imports under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from ._async.channel import Channel as Channel
    from ._async.client import AsyncClient as AsyncClient
    from ._async.handles import AsyncEmbeddingModel as AsyncEmbeddingModel
    from ._async.handles import AsyncLLM as AsyncLLM
    from ._async.handles import AsyncModelHandle as AsyncModelHandle
    from ._async.prediction import PredictionStream as PredictionStream
    from ._async.streams import LoadStream as LoadStream
    from ._async.streams import LogStream as LogStream
    from ._async.streams import StreamScope as StreamScope
    from ._async.tools import ActResult as ActResult
    from ._async.tools import InvalidToolCallError as InvalidToolCallError
    from ._async.tools import Tool as Tool
    from ._convenience import configure_default_client as configure_default_client
    from ._convenience import embedding_model as embedding_model
    from ._convenience import get_default_client as get_default_client
    from ._convenience import list_downloaded_models as list_downloaded_models
    from ._convenience import list_loaded_models as list_loaded_models
    from ._convenience import llm as llm
    from ._convenience import prepare_image as prepare_image
    from ._sentinel import DEFAULT as DEFAULT
    from ._sentinel import DefaultType as DefaultType
    from .chat import Chat as Chat
    from .chat import FileHandle as FileHandle
    from .config import GpuSetting as GpuSetting
    from .config import LoadModelConfig as LoadModelConfig
    from .config import PredictionConfig as PredictionConfig
    from .config import PredictionOptions as PredictionOptions
    from .config import UnknownOptionError as UnknownOptionError
    from .errors import LMStudioAuthError as LMStudioAuthError
    from .errors import LMStudioChannelOverflowError as LMStudioChannelOverflowError
    from .errors import LMStudioConnectionError as LMStudioConnectionError
    from .errors import LMStudioError as LMStudioError
    from .errors import LMStudioModelNotFoundError as LMStudioModelNotFoundError
    from .errors import LMStudioPresetNotFoundError as LMStudioPresetNotFoundError
    from .errors import LMStudioProtocolError as LMStudioProtocolError
    from .errors import LMStudioServerError as LMStudioServerError
    from .errors import LMStudioTimeoutError as LMStudioTimeoutError
    from .errors import LocalProtocolError as LocalProtocolError
    from .errors import RemoteProtocolError as RemoteProtocolError
    from .errors import StructuredOutputError as StructuredOutputError
    from .results import ModelInfo as ModelInfo
    from .results import ModelInstanceInfo as ModelInstanceInfo
    from .results import PredictionFragment as PredictionFragment
    from .results import PredictionResult as PredictionResult
    from .results import PredictionStats as PredictionStats
    from .results import PromptProcessingProgress as PromptProcessingProgress
    from .results import ToolCallArgumentsFragment as ToolCallArgumentsFragment
    from .results import ToolCallGenerated as ToolCallGenerated
    from .results import ToolCallGenerationFailed as ToolCallGenerationFailed
    from .results import ToolCallGenerationStarted as ToolCallGenerationStarted
    from .results import ToolCallNameReceived as ToolCallNameReceived
    from .results import ToolCallRequest as ToolCallRequest
    from .sync import LLM as LLM
    from .sync import Client as Client
    from .sync import EmbeddingModel as EmbeddingModel
    from .sync import SyncInAsyncContextError as SyncInAsyncContextError

# name -> module (relative to this package) it is imported from, on first access.
_LAZY: dict[str, str] = {
    "AsyncClient": "._async.client",
    "AsyncModelHandle": "._async.handles",
    "AsyncLLM": "._async.handles",
    "AsyncEmbeddingModel": "._async.handles",
    "Channel": "._async.channel",
    "LoadStream": "._async.streams",
    "LogStream": "._async.streams",
    "PredictionStream": "._async.prediction",
    "StreamScope": "._async.streams",
    "ActResult": "._async.tools",
    "InvalidToolCallError": "._async.tools",
    "Tool": "._async.tools",
    "Chat": ".chat",
    "FileHandle": ".chat",
    "GpuSetting": ".config",
    "LoadModelConfig": ".config",
    "PredictionConfig": ".config",
    "PredictionOptions": ".config",
    "UnknownOptionError": ".config",
    "DEFAULT": "._sentinel",
    "DefaultType": "._sentinel",
    "LMStudioError": ".errors",
    "LMStudioConnectionError": ".errors",
    "LMStudioAuthError": ".errors",
    "LMStudioTimeoutError": ".errors",
    "LMStudioServerError": ".errors",
    "LMStudioModelNotFoundError": ".errors",
    "LMStudioPresetNotFoundError": ".errors",
    "LMStudioProtocolError": ".errors",
    "RemoteProtocolError": ".errors",
    "LocalProtocolError": ".errors",
    "LMStudioChannelOverflowError": ".errors",
    "StructuredOutputError": ".errors",
    "ModelInfo": ".results",
    "ModelInstanceInfo": ".results",
    "PredictionFragment": ".results",
    "PredictionResult": ".results",
    "PredictionStats": ".results",
    "PromptProcessingProgress": ".results",
    "ToolCallArgumentsFragment": ".results",
    "ToolCallGenerated": ".results",
    "ToolCallGenerationFailed": ".results",
    "ToolCallGenerationStarted": ".results",
    "ToolCallNameReceived": ".results",
    "ToolCallRequest": ".results",
    "Client": ".sync",
    "LLM": ".sync",
    "EmbeddingModel": ".sync",
    "SyncInAsyncContextError": ".sync",
    "configure_default_client": "._convenience",
    "embedding_model": "._convenience",
    "get_default_client": "._convenience",
    "list_downloaded_models": "._convenience",
    "list_loaded_models": "._convenience",
    "llm": "._convenience",
    "prepare_image": "._convenience",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
