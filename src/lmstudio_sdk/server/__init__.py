"""A local LM Studio-compatible server, with real models or a scripted engine.

It speaks the LM Studio websocket protocol faithfully enough for the official clients
(``@lmstudio/sdk``, ``lmstudio`` on PyPI) and for this SDK. Three ways to run it:

* ``async with running_server(ServerOptions(port=0)) as server:`` (or ``await serve(...)``)
  inside an asyncio loop;
* ``with BackgroundServer(ServerOptions(port=0)) as server:`` from synchronous code, Trio
  applications and tests (a thread with its own asyncio loop);
* ``lmsdk serve --port 41343`` from a shell.

By default it serves the bundled real models when their packages are installed
(SmolLM2-135M-Instruct as ``smollm2-135m-instruct``, all-MiniLM-L6-v2 as
``all-minilm-l6-v2``); :func:`gguf_model` serves any local GGUF file and
:func:`scripted_model` a deterministic fake with fault injection. With
``ServerOptions(upstreams=[Upstream(url=...)])`` it also fronts OpenAI-compatible engines
(vLLM, llama.cpp's server...; docs/scale-out.md).
"""

from __future__ import annotations

from ._app import RunningServer, running_server, serve
from ._background import BackgroundServer
from ._catalog_file import Catalog, CatalogError, Preload, load_catalog
from ._limits import ServerLimits
from ._options import (
    DEFAULT_PORT,
    ServedModel,
    ServerOptions,
    bundled_models,
    default_models,
    gguf_model,
    scripted_model,
    scripted_models,
)
from ._stats import ServerStats, StatsSnapshot
from .engines.scripted import DownloadStep, Faults, Script, ScriptedToolCall
from .upstream import Upstream

__all__ = [
    "DEFAULT_PORT",
    "BackgroundServer",
    "Catalog",
    "CatalogError",
    "DownloadStep",
    "Faults",
    "Preload",
    "RunningServer",
    "Script",
    "ScriptedToolCall",
    "ServedModel",
    "ServerLimits",
    "ServerOptions",
    "ServerStats",
    "StatsSnapshot",
    "Upstream",
    "bundled_models",
    "default_models",
    "gguf_model",
    "load_catalog",
    "running_server",
    "scripted_model",
    "scripted_models",
    "serve",
]
