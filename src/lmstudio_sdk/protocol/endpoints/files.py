"""The ``files`` namespace: uploads, document parsing, retrieval (PROTOCOL.md 3.6).

Uploaded files belong to the client identity (identifier and passkey), not to the socket:
a file uploaded here can be used in a chat on the ``llm`` socket.
"""

from __future__ import annotations

from typing import Any

import attrs

from .._unset import UNSET, UnsetType
from ..codec import Unknown, converter, register_tagged_union, variant
from ..kv import KVConfig
from ..merging import LATEST_PROGRESS
from ._spec import ChannelSpec, RpcSpec
from .shared import StopPacket, StopToServerPacket, cancellable_channel

__all__ = [
    "GET_DOCUMENT_PARSING_LIBRARY",
    "GET_LOCAL_FILE_ABSOLUTE_PATH",
    "PARSE_DOCUMENT",
    "RETRIEVE",
    "UPLOAD_FILE_BASE64",
    "DocumentParsingLibraryIdentifier",
    "DocumentParsingOpts",
    "GetDocumentParsingLibraryParameter",
    "GetLocalFileAbsolutePathParameter",
    "GetLocalFileAbsolutePathResult",
    "PageOrLineRange",
    "ParseDocumentCreationParameter",
    "ParseDocumentParserLoaded",
    "ParseDocumentProgress",
    "ParseDocumentResult",
    "ParseDocumentToClientPacket",
    "RetrievalResult",
    "RetrievalResultEntry",
    "RetrieveCreationParameter",
    "RetrieveOnFileProcessList",
    "RetrieveOnFileProcessingEnd",
    "RetrieveOnFileProcessingStart",
    "RetrieveOnFileProcessingStepEnd",
    "RetrieveOnFileProcessingStepProgress",
    "RetrieveOnFileProcessingStepStart",
    "RetrieveOnSearchingEnd",
    "RetrieveOnSearchingStart",
    "RetrieveResult",
    "RetrieveToClientPacket",
    "UploadFileBase64Parameter",
    "UploadFileBase64Result",
]

NAMESPACE = "files"


@attrs.frozen
class GetLocalFileAbsolutePathParameter:
    file_name: str


@attrs.frozen
class GetLocalFileAbsolutePathResult:
    path: str


@attrs.frozen
class UploadFileBase64Parameter:
    name: str
    content_base64: str


@attrs.frozen
class UploadFileBase64Result:
    """``file_type``: ``image``, ``text/plain``, ``application/pdf``, ``application/word``,
    ``text/other`` or ``unknown``."""

    identifier: str
    file_type: str
    size_bytes: int


@attrs.frozen
class GetDocumentParsingLibraryParameter:
    file_identifier: str


@attrs.frozen
class DocumentParsingLibraryIdentifier:
    library: str
    version: str


# --- parseDocument -----------------------------------------------------------------------


@attrs.frozen
class DocumentParsingOpts:
    parser_id: DocumentParsingLibraryIdentifier | UnsetType = UNSET


@attrs.frozen
class ParseDocumentCreationParameter:
    file_identifier: str
    parse_opts: DocumentParsingOpts = attrs.Factory(DocumentParsingOpts)


@variant("parserLoaded")
class ParseDocumentParserLoaded:
    parser: DocumentParsingLibraryIdentifier


@variant("progress")
class ParseDocumentProgress:
    progress: float


@variant("result")
class ParseDocumentResult:
    content: str
    parser: DocumentParsingLibraryIdentifier


ParseDocumentToClientPacket = (
    ParseDocumentParserLoaded | ParseDocumentProgress | ParseDocumentResult | Unknown
)
register_tagged_union(ParseDocumentToClientPacket)


# --- retrieve ----------------------------------------------------------------------------


@attrs.frozen
class RetrieveCreationParameter:
    """Search ``file_identifiers`` for ``query``; ``config`` holds ``retrieval.*`` keys."""

    query: str
    file_identifiers: list[str]
    config: KVConfig = attrs.Factory(KVConfig)


PageOrLineRange = int | tuple[int, int]
"""A page or line number, or a ``(first, last)`` range."""


def _structure_page_or_line_range(value: Any, _: Any) -> int | tuple[int, int]:
    if isinstance(value, list) and len(value) == 2:
        first, last = (converter.structure(item, int) for item in value)
        return (first, last)
    if isinstance(value, list):
        raise ValueError(f"expected a [first, last] pair, got {len(value)} items")
    result: int = converter.structure(value, int)
    return result


converter.register_structure_hook_func(
    lambda tp: tp == PageOrLineRange, _structure_page_or_line_range
)


@attrs.frozen
class RetrievalResultEntry:
    """A matching chunk of the file at ``source_index`` in the request's ``file_identifiers``."""

    content: str
    score: float
    source_index: int
    page_number: int | tuple[int, int] | UnsetType = UNSET
    line_number: int | tuple[int, int] | UnsetType = UNSET


@attrs.frozen
class RetrievalResult:
    entries: list[RetrievalResultEntry]


# ``step`` is ``loading``, ``chunking`` or ``embedding``.


@variant("onFileProcessList")
class RetrieveOnFileProcessList:
    indices: list[int]


@variant("onFileProcessingStart")
class RetrieveOnFileProcessingStart:
    index: int


@variant("onFileProcessingEnd")
class RetrieveOnFileProcessingEnd:
    index: int


@variant("onFileProcessingStepStart")
class RetrieveOnFileProcessingStepStart:
    index: int
    step: str


@variant("onFileProcessingStepProgress")
class RetrieveOnFileProcessingStepProgress:
    index: int
    step: str
    progress: float


@variant("onFileProcessingStepEnd")
class RetrieveOnFileProcessingStepEnd:
    index: int
    step: str


@variant("onSearchingStart")
class RetrieveOnSearchingStart:
    pass


@variant("onSearchingEnd")
class RetrieveOnSearchingEnd:
    pass


@variant("result")
class RetrieveResult:
    result: RetrievalResult


RetrieveToClientPacket = (
    RetrieveOnFileProcessList
    | RetrieveOnFileProcessingStart
    | RetrieveOnFileProcessingEnd
    | RetrieveOnFileProcessingStepStart
    | RetrieveOnFileProcessingStepProgress
    | RetrieveOnFileProcessingStepEnd
    | RetrieveOnSearchingStart
    | RetrieveOnSearchingEnd
    | RetrieveResult
    | Unknown
)
register_tagged_union(RetrieveToClientPacket)


GET_LOCAL_FILE_ABSOLUTE_PATH = RpcSpec(
    NAMESPACE,
    "getLocalFileAbsolutePath",
    GetLocalFileAbsolutePathParameter,
    GetLocalFileAbsolutePathResult,
)
UPLOAD_FILE_BASE64 = RpcSpec(
    NAMESPACE, "uploadFileBase64", UploadFileBase64Parameter, UploadFileBase64Result
)
GET_DOCUMENT_PARSING_LIBRARY = RpcSpec(
    NAMESPACE,
    "getDocumentParsingLibrary",
    GetDocumentParsingLibraryParameter,
    DocumentParsingLibraryIdentifier,
)
RETRIEVE = ChannelSpec(
    NAMESPACE,
    "retrieve",
    RetrieveCreationParameter,
    RetrieveToClientPacket,
    StopToServerPacket,
    StopPacket(),
    merge=LATEST_PROGRESS,
)
PARSE_DOCUMENT = cancellable_channel(
    NAMESPACE,
    "parseDocument",
    ParseDocumentCreationParameter,
    ParseDocumentToClientPacket,
    merge=LATEST_PROGRESS,
)
