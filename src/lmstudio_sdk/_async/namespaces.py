"""The namespace facades of :class:`~lmstudio_sdk.AsyncClient`: ``client.system``,
``client.llm``, ``client.embedding``, ``client.files``, ``client.repository`` and
``client.diagnostics``.

Each is a thin layer over :meth:`Connection.call <.connection.Connection.call>` and
:meth:`Connection.open_channel <.connection.Connection.open_channel>` of its namespace's
socket, which is opened on first use. Every call takes ``timeout=`` (seconds; ``None``
for no limit; the client's default when omitted). Streams are async context managers
(``async with client.llm.load_stream(key) as load: async for progress in load``): leaving
the block early cancels the work on the server.
"""

# Per-call ``timeout=`` is part of the API (DESIGN 4): it composes with anyio.fail_after.
# ruff: noqa: ASYNC109

from __future__ import annotations

import base64
import inspect
import os
from collections.abc import Awaitable, Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, Generic

import anyio
from typing_extensions import Unpack

from .._boundary import sdk_boundary
from .._sentinel import DEFAULT, DefaultType
from ..errors import RemoteProtocolError
from ..protocol._unset import UNSET
from ..protocol.codec import Unknown
from ..protocol.endpoints import namespace_module, shared
from ..protocol.endpoints._spec import raw_result
from ..results import ModelInfo, ModelInstanceInfo, instance_infos
from ._images import IMAGE_SUFFIXES, image_suffix
from ._ttl import ttl_ms
from .handles import AsyncEmbeddingModel, AsyncLLM, AsyncModelHandle
from .streams import H, LoadStream, LogStream, StreamScope

# Why the imports inside methods: a namespace's endpoint module, ``chat``, ``config`` and the
# keyword checks are imported when first used, so a client starts without them
# (benchmarks/analysis.md 11).
if TYPE_CHECKING:
    from ..chat import FileHandle
    from ..protocol.endpoints import files, repository, system
    from ..protocol.endpoints._spec import ChannelSpec
    from ._keywords import LoadKeywords
    from .client import AsyncClient
    from .connection import Connection

__all__ = [
    "DiagnosticsNamespace",
    "EmbeddingNamespace",
    "FilesNamespace",
    "LLMNamespace",
    "RepositoryNamespace",
    "SystemNamespace",
]

ProgressCallback = Callable[[float], "Awaitable[object] | object"]
"""Called with progress from 0 to 1; may be a plain function or a coroutine function."""


async def _report(callback: Callable[[Any], Any] | None, value: Any) -> None:
    if callback is not None:
        outcome = callback(value)
        if inspect.isawaitable(outcome):
            await outcome


def _key(value: str, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    return value


class _Namespace:
    _name = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        sdk_boundary(cls)  # every namespace's public methods: short tracebacks

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._client!r}>"

    def _connection(self) -> Connection:
        return self._client._connection(self._name)


# ------------------------------------------------------------------------------- system


class SystemNamespace(_Namespace):
    """``client.system``: the server's version, downloaded models, notifications."""

    _name = "system"

    async def version(
        self, *, timeout: float | DefaultType | None = DEFAULT
    ) -> system.VersionResult:
        """The LM Studio version (``.version`` is ``"major.minor.patch"``, ``.build``)."""
        from ..protocol.endpoints import system

        result: system.VersionResult = await self._connection().call(
            system.VERSION, timeout=timeout
        )
        return result

    async def info(self, *, timeout: float | DefaultType | None = DEFAULT) -> system.SystemInfo:
        """The server process: ``pid``, ``is_daemon`` and ``version``."""
        from ..protocol.endpoints import system

        result: system.SystemInfo = await self._connection().call(system.INFO, timeout=timeout)
        return result

    async def list_downloaded_models(
        self, domain: str | None = None, *, timeout: float | DefaultType | None = DEFAULT
    ) -> list[ModelInfo]:
        """Models on disk; ``domain="llm"`` or ``"embedding"`` keeps only that kind."""
        if domain not in (None, "llm", "embedding"):
            raise ValueError(f"domain must be None, 'llm' or 'embedding', got {domain!r}")
        from ..protocol.endpoints import system

        models = await self._connection().call(system.LIST_DOWNLOADED_MODELS, timeout=timeout)
        return [
            ModelInfo.from_wire(model)
            for model in models
            if not isinstance(model, Unknown) and (domain is None or model.type == domain)
        ]

    async def notify(
        self,
        title: str,
        description: str | None = None,
        *,
        no_auto_dismiss: bool = False,
        timeout: float | DefaultType | None = DEFAULT,
    ) -> None:
        """Show a notification in the LM Studio app."""
        from ..protocol.endpoints import system

        parameter = system.NotifyParameter(
            _key(title, "title"),
            UNSET if description is None else description,
            True if no_auto_dismiss else UNSET,
        )
        await self._connection().call(system.NOTIFY, parameter, timeout=timeout)


