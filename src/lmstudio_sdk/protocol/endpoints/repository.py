"""The ``repository`` namespace: model search and download, and the LM Studio Hub
(PROTOCOL.md 3.7).

The SDKs use ``searchModels``, ``getModelDownloadOptions`` and ``downloadModel``. The rest
(artifacts, hub authentication, download plans, LM Link) is what the JS SDK and the ``lms``
CLI use; their shapes follow the current schema.

``createDownloadPlan`` has two ways out: ``cancelPlan`` before the plan is committed (the
spec's ``cancel_packet``), and ``cancelDownload`` after ``commit`` started the download.
"""

# The payloads of the hub and of download plans live in _hub.py and _plans.py (one job
# each) and are re-exported from here with their __all__, not listed a second time.
# ruff: noqa: F405

from __future__ import annotations

from typing import Any

import attrs

from ...errors import LocalProtocolError
from .._unset import UNSET, UnsetType
from ..codec import Unknown, register_tagged_union, variant
from ..merging import LATEST_PROGRESS
from ..naming import to_camel
from . import _hub, _plans
from ._checks import _check_kebab_case, _check_kebab_case_with_dots, _check_limit
from ._hub import *  # noqa: F403
from ._plans import *  # noqa: F403
from ._spec import ChannelSpec, RpcSpec
from .shared import cancellable_channel

__all__ = [
    "CREATE_DOWNLOAD_PLAN",
    "DEAUTHENTICATE",
    "DOWNLOAD_ARTIFACT",
    "DOWNLOAD_MODEL",
    "ENSURE_AUTHENTICATED",
    "FUZZY_FIND_STAFF_PICKS",
    "GET_AUTHENTICATION_STATUS",
    "GET_LOCAL_ARTIFACT_FILES",
    "GET_MODEL_CATALOG",
    "GET_MODEL_DOWNLOAD_OPTIONS",
    "GET_WRITABLE_ARTIFACT_OWNERS",
    "INSTALL_LOCAL_PLUGIN",
    "INSTALL_PLUGIN_DEPENDENCIES",
    "IS_AUTHENTICATED",
    "LM_LINK_SET_DISABLED",
    "LM_LINK_SET_PREFERRED_DEVICE",
    "LM_LINK_STATUS",
    "LM_LINK_UPDATE_DEVICE_NAME",
    "LOGIN_AS_COMPUTE_DEVICE",
    "LOGIN_WITH_PRE_AUTHENTICATED_KEYS",
    "PUSH_ARTIFACT",
    "SEARCH_MODELS",
    "CatalogSearchResultIdentifier",
    "DownloadArtifactCreationParameter",
    "DownloadArtifactToClientPacket",
    "DownloadModelCreationParameter",
    "DownloadModelSuccess",
    "DownloadModelToClientPacket",
    "GetLocalArtifactFilesParameter",
    "GetLocalArtifactFilesResult",
    "GetModelDownloadOptionsParameter",
    "GetModelDownloadOptionsResult",
    "GetWritableArtifactOwnersResult",
    "HFSearchResultIdentifier",
    "InstallLocalPluginParameter",
    "InstallPluginDependenciesParameter",
    "LocalArtifactFileEntry",
    "LocalArtifactFileList",
    "ModelDownloadOption",
    "ModelSearchOpts",
    "ModelSearchResultEntry",
    "ModelSearchResultIdentifier",
    "PushArtifactCreationParameter",
    "PushArtifactMessage",
    "PushArtifactToClientPacket",
    "SearchModelsParameter",
    "SearchModelsResult",
    *_hub.__all__,
    *_plans.__all__,
]

NAMESPACE = "repository"

# --- search and download (what the SDKs use) ---------------------------------------------


@attrs.frozen
class ModelSearchOpts:
    """``compatibility_types`` are model formats (``gguf``, ``safetensors``...)."""

    search_term: str | UnsetType = UNSET
    limit: int | UnsetType = attrs.field(default=UNSET, validator=_check_limit(25))
    compatibility_types: list[str] | UnsetType = UNSET


@attrs.frozen
class SearchModelsParameter:
    opts: ModelSearchOpts = attrs.Factory(ModelSearchOpts)


@variant("catalog")
class CatalogSearchResultIdentifier:
    identifier: str


@variant("hf")
class HFSearchResultIdentifier:
    """A Hugging Face repository."""

    identifier: str


