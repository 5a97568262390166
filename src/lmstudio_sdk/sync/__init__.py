"""The blocking API: :class:`Client` and its handles, over the async core.

::

    with lmstudio_sdk.Client() as client:
        model = client.llm.model("smollm2-135m-instruct")

See :mod:`lmstudio_sdk.sync._portal` for how blocking calls reach the event loop (and
what Ctrl-C does).
"""

from __future__ import annotations

from ._portal import SyncInAsyncContextError
from .client import Client
from .handles import LLM, EmbeddingModel, ModelHandle
from .namespaces import (
    DiagnosticsNamespace,
    EmbeddingNamespace,
    FilesNamespace,
    LLMNamespace,
    RepositoryNamespace,
    SystemNamespace,
)
from .streams import LoadStream, LogStream, PredictionCallbacks, PredictionStream

__all__ = [
    "LLM",
    "Client",
    "DiagnosticsNamespace",
    "EmbeddingModel",
    "EmbeddingNamespace",
    "FilesNamespace",
    "LLMNamespace",
    "LoadStream",
    "LogStream",
    "ModelHandle",
    "PredictionCallbacks",
    "PredictionStream",
    "RepositoryNamespace",
    "SyncInAsyncContextError",
    "SystemNamespace",
]
