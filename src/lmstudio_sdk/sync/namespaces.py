"""The namespace facades of :class:`~lmstudio_sdk.Client`: ``client.system``, ``client.llm``,
``client.embedding``, ``client.files``, ``client.repository`` and ``client.diagnostics``.

Each method blocks on the async method of the same name (see
:mod:`lmstudio_sdk._async.namespaces` for the details) and takes the same ``timeout=``.
Streams are context managers yielding iterators (``with client.llm.load_stream(key) as
load: for progress in load: ...``); leaving the block early cancels the work on the server.
Callbacks (``on_progress``) run in the calling thread.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .._async import namespaces as aio
from .._async.connection import DEFAULT, _Default
from .handles import LLM, EmbeddingModel, ModelHandle
from .streams import LoadStream, LogStream

if TYPE_CHECKING:
    from .._async.handles import AsyncModelHandle
    from ..chat import FileHandle
    from ..config import LoadModelConfig
    from ..protocol.endpoints import repository, system
    from ..results import ModelInfo, ModelInstanceInfo
    from ._portal import Portal
    from .client import Client

__all__ = [
    "DiagnosticsNamespace",
    "EmbeddingNamespace",
    "FilesNamespace",
    "LLMNamespace",
    "RepositoryNamespace",
    "SystemNamespace",
]

H = TypeVar("H", bound=ModelHandle)
A = TypeVar("A")


class _Namespace(Generic[A]):
    def __init__(self, client: Client, namespace: A) -> None:
        self._client = client
        self._async = namespace

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._client!r}>"

    def _portal(self) -> Portal:
        return self._client._portal()


# ------------------------------------------------------------------------------- system


class SystemNamespace(_Namespace[aio.SystemNamespace]):
    """``client.system``: the server's version, downloaded models, notifications."""

    def version(self, *, timeout: float | _Default | None = DEFAULT) -> system.VersionResult:
        """The LM Studio version (``.version`` is ``"major.minor.patch"``, ``.build``)."""
        return self._portal().run(self._async.version, timeout=timeout)

    def info(self, *, timeout: float | _Default | None = DEFAULT) -> system.SystemInfo:
        """The server process: ``pid``, ``is_daemon`` and ``version``."""
        return self._portal().run(self._async.info, timeout=timeout)

    def list_downloaded_models(
        self, domain: str | None = None, *, timeout: float | _Default | None = DEFAULT
    ) -> list[ModelInfo]:
        """Models on disk; ``domain="llm"`` or ``"embedding"`` keeps only that kind."""
        return self._portal().run(self._async.list_downloaded_models, domain, timeout=timeout)

    def notify(
        self,
        title: str,
        description: str | None = None,
        *,
        no_auto_dismiss: bool = False,
        timeout: float | _Default | None = DEFAULT,
    ) -> None:
        """Show a notification in the LM Studio app."""
        self._portal().run(
            self._async.notify,
            title,
            description,
            no_auto_dismiss=no_auto_dismiss,
            timeout=timeout,
        )


# ------------------------------------------------------------------------------- models


class _ModelNamespace(_Namespace[aio._ModelNamespace[Any]], Generic[H]):
    _handle_class: type[ModelHandle] = ModelHandle

    def _wrap(self, handle: AsyncModelHandle) -> H:
        wrapped: H = self._handle_class(self._client, handle)  # type: ignore[assignment]
        return wrapped

    def list_loaded(self, *, timeout: float | _Default | None = DEFAULT) -> list[H]:
        """The loaded instances of this kind, as handles (``handle.info`` has the details)."""
        handles = self._portal().run(self._async.list_loaded, timeout=timeout)
        return [self._wrap(handle) for handle in handles]

    def get_model_info(
        self, identifier: str | None = None, *, timeout: float | _Default | None = DEFAULT
    ) -> ModelInstanceInfo:
        """Info on the loaded instance ``identifier`` (or on any loaded one, if ``None``).

        :raises LMStudioModelNotFoundError: no such instance is loaded.
        """
        return self._portal().run(self._async.get_model_info, identifier, timeout=timeout)

    def load_stream(
        self,
        key: str,
        *,
        identifier: str | None = None,
        ttl: float | _Default | None = DEFAULT,
        config: LoadModelConfig | Mapping[str, Any] | None = None,
        timeout: float | _Default | None = DEFAULT,
    ) -> LoadStream[H]:
        """Load a new instance of model ``key``, as a stream of progress.

        ``with client.llm.load_stream(key) as load:`` then ``for progress in load`` (0..1)
        and ``load.result()``. Leaving the block before the load finished cancels it on
        the server. See :meth:`load` for the options.
        """
        return LoadStream(
            self._client,
            lambda: self._async.load_stream(
                key, identifier=identifier, ttl=ttl, config=config, timeout=timeout
            ),
            self._wrap,
        )

    def load(
        self,
        key: str,
        *,
        identifier: str | None = None,
        ttl: float | _Default | None = DEFAULT,
        config: LoadModelConfig | Mapping[str, Any] | None = None,
        on_progress: Callable[[float], object] | None = None,
        timeout: float | _Default | None = DEFAULT,
    ) -> H:
        """Load a new instance of model ``key`` and return its handle.

        ``identifier`` names the instance (default: the server picks one); ``ttl``
        (seconds) unloads it after that much idle time; ``config`` is a
        :class:`~lmstudio_sdk.LoadModelConfig` or a dict of its options;
        ``on_progress(progress)`` is called (in this thread) with 0..1 as the load goes;
        ``timeout`` is the longest silence allowed between progress reports. Ctrl-C
        cancels the load on the server.
        """
        handle = self._portal().run_relayed(
            lambda relay: self._async.load(
                key,
                identifier=identifier,
                ttl=ttl,
                config=config,
                on_progress=relay.optional(on_progress),
                timeout=timeout,
            )
        )
        return self._wrap(handle)

    def unload(self, identifier: str, *, timeout: float | _Default | None = DEFAULT) -> None:
        """Unload the instance ``identifier``."""
        self._portal().run(self._async.unload, identifier, timeout=timeout)

    def model(
        self,
        key: str | None = None,
        *,
        ttl: float | _Default | None = DEFAULT,
        config: LoadModelConfig | Mapping[str, Any] | None = None,
        on_progress: Callable[[float], object] | None = None,
        timeout: float | _Default | None = DEFAULT,
    ) -> H:
        """A handle to model ``key``, loading it if it is not loaded yet.

        ``key`` is an instance identifier, a model key or a path. Without a key: any model
        that is already loaded (``LMStudioModelNotFoundError`` if none is). See
        :meth:`load` for the options.
        """
        handle = self._portal().run_relayed(
            lambda relay: self._async.model(
                key,
                ttl=ttl,
                config=config,
                on_progress=relay.optional(on_progress),
                timeout=timeout,
            )
        )
        return self._wrap(handle)


