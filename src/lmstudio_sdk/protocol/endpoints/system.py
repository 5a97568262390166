"""The ``system`` namespace: downloaded models, version, notifications (PROTOCOL.md 3.4).

``alive`` is a channel that carries nothing either way: it stays open while the server
lives, and its ``channelError``/``channelClose`` tells the client the server went away.
"""

from __future__ import annotations

from typing import Any

import attrs

from ...errors import LocalProtocolError
from .._unset import UNSET, UnsetType
from ..codec import Unknown
from ..naming import to_camel
from ._spec import ChannelSpec, RpcSpec
from .shared import ModelInfo

__all__ = [
    "ALIVE",
    "GET_EXPERIMENT_FLAGS",
    "INFO",
    "LIST_DOWNLOADED_MODELS",
    "LIST_DOWNLOADED_MODEL_VARIANTS",
    "NOTIFY",
    "REQUEST_SHUTDOWN",
    "SET_EXPERIMENT_FLAG",
    "START_HTTP_SERVER",
    "STOP_HTTP_SERVER",
    "VERSION",
    "ListDownloadedModelVariantsParameter",
    "NotifyParameter",
    "SetExperimentFlagParameter",
    "StartHttpServerParameter",
    "SystemInfo",
    "VersionResult",
]

NAMESPACE = "system"


@attrs.frozen
class ListDownloadedModelVariantsParameter:
    model_key: str


@attrs.frozen
class NotifyParameter:
    """A notification shown in the LM Studio app."""

    title: str
    description: str | UnsetType = UNSET
    no_auto_dismiss: bool | UnsetType = UNSET


@attrs.frozen
class VersionResult:
    """``version`` is ``"major.minor.patch"``."""

    version: str
    build: int


@attrs.frozen
class SetExperimentFlagParameter:
    code: str
    value: bool


def _check_port(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, int) and not 1 <= value <= 65535:
        raise LocalProtocolError(f"{to_camel(attribute.name)} must be 1 to 65535, got {value}")


@attrs.frozen
class StartHttpServerParameter:
    port: int | UnsetType = attrs.field(default=UNSET, validator=_check_port)
    cors: bool | UnsetType = UNSET
    network_interface: str | UnsetType = UNSET


@attrs.frozen
class SystemInfo:
    """The server process: its pid, whether it runs headless, and its version."""

    pid: int
    is_daemon: bool
    version: str


LIST_DOWNLOADED_MODELS: RpcSpec[None, list[ModelInfo]] = RpcSpec(
    NAMESPACE, "listDownloadedModels", None, list[ModelInfo]
)
LIST_DOWNLOADED_MODEL_VARIANTS = RpcSpec(
    NAMESPACE, "listDownloadedModelVariants", ListDownloadedModelVariantsParameter, list[ModelInfo]
)
NOTIFY: RpcSpec[NotifyParameter, None] = RpcSpec(NAMESPACE, "notify", NotifyParameter, None)
VERSION: RpcSpec[None, VersionResult] = RpcSpec(NAMESPACE, "version", None, VersionResult)
SET_EXPERIMENT_FLAG: RpcSpec[SetExperimentFlagParameter, None] = RpcSpec(
    NAMESPACE, "setExperimentFlag", SetExperimentFlagParameter, None
)
GET_EXPERIMENT_FLAGS: RpcSpec[None, list[str]] = RpcSpec(
    NAMESPACE, "getExperimentFlags", None, list[str]
)
START_HTTP_SERVER: RpcSpec[StartHttpServerParameter, None] = RpcSpec(
    NAMESPACE, "startHttpServer", StartHttpServerParameter, None
)
STOP_HTTP_SERVER: RpcSpec[None, None] = RpcSpec(NAMESPACE, "stopHttpServer", None, None)
INFO: RpcSpec[None, SystemInfo] = RpcSpec(NAMESPACE, "info", None, SystemInfo)
REQUEST_SHUTDOWN: RpcSpec[None, None] = RpcSpec(NAMESPACE, "requestShutdown", None, None)

# No packet type exists either way; anything the server sends is kept as ``Unknown``.
ALIVE = ChannelSpec(NAMESPACE, "alive", None, Unknown, None, None)