ModelSearchResultIdentifier = CatalogSearchResultIdentifier | HFSearchResultIdentifier | Unknown
register_tagged_union(ModelSearchResultIdentifier)


@attrs.frozen
class ModelSearchResultEntry:
    name: str
    identifier: ModelSearchResultIdentifier
    exact: bool | UnsetType = UNSET
    staff_pick: bool | UnsetType = UNSET


@attrs.frozen
class SearchModelsResult:
    results: list[ModelSearchResultEntry]


@attrs.frozen
class GetModelDownloadOptionsParameter:
    model_search_result_identifier: ModelSearchResultIdentifier


@attrs.frozen(kw_only=True)
class ModelDownloadOption:
    """One downloadable file of a search result.

    ``fit_estimation``: ``fullGPUOffload``, ``partialGPUOffload``, ``fitWithoutGPU`` or
    ``willNotFit``. ``compatibility_type`` (the format) is ``UNSET`` only from older servers.
    """

    name: str
    size_bytes: int
    fit_estimation: str
    download_identifier: str
    indexed_model_identifier: str
    compatibility_type: str | UnsetType = UNSET
    quantization: str | UnsetType = UNSET
    recommended: bool | UnsetType = UNSET


@attrs.frozen
class GetModelDownloadOptionsResult:
    results: list[ModelDownloadOption]


@attrs.frozen
class DownloadModelCreationParameter:
    download_identifier: str


@variant("success")
class DownloadModelSuccess:
    """``default_identifier`` is what to load the downloaded model with."""

    default_identifier: str


DownloadModelToClientPacket = (
    DownloadProgress | DownloadStartFinalizing | DownloadModelSuccess | Unknown
)
register_tagged_union(DownloadModelToClientPacket)


# --- artifacts ---------------------------------------------------------------------------


@attrs.frozen
class InstallPluginDependenciesParameter:
    plugin_folder: str


@attrs.frozen
class GetLocalArtifactFilesParameter:
    path: str


@attrs.frozen
class LocalArtifactFileEntry:
    relative_path: str
    size_bytes: int


@attrs.frozen
class LocalArtifactFileList:
    """``used_ignore_file`` is the ignore file that was applied, if any."""

    files: list[LocalArtifactFileEntry]
    used_ignore_file: str | None


@attrs.frozen
class GetLocalArtifactFilesResult:
    file_list: LocalArtifactFileList


@attrs.frozen
class GetWritableArtifactOwnersResult:
    owners: list[str]


@attrs.frozen
class DownloadArtifactCreationParameter:
    """``revision_number=None`` downloads the latest revision."""

    artifact_owner: str = attrs.field(validator=_check_kebab_case)
    artifact_name: str = attrs.field(validator=_check_kebab_case_with_dots)
    revision_number: int | None
    path: str


DownloadArtifactToClientPacket = (
    DownloadProgress | DownloadStartFinalizing | DownloadSuccess | Unknown
)
register_tagged_union(DownloadArtifactToClientPacket)


def _check_description(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, str) and len(value) > 1000:
        raise LocalProtocolError(
            f"{to_camel(attribute.name)} must be at most 1000 characters, got {len(value)}"
        )


@attrs.frozen
class PushArtifactCreationParameter:
    path: str
    description: str | UnsetType = attrs.field(default=UNSET, validator=_check_description)
    make_private: bool | UnsetType = UNSET
    write_revision: bool | UnsetType = UNSET
    overrides: Any = UNSET


@variant("message")
class PushArtifactMessage:
    """A progress message of the push, for display."""

    message: str


PushArtifactToClientPacket = PushArtifactMessage | Unknown
register_tagged_union(PushArtifactToClientPacket)


@attrs.frozen
class InstallLocalPluginParameter:
    plugin_path: str


# --- endpoints ---------------------------------------------------------------------------

