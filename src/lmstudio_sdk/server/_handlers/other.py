"""The ``system``, ``diagnostics``, ``files`` and ``repository`` namespaces."""

from __future__ import annotations

import math
import os
from typing import Any

import anyio
import anyio.to_thread

from ..._version import __version__
from ...protocol.endpoints import diagnostics as diagnostics_ep
from ...protocol.endpoints import files as files_ep
from ...protocol.endpoints import repository as repository_ep
from ...protocol.endpoints import system as system_ep
from ...protocol.endpoints.diagnostics import StreamLogsLog
from ...protocol.endpoints.files import (
    DocumentParsingLibraryIdentifier,
    GetLocalFileAbsolutePathParameter,
    GetLocalFileAbsolutePathResult,
    ParseDocumentCreationParameter,
    ParseDocumentParserLoaded,
    ParseDocumentProgress,
    ParseDocumentResult,
    UploadFileBase64Parameter,
    UploadFileBase64Result,
)
from ...protocol.endpoints.repository import (
    CatalogSearchResultIdentifier,
    DownloadModelCreationParameter,
    DownloadModelSuccess,
    DownloadProgress,
    DownloadProgressUpdate,
    DownloadStartFinalizing,
    GetModelDownloadOptionsParameter,
    GetModelDownloadOptionsResult,
    ModelDownloadOption,
    ModelSearchResultEntry,
    SearchModelsParameter,
    SearchModelsResult,
)
from ...protocol.endpoints.system import (
    ListDownloadedModelVariantsParameter,
    NotifyParameter,
    SetExperimentFlagParameter,
    SystemInfo,
    VersionResult,
)
from .._catalog import model_info
from .._connection import CallContext, ChannelContext
from .._errors import bad_request, path_not_found
from .._options import ServedModel
from ..engines.scripted import Script
from ._table import TABLE

__all__: list[str] = []

# --- system ----------------------------------------------------------------------------------


@TABLE.rpc(system_ep.LIST_DOWNLOADED_MODELS)
async def list_downloaded_models(context: CallContext, parameter: None) -> list[Any]:
    return [model_info(m.facts) for m in context.server.catalog.models]


@TABLE.rpc(system_ep.LIST_DOWNLOADED_MODEL_VARIANTS)
async def list_downloaded_model_variants(
    context: CallContext, parameter: ListDownloadedModelVariantsParameter
) -> list[Any]:
    models = context.server.catalog.models
    found = [model_info(m.facts) for m in models if m.key.lower() == parameter.model_key.lower()]
    if not found:
        raise path_not_found(parameter.model_key, [m.key for m in models])
    return found


@TABLE.rpc(system_ep.VERSION)
async def version(context: CallContext, parameter: None) -> VersionResult:
    return VersionResult(__version__, 0)


@TABLE.rpc(system_ep.INFO)
async def info(context: CallContext, parameter: None) -> SystemInfo:
    return SystemInfo(pid=os.getpid(), is_daemon=True, version=__version__)


@TABLE.rpc(system_ep.NOTIFY)
async def notify(context: CallContext, parameter: NotifyParameter) -> None:
    detail = f": {parameter.description}" if isinstance(parameter.description, str) else ""
    context.server.logs.server_log(
        f"Notification: {parameter.title}{detail}", owner=context.client_identifier
    )


_MAX_FLAG_LENGTH = 256


@TABLE.rpc(system_ep.SET_EXPERIMENT_FLAG)
async def set_experiment_flag(context: CallContext, parameter: SetExperimentFlagParameter) -> None:
    flags = context.server.experiment_flags
    limit = context.server.options.limits.max_experiment_flags
    if parameter.value and parameter.code not in flags:
        if len(flags) >= limit:
            raise bad_request(
                f"Too many experiment flags: this server keeps at most {limit} "
                "(limits.max_experiment_flags).",
                cause="Clear flags you no longer need (value false) first.",
            )
        if len(parameter.code) > _MAX_FLAG_LENGTH:
            raise bad_request(
                f"Experiment flag codes are at most {_MAX_FLAG_LENGTH} characters long.",
            )
        flags.add(parameter.code)
    else:
        flags.discard(parameter.code)


@TABLE.rpc(system_ep.GET_EXPERIMENT_FLAGS)
async def get_experiment_flags(context: CallContext, parameter: None) -> list[str]:
    return sorted(context.server.experiment_flags)


@TABLE.channel(system_ep.ALIVE)
async def alive(context: ChannelContext, parameter: None) -> None:
    # Open as long as the server lives; the client learns of its death when the socket closes.
    await anyio.sleep_forever()


# --- diagnostics -----------------------------------------------------------------------------


@TABLE.channel(diagnostics_ep.STREAM_LOGS)
async def stream_logs(context: ChannelContext, parameter: None) -> None:
    subscribe = context.server.logs.subscribe(context.client_identifier)
    async with subscribe as subscription, anyio.create_task_group() as group:

        async def end_on_stop() -> None:
            await context.cancel_requested.wait()
            group.cancel_scope.cancel()

        group.start_soon(end_on_stop)
        while True:
            event = await subscription.get()
            await context.send(StreamLogsLog(event))


# --- files -----------------------------------------------------------------------------------


@TABLE.rpc(files_ep.UPLOAD_FILE_BASE64)
async def upload_file_base64(
    context: CallContext, parameter: UploadFileBase64Parameter
) -> UploadFileBase64Result:
    store = context.server.files
    identifier, file_type, size = await anyio.to_thread.run_sync(
        store.save_base64, context.client_identifier, parameter.name, parameter.content_base64
    )
    return UploadFileBase64Result(identifier=identifier, file_type=file_type, size_bytes=size)