class LLMNamespace(_ModelNamespace[LLM]):
    """``client.llm``: LLMs (list, load, unload, get a handle)."""

    _handle_class = LLM


class EmbeddingNamespace(_ModelNamespace[EmbeddingModel]):
    """``client.embedding``: embedding models (list, load, unload, get a handle)."""

    _handle_class = EmbeddingModel


# ------------------------------------------------------------------------------- files


class FilesNamespace(_Namespace[aio.FilesNamespace]):
    """``client.files``: files to attach to chat messages."""

    def upload(
        self, name: str, data: bytes, *, timeout: float | _Default | None = DEFAULT
    ) -> FileHandle:
        """Upload ``data`` as a file called ``name``; returns the handle to put in a chat."""
        return self._portal().run(self._async.upload, name, data, timeout=timeout)

    def prepare_image(
        self,
        source: str | os.PathLike[str] | bytes,
        name: str | None = None,
        *,
        timeout: float | _Default | None = DEFAULT,
    ) -> FileHandle:
        """Upload an image (a file path or its bytes) to attach to a chat message:
        ``chat.add_user_message("What is this?", images=[handle])``.

        :raises ValueError: the data is not a PNG, JPEG, GIF, WebP or BMP image.
        """
        return self._portal().run(self._async.prepare_image, source, name, timeout=timeout)


# ------------------------------------------------------------------------------- repository


class RepositoryNamespace(_Namespace[aio.RepositoryNamespace]):
    """``client.repository``: search the model catalog and download models."""

    def search_models(
        self,
        search_term: str | None = None,
        *,
        limit: int | None = None,
        compatibility_types: Sequence[str] | None = None,
        timeout: float | _Default | None = DEFAULT,
    ) -> list[repository.ModelSearchResultEntry]:
        """Search for models to download (``limit``: 1 to 25 results)."""
        return self._portal().run(
            self._async.search_models,
            search_term,
            limit=limit,
            compatibility_types=compatibility_types,
            timeout=timeout,
        )

    def get_download_options(
        self,
        model: repository.ModelSearchResultEntry | Any,
        *,
        timeout: float | _Default | None = DEFAULT,
    ) -> list[repository.ModelDownloadOption]:
        """The files a search result can be downloaded as (one per quantization...)."""
        return self._portal().run(self._async.get_download_options, model, timeout=timeout)

    def download(
        self,
        option: repository.ModelDownloadOption | str,
        *,
        on_progress: Callable[[repository.DownloadProgressUpdate], object] | None = None,
        timeout: float | _Default | None = DEFAULT,
    ) -> str:
        """Download a model; return the model key to load it with.

        ``on_progress(update)`` runs in this thread. Ctrl-C cancels the download on the
        server; ``timeout`` is the longest silence allowed between progress reports.
        """
        return self._portal().run_relayed(
            lambda relay: self._async.download(
                option, on_progress=relay.optional(on_progress), timeout=timeout
            )
        )


# ------------------------------------------------------------------------------- diagnostics


class DiagnosticsNamespace(_Namespace[aio.DiagnosticsNamespace]):
    """``client.diagnostics``: the server's log stream."""

    def stream_logs(self) -> LogStream:
        """``with client.diagnostics.stream_logs() as logs: for event in logs: ...``.

        Leaving the block stops the stream on the server.
        """
        return LogStream(self._client, self._async.stream_logs)