SEARCH_MODELS = RpcSpec(NAMESPACE, "searchModels", SearchModelsParameter, SearchModelsResult)
GET_MODEL_DOWNLOAD_OPTIONS = RpcSpec(
    NAMESPACE,
    "getModelDownloadOptions",
    GetModelDownloadOptionsParameter,
    GetModelDownloadOptionsResult,
)
INSTALL_PLUGIN_DEPENDENCIES: RpcSpec[InstallPluginDependenciesParameter, None] = RpcSpec(
    NAMESPACE, "installPluginDependencies", InstallPluginDependenciesParameter, None
)
GET_LOCAL_ARTIFACT_FILES = RpcSpec(
    NAMESPACE, "getLocalArtifactFiles", GetLocalArtifactFilesParameter, GetLocalArtifactFilesResult
)
GET_WRITABLE_ARTIFACT_OWNERS: RpcSpec[None, GetWritableArtifactOwnersResult] = RpcSpec(
    NAMESPACE, "getWritableArtifactOwners", None, GetWritableArtifactOwnersResult
)
IS_AUTHENTICATED: RpcSpec[None, IsAuthenticatedResult] = RpcSpec(
    NAMESPACE, "isAuthenticated", None, IsAuthenticatedResult
)
GET_AUTHENTICATION_STATUS: RpcSpec[None, GetAuthenticationStatusResult] = RpcSpec(
    NAMESPACE, "getAuthenticationStatus", None, GetAuthenticationStatusResult
)
DEAUTHENTICATE: RpcSpec[None, None] = RpcSpec(NAMESPACE, "deauthenticate", None, None)
LOGIN_AS_COMPUTE_DEVICE = RpcSpec(
    NAMESPACE,
    "loginAsComputeDevice",
    LoginAsComputeDeviceParameter,
    ComputeDeviceAuthenticationStatus,
)
LOGIN_WITH_PRE_AUTHENTICATED_KEYS = RpcSpec(
    NAMESPACE,
    "loginWithPreAuthenticatedKeys",
    LoginWithPreAuthenticatedKeysParameter,
    LoginWithPreAuthenticatedKeysResult,
)
INSTALL_LOCAL_PLUGIN: RpcSpec[InstallLocalPluginParameter, None] = RpcSpec(
    NAMESPACE, "installLocalPlugin", InstallLocalPluginParameter, None
)
GET_MODEL_CATALOG: RpcSpec[None, GetModelCatalogResult] = RpcSpec(
    NAMESPACE, "getModelCatalog", None, GetModelCatalogResult
)
FUZZY_FIND_STAFF_PICKS = RpcSpec(
    NAMESPACE, "fuzzyFindStaffPicks", FuzzyFindStaffPicksParameter, FuzzyFindStaffPicksResult
)
LM_LINK_STATUS: RpcSpec[None, LmLinkStatusResult] = RpcSpec(
    NAMESPACE, "lmLinkStatus", None, LmLinkStatusResult
)
LM_LINK_SET_DISABLED: RpcSpec[LmLinkSetDisabledParameter, None] = RpcSpec(
    NAMESPACE, "lmLinkSetDisabled", LmLinkSetDisabledParameter, None
)
LM_LINK_UPDATE_DEVICE_NAME: RpcSpec[LmLinkUpdateDeviceNameParameter, None] = RpcSpec(
    NAMESPACE, "lmLinkUpdateDeviceName", LmLinkUpdateDeviceNameParameter, None
)
LM_LINK_SET_PREFERRED_DEVICE: RpcSpec[LmLinkSetPreferredDeviceParameter, None] = RpcSpec(
    NAMESPACE, "lmLinkSetPreferredDevice", LmLinkSetPreferredDeviceParameter, None
)

DOWNLOAD_MODEL = cancellable_channel(
    NAMESPACE,
    "downloadModel",
    DownloadModelCreationParameter,
    DownloadModelToClientPacket,
    merge=LATEST_PROGRESS,
)
DOWNLOAD_ARTIFACT = cancellable_channel(
    NAMESPACE,
    "downloadArtifact",
    DownloadArtifactCreationParameter,
    DownloadArtifactToClientPacket,
    merge=LATEST_PROGRESS,
)
# No client packet: the push runs to its end (or until the socket closes).
PUSH_ARTIFACT = ChannelSpec(
    NAMESPACE, "pushArtifact", PushArtifactCreationParameter, PushArtifactToClientPacket, None
)
ENSURE_AUTHENTICATED = ChannelSpec(
    NAMESPACE, "ensureAuthenticated", None, EnsureAuthenticatedToClientPacket, None
)
CREATE_DOWNLOAD_PLAN = ChannelSpec(
    NAMESPACE,
    "createDownloadPlan",
    CreateDownloadPlanCreationParameter,
    CreateDownloadPlanToClientPacket,
    CreateDownloadPlanToServerPacket,
    CreateDownloadPlanCancelPlan(),
    merge=LATEST_PROGRESS,
)