# ------------------------------------------------------------------------------- models


class _ModelNamespace(_Namespace, Generic[H]):
    _handle_class: type[AsyncModelHandle] = AsyncModelHandle

    @property
    def _endpoints(self) -> ModuleType:
        """This namespace's endpoint module (``llm`` or ``embedding``), imported on first use."""
        return namespace_module(self._name)

    def _handle(self, info: Any) -> H:
        public = info if isinstance(info, ModelInstanceInfo) else ModelInstanceInfo.from_wire(info)
        handle: H = self._handle_class(self, public.identifier, public)  # type: ignore[assignment]
        return handle

    async def list_loaded(self, *, timeout: float | DefaultType | None = DEFAULT) -> list[H]:
        """The loaded instances of this kind, as handles (``handle.info`` has the details)."""
        spec = self._endpoints.LIST_LOADED
        raw = await self._connection().call(raw_result(spec), timeout=timeout)
        return [self._handle(info) for info in instance_infos(raw, spec)]

    async def get_model_info(
        self, identifier: str | None = None, *, timeout: float | DefaultType | None = DEFAULT
    ) -> ModelInstanceInfo:
        """Info on the loaded instance ``identifier`` (or on any loaded one, if ``None``).

        :raises LMStudioModelNotFoundError: no such instance is loaded.
        """
        query = (
            shared.ModelQuery()
            if identifier is None
            else shared.ModelQuery(identifier=_key(identifier, "identifier"))
        )
        parameter = shared.GetModelInfoParameter(shared.ModelSpecifierQuery(query), True)
        info = await self._connection().call(
            self._endpoints.GET_MODEL_INFO, parameter, timeout=timeout
        )
        if info is None:  # a server that ignored throwIfNotFound
            raise RemoteProtocolError(
                f"{self._name}.getModelInfo: the server returned nothing for {identifier!r}"
            )
        return ModelInstanceInfo.from_wire(info)

    def load_stream(
        self, key: str, *, identifier: str | None = None, **keywords: Unpack[LoadKeywords]
    ) -> StreamScope[LoadStream[H]]:
        """Load a new instance of model ``key``, as a stream of progress.

        ``async with client.llm.load_stream(key) as load:`` then ``async for progress in
        load`` (0..1) and ``load.result()``. Leaving the block before the load finished
        cancels it on the server. ``ttl`` (seconds) unloads the model after that much idle
        time (default one hour; ``None``: never); ``config`` is a
        :class:`~lmstudio_sdk.LoadModelConfig` or a dict of its options; ``timeout`` is the
        longest silence allowed between progress reports; ``drain_timeout`` the longest wait
        for the server to confirm a cancelled load.
        """
        from ._keywords import LoadKeywords, check_keywords

        check_keywords(keywords, LoadKeywords, "load_stream")
        parameter = shared.LoadModelCreationParameter(
            _key(key, "key"),
            self._load_config_stack(keywords),
            UNSET if identifier is None else _key(identifier, "identifier"),
            UNSET,
            ttl_ms(keywords.get("ttl", DEFAULT)),
        )
        return self._load_scope(self._endpoints.LOAD_MODEL, parameter, keywords)

    def _load_config_stack(self, keywords: LoadKeywords) -> Any:
        from ..config import load_config_from, load_config_stack

        config = load_config_from(keywords.get("config"))
        return load_config_stack(config, self._name)  # type: ignore[arg-type]

    def _load_scope(
        self, spec: ChannelSpec, parameter: Any, keywords: LoadKeywords
    ) -> StreamScope[LoadStream[H]]:
        return StreamScope(
            self._connection(),
            spec,
            parameter,
            lambda channel: LoadStream(self, channel),
            finish=LoadStream._absorb_final_packets,
            idle_timeout=keywords.get("timeout", DEFAULT),
            drain_timeout=keywords.get("drain_timeout", DEFAULT),
        )

    async def _loaded(
        self, scope: StreamScope[LoadStream[H]], on_progress: ProgressCallback | None
    ) -> H:
        """The handle ``scope`` loads, reporting its progress to ``on_progress``."""
        async with scope as load:
            async for progress in load:
                await _report(on_progress, progress)
        return load.result()

    async def load(
        self,
        key: str,
        *,
        identifier: str | None = None,
        on_progress: ProgressCallback | None = None,
        **keywords: Unpack[LoadKeywords],
    ) -> H:
        """Load a new instance of model ``key`` and return its handle.

        ``on_progress(progress)`` is called with 0..1 as the load goes (a coroutine
        function is awaited). Cancelling the call cancels the load on the server.
        See :meth:`load_stream` for the other options.
        """
        from ._keywords import LoadKeywords, check_keywords

        check_keywords(keywords, LoadKeywords, "load")
        scope = self.load_stream(key, identifier=identifier, **keywords)
        return await self._loaded(scope, on_progress)

    async def unload(
        self, identifier: str, *, timeout: float | DefaultType | None = DEFAULT
    ) -> None:
        """Unload the instance ``identifier``."""
        parameter = shared.UnloadModelParameter(_key(identifier, "identifier"))
        await self._connection().call(self._endpoints.UNLOAD_MODEL, parameter, timeout=timeout)

    async def model(
        self,
        key: str | None = None,
        *,
        on_progress: ProgressCallback | None = None,
        **keywords: Unpack[LoadKeywords],
    ) -> H:
        """A handle to model ``key``, loading it if it is not loaded yet (``getOrLoad``).

        ``key`` is an instance identifier, a model key or a path. Without a key: any model
        that is already loaded (``LMStudioModelNotFoundError`` if none is); ``ttl`` and
        ``config`` then make no sense and are refused.
        """
        from ._keywords import LoadKeywords, check_keywords

        check_keywords(keywords, LoadKeywords, "model")
        ttl = keywords.get("ttl", DEFAULT)
        if key is None:
            if not isinstance(ttl, DefaultType) or keywords.get("config") is not None:
                raise ValueError("ttl and config apply to loading: give a model key as well")
            info = await self.get_model_info(None, timeout=keywords.get("timeout", DEFAULT))
            return self._handle_class(self, info.identifier, info)  # type: ignore[return-value]
        parameter = shared.GetOrLoadCreationParameter(
            _key(key, "key"), self._load_config_stack(keywords), UNSET, ttl_ms(ttl)
        )
        scope = self._load_scope(self._endpoints.GET_OR_LOAD, parameter, keywords)
        return await self._loaded(scope, on_progress)


