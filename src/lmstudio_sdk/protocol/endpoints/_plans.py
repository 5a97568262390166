"""``repository`` payloads of download plans (``createDownloadPlan``).

Part of the ``repository`` namespace (:mod:`.repository` re-exports every name).
"""

from __future__ import annotations

import attrs

from .._unset import UNSET, UnsetType
from ..codec import Unknown, register_tagged_union, variant
from ._checks import _check_kebab_case, _check_kebab_case_with_dots

__all__ = [
    "ArtifactDownloadPlan",
    "ArtifactDownloadPlanArtifactNode",
    "ArtifactDownloadPlanDownloadOption",
    "ArtifactDownloadPlanModelFile",
    "ArtifactDownloadPlanModelInfo",
    "ArtifactDownloadPlanModelNode",
    "ArtifactDownloadPlanNode",
    "ArtifactDownloadTarget",
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
    "DownloadPlanTarget",
    "DownloadProgress",
    "DownloadProgressUpdate",
    "DownloadStartFinalizing",
    "DownloadSuccess",
    "FileNamePreference",
    "HuggingFaceModelDownloadSource",
    "ModelDownloadSource",
    "ModelDownloadTarget",
    "QuantNamePreference",
    "ResolutionPreference",
]


# --- download progress (downloadModel, downloadArtifact, plans) -------------------


@attrs.frozen
class DownloadProgressUpdate:
    downloaded_bytes: int
    total_bytes: int
    speed_bytes_per_second: float


@variant("downloadProgress")
class DownloadProgress:
    update: DownloadProgressUpdate


@variant("startFinalizing")
class DownloadStartFinalizing:
    pass


@variant("success")
class DownloadSuccess:
    """The end of an artifact download or a download plan (no payload)."""


# --- download plans ----------------------------------------------------------------------


@variant("huggingface")
class HuggingFaceModelDownloadSource:
    user: str
    repo: str


ModelDownloadSource = HuggingFaceModelDownloadSource | Unknown
register_tagged_union(ModelDownloadSource)


@variant("artifact")
class ArtifactDownloadTarget:
    owner: str = attrs.field(validator=_check_kebab_case)
    name: str = attrs.field(validator=_check_kebab_case_with_dots)


@variant("model")
class ModelDownloadTarget:
    source: ModelDownloadSource


DownloadPlanTarget = ArtifactDownloadTarget | ModelDownloadTarget | Unknown
register_tagged_union(DownloadPlanTarget)


@variant("fileName")
class FileNamePreference:
    file_name: str


@variant("quantName")
class QuantNamePreference:
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
class ArtifactDownloadPlanModelFile:
    """What a plan's model node tells of a model file (the base of the two below)."""

    display_name: str
    size_bytes: int
    compatibility_type: str
    quant_name: str | UnsetType = UNSET


@attrs.frozen(kw_only=True)
class ArtifactDownloadPlanModelInfo(ArtifactDownloadPlanModelFile):
    """The file already owned, or the one selected."""

    model_key: str | UnsetType = UNSET


@attrs.frozen(kw_only=True)
class ArtifactDownloadPlanDownloadOption(ArtifactDownloadPlanModelFile):
    """A file to choose from; ``availability``: ``notDownloaded``, ``downloading`` or
    ``downloaded``."""

    fit_estimation: str
    availability: str
    recommended: bool | UnsetType = UNSET


@variant("artifact", kw_only=True)
class ArtifactDownloadPlanArtifactNode:
    """``state``: ``pending``, ``fetching``, ``satisfied`` or ``completed``."""

    owner: str
    name: str
    state: str
    dependency_nodes: list[int]
    artifact_type: str | UnsetType = UNSET
    size_bytes: int | UnsetType = UNSET


@variant("model", kw_only=True)
class ArtifactDownloadPlanModelNode:
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


@variant("planUpdated")
class CreateDownloadPlanPlanUpdated:
    plan: ArtifactDownloadPlan


@variant("planReady")
class CreateDownloadPlanPlanReady:
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


@variant("cancelDownload")
class CreateDownloadPlanCancelDownload:
    """Cancel the download started by ``commit``."""


@variant("setSelectedDownloadOptionIndex")
class CreateDownloadPlanSetSelectedDownloadOptionIndex:
    """Choose a download option of a model node (``None`` clears the choice)."""

    node_index: int
    selected_download_option_index: int | None
    requested_plan_version: int


@variant("commit")
class CreateDownloadPlanCommit:
    """Start downloading the plan."""


@variant("cancelPlan")
class CreateDownloadPlanCancelPlan:
    """Abandon the plan before it is committed."""


CreateDownloadPlanToServerPacket = (
    CreateDownloadPlanCancelDownload
    | CreateDownloadPlanSetSelectedDownloadOptionIndex
    | CreateDownloadPlanCommit
    | CreateDownloadPlanCancelPlan
    | Unknown
)
register_tagged_union(CreateDownloadPlanToServerPacket)
