"""The ``repository`` namespace: model search and download, and the LM Studio Hub
(PROTOCOL.md 3.7).

The SDKs use ``searchModels``, ``getModelDownloadOptions`` and ``downloadModel``. The rest
(artifacts, hub authentication, download plans, LM Link) is what the JS SDK and the ``lms``
CLI use; their shapes follow the current schema.

``createDownloadPlan`` has two ways out: ``cancelPlan`` before the plan is committed (the
spec's ``cancel_packet``), and ``cancelDownload`` after ``commit`` started the download.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import attrs

from ...errors import LocalProtocolError
from .._unset import UNSET, UnsetType
from ..codec import Unknown, converter, register_tagged_union
from ..merging import LATEST_PROGRESS
from ..naming import to_camel
from ._spec import ChannelSpec, RpcSpec
from .shared import CancelPacket, CancelToServerPacket

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
    "ArtifactDownloadPlan",
    "ArtifactDownloadPlanArtifactNode",
    "ArtifactDownloadPlanDownloadOption",
    "ArtifactDownloadPlanModelInfo",
    "ArtifactDownloadPlanModelNode",
    "ArtifactDownloadPlanNode",
    "ArtifactDownloadTarget",
    "AuthenticationStatus",
    "BoolOrMixed",
    "CatalogSearchResultIdentifier",
    "ComputeDeviceAuthenticationStatus",
    "CreateDownloadPlanCancelDownload",
    "CreateDownloadPlanCancelPlan",
    "CreateDownloadPlanCommit",
    "CreateDownloadPlanCreationParameter",
    "CreateDownloadPlanOpts",
    "CreateDownloadPlanPlanReady",
    "CreateDownloadPlanPlanUpdated",
    "CreateDownloadPlanSetSelectedDownloadOptionIndex",
    "CreateDownloadPlanToClientPacket",
    "CreateDownloadPlanToServerPacket",
    "DownloadArtifactCreationParameter",
    "DownloadArtifactToClientPacket",
    "DownloadModelCreationParameter",
    "DownloadModelSuccess",
    "DownloadModelToClientPacket",
    "DownloadPlanTarget",
    "DownloadProgress",
    "DownloadProgressUpdate",
    "DownloadStartFinalizing",
    "DownloadSuccess",
    "EnsureAuthenticatedAuthenticated",
    "EnsureAuthenticatedAuthenticationCode",
    "EnsureAuthenticatedToClientPacket",
    "FileNamePreference",
    "FuzzyFindStaffPicksParameter",
    "FuzzyFindStaffPicksResult",
    "GetAuthenticationStatusResult",
    "GetLocalArtifactFilesParameter",
    "GetLocalArtifactFilesResult",
    "GetModelCatalogResult",
    "GetModelDownloadOptionsParameter",
    "GetModelDownloadOptionsResult",
    "GetWritableArtifactOwnersResult",
    "HFSearchResultIdentifier",
    "HubEmbeddingModelMetadata",
    "HubLLMMetadata",
    "HubModel",
    "HubModelMetadata",
    "HuggingFaceModelDownloadSource",
    "InstallLocalPluginParameter",
    "InstallPluginDependenciesParameter",
    "IsAuthenticatedResult",
    "LmLinkLastError",
    "LmLinkPeer",
    "LmLinkSetDisabledParameter",
    "LmLinkSetPreferredDeviceParameter",
    "LmLinkStatusResult",
    "LmLinkUpdateDeviceNameParameter",
    "LocalArtifactFileEntry",
    "LocalArtifactFileList",
    "LoggedInUserAuthenticationStatus",
    "LoginAsComputeDeviceParameter",
    "LoginWithPreAuthenticatedKeysParameter",
    "LoginWithPreAuthenticatedKeysResult",
    "ModelDownloadOption",
    "ModelDownloadSource",
    "ModelDownloadTarget",
    "ModelSearchOpts",
    "ModelSearchResultEntry",
    "ModelSearchResultIdentifier",
    "NoAuthenticationStatus",
    "PushArtifactCreationParameter",
    "PushArtifactMessage",
    "PushArtifactToClientPacket",
    "QuantNamePreference",
    "ResolutionPreference",
    "SearchModelsParameter",
    "SearchModelsResult",
    "StaffPick",
]

NAMESPACE = "repository"

_KEBAB_CASE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_KEBAB_CASE_WITH_DOTS = re.compile(r"[a-z0-9]+(?:[-.][a-z0-9]+)*")


def _check_kebab_case(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, str) and not _KEBAB_CASE.fullmatch(value):
        raise LocalProtocolError(
            f"{to_camel(attribute.name)} must be kebab-case (lowercase letters, digits and "
            f"single dashes), got {value!r}"
        )


def _check_kebab_case_with_dots(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, str) and not _KEBAB_CASE_WITH_DOTS.fullmatch(value):
        raise LocalProtocolError(
            f"{to_camel(attribute.name)} must be lowercase letters and digits separated by "
            f"single dashes or dots, got {value!r}"
        )


def _check_limit(maximum: int | None) -> Any:
    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, int) and (value < 1 or (maximum is not None and value > maximum)):
            bound = f"1 to {maximum}" if maximum is not None else "at least 1"
            raise LocalProtocolError(f"{to_camel(attribute.name)} must be {bound}, got {value}")

    return check


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


@attrs.frozen
class CatalogSearchResultIdentifier:
    type: Literal["catalog"] = attrs.field(default="catalog", init=False)
    identifier: str


@attrs.frozen
class HFSearchResultIdentifier:
    """A Hugging Face repository."""

    type: Literal["hf"] = attrs.field(default="hf", init=False)
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


@attrs.frozen
class DownloadProgressUpdate:
    downloaded_bytes: int
    total_bytes: int
    speed_bytes_per_second: float


@attrs.frozen
class DownloadProgress:
    type: Literal["downloadProgress"] = attrs.field(default="downloadProgress", init=False)
    update: DownloadProgressUpdate


@attrs.frozen
class DownloadStartFinalizing:
    type: Literal["startFinalizing"] = attrs.field(default="startFinalizing", init=False)


@attrs.frozen
class DownloadModelSuccess:
    """``default_identifier`` is what to load the downloaded model with."""

    type: Literal["success"] = attrs.field(default="success", init=False)
    default_identifier: str


@attrs.frozen
class DownloadSuccess:
    """The end of an artifact download or a download plan (no payload)."""

    type: Literal["success"] = attrs.field(default="success", init=False)


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


@attrs.frozen
class PushArtifactMessage:
    """A progress message of the push, for display."""

    type: Literal["message"] = attrs.field(default="message", init=False)
    message: str


PushArtifactToClientPacket = PushArtifactMessage | Unknown
register_tagged_union(PushArtifactToClientPacket)


@attrs.frozen
class InstallLocalPluginParameter:
    plugin_path: str


# --- hub authentication ------------------------------------------------------------------


@attrs.frozen
class IsAuthenticatedResult:
    authenticated: bool


@attrs.frozen
class NoAuthenticationStatus:
    type: Literal["none"] = attrs.field(default="none", init=False)


@attrs.frozen
class LoggedInUserAuthenticationStatus:
    type: Literal["loggedInUser"] = attrs.field(default="loggedInUser", init=False)
    user_name: str


@attrs.frozen
class ComputeDeviceAuthenticationStatus:
    type: Literal["computeDevice"] = attrs.field(default="computeDevice", init=False)
    owner_username: str
    owner_is_organization: bool


AuthenticationStatus = (
    NoAuthenticationStatus
    | LoggedInUserAuthenticationStatus
    | ComputeDeviceAuthenticationStatus
    | Unknown
)
register_tagged_union(AuthenticationStatus)


@attrs.frozen
class GetAuthenticationStatusResult:
    authentication_status: AuthenticationStatus


def _check_token(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value == "":
        raise LocalProtocolError(f"{to_camel(attribute.name)} must not be empty")


@attrs.frozen
class LoginAsComputeDeviceParameter:
    token: str = attrs.field(validator=_check_token)


@attrs.frozen
class LoginWithPreAuthenticatedKeysParameter:
    key_id: str
    public_key: str
    private_key: str


@attrs.frozen
class LoginWithPreAuthenticatedKeysResult:
    user_name: str


@attrs.frozen
class EnsureAuthenticatedAuthenticationCode:
    """Show the user ``code`` and where to enter it (``manual_url``, or ``filled_url``)."""

    type: Literal["authenticationCode"] = attrs.field(default="authenticationCode", init=False)
    code: str
    manual_url: str
    filled_url: str


@attrs.frozen
class EnsureAuthenticatedAuthenticated:
    type: Literal["authenticated"] = attrs.field(default="authenticated", init=False)


EnsureAuthenticatedToClientPacket = (
    EnsureAuthenticatedAuthenticationCode | EnsureAuthenticatedAuthenticated | Unknown
)
register_tagged_union(EnsureAuthenticatedToClientPacket)


# --- hub catalog -------------------------------------------------------------------------

BoolOrMixed = bool | Literal["mixed"]
"""``true``, ``false``, or ``"mixed"`` when the variants of a hub model differ."""


def _structure_bool_or_mixed(value: Any, _: Any) -> bool | Literal["mixed"]:
    if isinstance(value, bool) or value == "mixed":
        return value  # type: ignore[no-any-return]
    raise ValueError(f'expected true, false or "mixed", got {value!r}')


converter.register_structure_hook_func(lambda tp: tp == BoolOrMixed, _structure_bool_or_mixed)


@attrs.frozen(kw_only=True)
class HubLLMMetadata:
    type: Literal["llm"] = attrs.field(default="llm", init=False)
    architectures: list[str]
    compatibility_types: list[str]
    params_strings: list[str]
    min_memory_usage_bytes: float
    trained_for_tool_use: bool | Literal["mixed"]
    vision: bool | Literal["mixed"]
    reasoning: bool | Literal["mixed"]
    context_lengths: list[float]


@attrs.frozen(kw_only=True)
class HubEmbeddingModelMetadata:
    type: Literal["embedding"] = attrs.field(default="embedding", init=False)
    architectures: list[str]
    compatibility_types: list[str]
    params_strings: list[str]
    min_memory_usage_bytes: float
    context_lengths: list[float]


HubModelMetadata = HubLLMMetadata | HubEmbeddingModelMetadata | Unknown
register_tagged_union(HubModelMetadata)


@attrs.frozen(kw_only=True)
class HubModel:
    """A model of the LM Studio catalog; ``staff_picked_at`` is a timestamp (ms)."""

    type: Literal["model"] = attrs.field(default="model", init=False)
    owner: str
    name: str
    description: str
    downloads: float
    like_count: float
    metadata: HubModelMetadata
    staff_picked_at: float | UnsetType = UNSET


@attrs.frozen
class GetModelCatalogResult:
    models: list[HubModel]


@attrs.frozen
class FuzzyFindStaffPicksParameter:
    search_term: str | UnsetType = UNSET
    limit: int | UnsetType = attrs.field(default=UNSET, validator=_check_limit(None))
    compatibility_types: list[str] | UnsetType = UNSET


@attrs.frozen(kw_only=True)
class StaffPick:
    owner: str
    name: str
    revision_number: int
    created_at_timestamp: int
    description: str
    exact: bool


@attrs.frozen
class FuzzyFindStaffPicksResult:
    results: list[StaffPick]


# --- LM Link -----------------------------------------------------------------------------


@attrs.frozen
class LmLinkPeer:
    """``status``: ``connected`` or ``disconnected``."""

    device_identifier: str
    device_name: str
    status: str


@attrs.frozen
class LmLinkLastError:
    message: str
    timestamp: int


@attrs.frozen(kw_only=True)
class LmLinkStatusResult:
    """``status``: ``offline``, ``starting``, ``online`` or ``stopping``; ``issues`` such as
    ``notLoggedIn``. ``device_identifier`` is ``None`` until the device is registered."""

    status: str
    issues: list[str]
    peers: list[LmLinkPeer]
    device_identifier: str | None
    device_name: str
    preferred_device_identifier: str | UnsetType = UNSET
    reconnect_in_seconds: int | UnsetType = UNSET
    last_error: LmLinkLastError | UnsetType = UNSET


@attrs.frozen
class LmLinkSetDisabledParameter:
    disabled: bool


@attrs.frozen
class LmLinkUpdateDeviceNameParameter:
    device_name: str


@attrs.frozen
class LmLinkSetPreferredDeviceParameter:
    device_identifier: str


# --- download plans ----------------------------------------------------------------------


@attrs.frozen
class HuggingFaceModelDownloadSource:
    type: Literal["huggingface"] = attrs.field(default="huggingface", init=False)
    user: str
    repo: str


ModelDownloadSource = HuggingFaceModelDownloadSource | Unknown
register_tagged_union(ModelDownloadSource)


@attrs.frozen
class ArtifactDownloadTarget:
    type: Literal["artifact"] = attrs.field(default="artifact", init=False)
    owner: str = attrs.field(validator=_check_kebab_case)
    name: str = attrs.field(validator=_check_kebab_case_with_dots)


@attrs.frozen
class ModelDownloadTarget:
    type: Literal["model"] = attrs.field(default="model", init=False)
    source: ModelDownloadSource


DownloadPlanTarget = ArtifactDownloadTarget | ModelDownloadTarget | Unknown
register_tagged_union(DownloadPlanTarget)


@attrs.frozen
class FileNamePreference:
    type: Literal["fileName"] = attrs.field(default="fileName", init=False)
    file_name: str


@attrs.frozen
class QuantNamePreference:
    type: Literal["quantName"] = attrs.field(default="quantName", init=False)
    quant_name: str


ResolutionPreference = FileNamePreference | QuantNamePreference | Unknown
register_tagged_union(ResolutionPreference)


@attrs.frozen
class CreateDownloadPlanOpts:
    """Which file to pick when a model has several, in order of preference."""

    resolution_preference: list[ResolutionPreference] | UnsetType = UNSET
    compatibility_types: list[str] | UnsetType = UNSET


@attrs.frozen
class CreateDownloadPlanCreationParameter:
    target: DownloadPlanTarget
    opts: CreateDownloadPlanOpts | UnsetType = UNSET


@attrs.frozen(kw_only=True)
class ArtifactDownloadPlanModelInfo:
    display_name: str
    size_bytes: int
    compatibility_type: str
    quant_name: str | UnsetType = UNSET
    model_key: str | UnsetType = UNSET


@attrs.frozen(kw_only=True)
class ArtifactDownloadPlanDownloadOption:
    """``availability``: ``notDownloaded``, ``downloading`` or ``downloaded``."""

    display_name: str
    size_bytes: int
    compatibility_type: str
    fit_estimation: str
    availability: str
    quant_name: str | UnsetType = UNSET
    recommended: bool | UnsetType = UNSET


@attrs.frozen(kw_only=True)
class ArtifactDownloadPlanArtifactNode:
    """``state``: ``pending``, ``fetching``, ``satisfied`` or ``completed``."""

    type: Literal["artifact"] = attrs.field(default="artifact", init=False)
    owner: str
    name: str
    state: str
    dependency_nodes: list[int]
    artifact_type: str | UnsetType = UNSET
    size_bytes: int | UnsetType = UNSET


@attrs.frozen(kw_only=True)
class ArtifactDownloadPlanModelNode:
    type: Literal["model"] = attrs.field(default="model", init=False)
    state: str
    dependency_label: str
    resolved_sources: int | UnsetType = UNSET
    total_sources: int | UnsetType = UNSET
    already_owned: ArtifactDownloadPlanModelInfo | UnsetType = UNSET
    selected: ArtifactDownloadPlanModelInfo | UnsetType = UNSET
    download_options: list[ArtifactDownloadPlanDownloadOption] | UnsetType = UNSET
    selected_download_option_index: int | UnsetType | None = UNSET
    recommended_download_option_index: int | UnsetType | None = UNSET


ArtifactDownloadPlanNode = (
    ArtifactDownloadPlanArtifactNode | ArtifactDownloadPlanModelNode | Unknown
)
register_tagged_union(ArtifactDownloadPlanNode)


@attrs.frozen(kw_only=True)
class ArtifactDownloadPlan:
    """``download_action``: ``none``, ``startNewDownload`` or ``attachToExistingDownload``.

    ``version`` increases with every update; a selection names the version it applies to.
    """

    nodes: list[ArtifactDownloadPlanNode]
    download_size_bytes: int
    download_action: str
    version: int
    download_job_identifier: str | UnsetType = UNSET


@attrs.frozen
class CreateDownloadPlanPlanUpdated:
    type: Literal["planUpdated"] = attrs.field(default="planUpdated", init=False)
    plan: ArtifactDownloadPlan


@attrs.frozen
class CreateDownloadPlanPlanReady:
    type: Literal["planReady"] = attrs.field(default="planReady", init=False)
    plan: ArtifactDownloadPlan


CreateDownloadPlanToClientPacket = (
    CreateDownloadPlanPlanUpdated
    | CreateDownloadPlanPlanReady
    | DownloadProgress
    | DownloadStartFinalizing
    | DownloadSuccess
    | Unknown
)
register_tagged_union(CreateDownloadPlanToClientPacket)


@attrs.frozen
class CreateDownloadPlanCancelDownload:
    """Cancel the download started by ``commit``."""

    type: Literal["cancelDownload"] = attrs.field(default="cancelDownload", init=False)


@attrs.frozen
class CreateDownloadPlanSetSelectedDownloadOptionIndex:
    """Choose a download option of a model node (``None`` clears the choice)."""

    type: Literal["setSelectedDownloadOptionIndex"] = attrs.field(
        default="setSelectedDownloadOptionIndex", init=False
    )
    node_index: int
    selected_download_option_index: int | None
    requested_plan_version: int


@attrs.frozen
class CreateDownloadPlanCommit:
    """Start downloading the plan."""

    type: Literal["commit"] = attrs.field(default="commit", init=False)


@attrs.frozen
class CreateDownloadPlanCancelPlan:
    """Abandon the plan before it is committed."""

    type: Literal["cancelPlan"] = attrs.field(default="cancelPlan", init=False)


CreateDownloadPlanToServerPacket = (
    CreateDownloadPlanCancelDownload
    | CreateDownloadPlanSetSelectedDownloadOptionIndex
    | CreateDownloadPlanCommit
    | CreateDownloadPlanCancelPlan
    | Unknown
)
register_tagged_union(CreateDownloadPlanToServerPacket)


# --- endpoints ---------------------------------------------------------------------------

SEARCH_MODELS = RpcSpec(NAMESPACE, "searchModels", SearchModelsParameter, SearchModelsResult)
GET_MODEL_DOWNLOAD_OPTIONS = RpcSpec(
    NAMESPACE,
    "getModelDownloadOptions",
    GetModelDownloadOptionsParameter,
    GetModelDownloadOptionsResult,
)
INSTALL_PLUGIN_DEPENDENCIES = RpcSpec(
    NAMESPACE, "installPluginDependencies", InstallPluginDependenciesParameter, None
)
GET_LOCAL_ARTIFACT_FILES = RpcSpec(
    NAMESPACE, "getLocalArtifactFiles", GetLocalArtifactFilesParameter, GetLocalArtifactFilesResult
)
GET_WRITABLE_ARTIFACT_OWNERS = RpcSpec(
    NAMESPACE, "getWritableArtifactOwners", None, GetWritableArtifactOwnersResult
)
IS_AUTHENTICATED = RpcSpec(NAMESPACE, "isAuthenticated", None, IsAuthenticatedResult)
GET_AUTHENTICATION_STATUS = RpcSpec(
    NAMESPACE, "getAuthenticationStatus", None, GetAuthenticationStatusResult
)
DEAUTHENTICATE = RpcSpec(NAMESPACE, "deauthenticate", None, None)
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
INSTALL_LOCAL_PLUGIN = RpcSpec(NAMESPACE, "installLocalPlugin", InstallLocalPluginParameter, None)
GET_MODEL_CATALOG = RpcSpec(NAMESPACE, "getModelCatalog", None, GetModelCatalogResult)
FUZZY_FIND_STAFF_PICKS = RpcSpec(
    NAMESPACE, "fuzzyFindStaffPicks", FuzzyFindStaffPicksParameter, FuzzyFindStaffPicksResult
)
LM_LINK_STATUS = RpcSpec(NAMESPACE, "lmLinkStatus", None, LmLinkStatusResult)
LM_LINK_SET_DISABLED = RpcSpec(NAMESPACE, "lmLinkSetDisabled", LmLinkSetDisabledParameter, None)
LM_LINK_UPDATE_DEVICE_NAME = RpcSpec(
    NAMESPACE, "lmLinkUpdateDeviceName", LmLinkUpdateDeviceNameParameter, None
)
LM_LINK_SET_PREFERRED_DEVICE = RpcSpec(
    NAMESPACE, "lmLinkSetPreferredDevice", LmLinkSetPreferredDeviceParameter, None
)

DOWNLOAD_MODEL = ChannelSpec(
    NAMESPACE,
    "downloadModel",
    DownloadModelCreationParameter,
    DownloadModelToClientPacket,
    CancelToServerPacket,
    CancelPacket(),
    merge=LATEST_PROGRESS,
)
DOWNLOAD_ARTIFACT = ChannelSpec(
    NAMESPACE,
    "downloadArtifact",
    DownloadArtifactCreationParameter,
    DownloadArtifactToClientPacket,
    CancelToServerPacket,
    CancelPacket(),
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