class LLMNamespace(_ModelNamespace[AsyncLLM]):
    """``client.llm``: LLMs (list, load, unload, get a handle)."""

    _name = "llm"
    _handle_class = AsyncLLM


class EmbeddingNamespace(_ModelNamespace[AsyncEmbeddingModel]):
    """``client.embedding``: embedding models (list, load, unload, get a handle)."""

    _name = "embedding"
    _handle_class = AsyncEmbeddingModel


# ------------------------------------------------------------------------------- files


class FilesNamespace(_Namespace):
    """``client.files``: files to attach to chat messages."""

    _name = "files"

    async def upload(
        self, name: str, data: bytes, *, timeout: float | DefaultType | None = DEFAULT
    ) -> FileHandle:
        """Upload ``data`` as a file called ``name``; returns the handle to put in a chat.

        Uploads belong to this client (its identity): other clients cannot use them.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"data must be bytes, got {type(data).__name__}; read the file first "
                "(e.g. pathlib.Path(...).read_bytes())"
            )
        from ..chat import FileHandle
        from ..protocol.endpoints import files

        parameter = files.UploadFileBase64Parameter(
            _key(name, "name"), base64.b64encode(bytes(data)).decode("ascii")
        )
        result: files.UploadFileBase64Result = await self._connection().call(
            files.UPLOAD_FILE_BASE64, parameter, timeout=timeout
        )
        return FileHandle(
            name=name,
            identifier=result.identifier,
            size_bytes=result.size_bytes,
            file_type=result.file_type,
        )

    async def prepare_image(
        self,
        source: str | os.PathLike[str] | bytes,
        name: str | None = None,
        *,
        timeout: float | DefaultType | None = DEFAULT,
    ) -> FileHandle:
        """Upload an image (a file path or its bytes) to attach to a chat message:
        ``chat.add_user_message("What is this?", images=[handle])``.

        ``name`` defaults to the file's name (``image.<ext>`` for bytes); the extension of
        the detected format is added when the name has none the server knows as an image.

        :raises ValueError: the data is not a PNG, JPEG, GIF, WebP or BMP image (checked
            before anything is sent).
        """
        if isinstance(source, (bytes, bytearray, memoryview)):
            data, default_name = bytes(source), None
        elif isinstance(source, (str, os.PathLike)):
            path = anyio.Path(source)
            data, default_name = await path.read_bytes(), path.name
        else:
            raise TypeError(f"prepare_image() takes a path or bytes, got {type(source).__name__}")
        if name is not None:
            _key(name, "name")
        suffix = image_suffix(data)
        if suffix is None:
            raise ValueError(
                f"{name or default_name or 'the data'} is not an image "
                "(PNG, JPEG, GIF, WebP or BMP expected)"
            )
        name = name or default_name or f"image{suffix}"
        if os.path.splitext(name)[1].lower() not in IMAGE_SUFFIXES:
            name += suffix
        return await self.upload(name, data, timeout=timeout)


# ------------------------------------------------------------------------------- repository


class RepositoryNamespace(_Namespace):
    """``client.repository``: search the model catalog and download models."""

    _name = "repository"

    async def search_models(
        self,
        search_term: str | None = None,
        *,
        limit: int | None = None,
        compatibility_types: Sequence[str] | None = None,
        timeout: float | DefaultType | None = DEFAULT,
    ) -> list[repository.ModelSearchResultEntry]:
        """Search for models to download (``limit``: 1 to 25 results)."""
        from ..protocol.endpoints import repository

        opts = repository.ModelSearchOpts(
            UNSET if search_term is None else search_term,
            UNSET if limit is None else limit,
            UNSET if compatibility_types is None else list(compatibility_types),
        )
        result: repository.SearchModelsResult = await self._connection().call(
            repository.SEARCH_MODELS, repository.SearchModelsParameter(opts), timeout=timeout
        )
        return list(result.results)

    async def get_download_options(
        self,
        model: repository.ModelSearchResultEntry | Any,
        *,
        timeout: float | DefaultType | None = DEFAULT,
    ) -> list[repository.ModelDownloadOption]:
        """The files a search result can be downloaded as (one per quantization...)."""
        from ..protocol.endpoints import repository

        identifier = getattr(model, "identifier", model)
        if not isinstance(
            identifier,
            (repository.CatalogSearchResultIdentifier, repository.HFSearchResultIdentifier),
        ):
            raise TypeError(
                "model must be a result of search_models() (or its .identifier), "
                f"got {type(model).__name__}"
            )
        result: repository.GetModelDownloadOptionsResult = await self._connection().call(
            repository.GET_MODEL_DOWNLOAD_OPTIONS,
            repository.GetModelDownloadOptionsParameter(identifier),
            timeout=timeout,
        )
        return list(result.results)

    async def download(
        self,
        option: repository.ModelDownloadOption | str,
        *,
        on_progress: Callable[[repository.DownloadProgressUpdate], Any] | None = None,
        timeout: float | DefaultType | None = DEFAULT,
        drain_timeout: float | DefaultType = DEFAULT,
    ) -> str:
        """Download a model; return the model key to load it with.

        ``option`` is one of :meth:`get_download_options` or its ``download_identifier``.
        ``on_progress(update)`` gets ``downloaded_bytes``, ``total_bytes`` and
        ``speed_bytes_per_second``. Cancelling the call cancels the download on the server
        (``drain_timeout``: the longest wait for it to confirm); ``timeout`` is the longest
        silence allowed between progress reports.
        """
        from ..protocol.endpoints import repository

        download_identifier: Any = getattr(option, "download_identifier", option)
        parameter = repository.DownloadModelCreationParameter(
            _key(download_identifier, "download identifier")
        )
        default_identifier: str | None = None
        async with self._connection().open_channel(
            repository.DOWNLOAD_MODEL, parameter, idle_timeout=timeout, drain_timeout=drain_timeout
        ) as channel:
            async for packet in channel:
                if isinstance(packet, repository.DownloadProgress):
                    await _report(on_progress, packet.update)
                elif isinstance(packet, repository.DownloadModelSuccess):
                    default_identifier = packet.default_identifier
        if default_identifier is None:
            raise RemoteProtocolError(
                "repository.downloadModel: the server ended the download without reporting success"
            )
        return default_identifier


# ------------------------------------------------------------------------------- diagnostics


class DiagnosticsNamespace(_Namespace):
    """``client.diagnostics``: the server's log stream."""

    _name = "diagnostics"

    def stream_logs(
        self, *, drain_timeout: float | DefaultType = DEFAULT
    ) -> StreamScope[LogStream]:
        """``async with client.diagnostics.stream_logs() as logs: async for event in logs``.

        Leaving the block stops the stream on the server (waiting at most ``drain_timeout``
        seconds for it to confirm; the client's default when omitted).
        """
        from ..protocol.endpoints import diagnostics

        return StreamScope(
            self._connection(),
            diagnostics.STREAM_LOGS,
            UNSET,
            LogStream,
            drain_timeout=drain_timeout,
        )