@TABLE.rpc(files_ep.GET_LOCAL_FILE_ABSOLUTE_PATH)
async def get_local_file_absolute_path(
    context: CallContext, parameter: GetLocalFileAbsolutePathParameter
) -> GetLocalFileAbsolutePathResult:
    path = context.server.files.path_of(context.client_identifier, parameter.file_name)
    return GetLocalFileAbsolutePathResult(str(path))


_PLAIN_TEXT_PARSER = DocumentParsingLibraryIdentifier("lmstudio-sdk-plain-text", __version__)


@TABLE.channel(files_ep.PARSE_DOCUMENT)
async def parse_document(
    context: ChannelContext, parameter: ParseDocumentCreationParameter
) -> None:
    store = context.server.files
    path = store.path_of(context.client_identifier, parameter.file_identifier)
    text = store.read_text(context.client_identifier, parameter.file_identifier)
    if text is None:
        raise bad_request(
            f"This server can only parse text documents, not {path.name!r}.",
            cause="Upload a .txt, .md, .csv, .json or other text file.",
        )
    await context.send(ParseDocumentParserLoaded(_PLAIN_TEXT_PARSER))
    await context.send(ParseDocumentProgress(1.0))
    await context.send(ParseDocumentResult(content=text, parser=_PLAIN_TEXT_PARSER))


# --- repository: a local catalogue of the models this server offers ---------------------------


def _repository(model: ServedModel) -> str:
    path = model.facts.path
    return path.rsplit("/", 1)[0] if "/" in path else model.key


@TABLE.rpc(repository_ep.SEARCH_MODELS)
async def search_models(
    context: CallContext, parameter: SearchModelsParameter
) -> SearchModelsResult:
    opts = parameter.opts
    term = opts.search_term.lower() if isinstance(opts.search_term, str) else ""
    formats = set(opts.compatibility_types) if isinstance(opts.compatibility_types, list) else None
    limit = opts.limit if isinstance(opts.limit, int) else 25
    results: list[ModelSearchResultEntry] = []
    seen: set[str] = set()
    for model in context.server.catalog.models:
        repository = _repository(model)
        haystack = f"{repository} {model.key} {model.facts.display_name}".lower()
        if repository in seen or (term and term not in haystack):
            continue
        if formats is not None and model.facts.format not in formats:
            continue
        seen.add(repository)
        results.append(
            ModelSearchResultEntry(
                name=repository,
                identifier=CatalogSearchResultIdentifier(repository),
                exact=term in (model.key.lower(), repository.lower()),
                staff_pick=False,
            )
        )
    return SearchModelsResult(results[:limit])


@TABLE.rpc(repository_ep.GET_MODEL_DOWNLOAD_OPTIONS)
async def get_model_download_options(
    context: CallContext, parameter: GetModelDownloadOptionsParameter
) -> GetModelDownloadOptionsResult:
    wanted = getattr(parameter.model_search_result_identifier, "identifier", None)
    options = [
        ModelDownloadOption(
            name=model.facts.path.rsplit("/", 1)[-1],
            size_bytes=int(model.facts.size_bytes),
            fit_estimation="fitWithoutGPU",
            download_identifier=model.facts.path,
            indexed_model_identifier=model.facts.path,
            compatibility_type=model.facts.format,
            quantization=model.facts.quantization.name if model.facts.quantization else "unknown",
            recommended=True,
        )
        for model in context.server.catalog.models
        if _repository(model) == wanted
    ]
    if not options:
        raise bad_request(
            f"No model in this server's catalogue is called {wanted!r}.",
            cause="Use an identifier returned by searchModels.",
        )
    return GetModelDownloadOptionsResult(options)


@TABLE.channel(repository_ep.DOWNLOAD_MODEL)
async def download_model(
    context: ChannelContext, parameter: DownloadModelCreationParameter
) -> None:
    model = next(
        (m for m in context.server.catalog.models if m.facts.path == parameter.download_identifier),
        None,
    )
    if model is None:
        raise bad_request(
            f"Nothing to download for {parameter.download_identifier!r}.",
            cause="Use a downloadIdentifier returned by getModelDownloadOptions.",
        )
    # Every model here is already on disk: the download is simulated with the scripted
    # engine's steps and pacing (pacing keeps a cancel test meaningful).
    script = model.script or Script(download_total_bytes=int(model.facts.size_bytes))
    with anyio.CancelScope() as scope:

        async def watch() -> None:
            await context.cancel_requested.wait()
            scope.cancel()

        async with anyio.create_task_group() as group:
            group.start_soon(watch)
            for step in script.download_steps():
                if script.download_step_seconds:
                    await anyio.sleep(script.download_step_seconds)
                speed = step.speed_bytes_per_second
                await context.send(
                    DownloadProgress(
                        DownloadProgressUpdate(
                            downloaded_bytes=int(step.downloaded_bytes),
                            total_bytes=int(step.total_bytes),
                            speed_bytes_per_second=speed if math.isfinite(speed) else 0.0,
                        )
                    )
                )
            group.cancel_scope.cancel()
    if scope.cancelled_caught or context.cancel_requested.is_set():
        raise bad_request(f"The download of {model.key} was cancelled.")
    await context.send(DownloadStartFinalizing())
    await context.send(DownloadModelSuccess(default_identifier=model.key))
