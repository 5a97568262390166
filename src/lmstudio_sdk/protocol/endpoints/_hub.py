"""``repository`` payloads of the LM Studio Hub: authentication, catalog, LM Link.

Part of the ``repository`` namespace (:mod:`.repository` re-exports every name).
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

from .._unset import UNSET, UnsetType
from ..codec import Unknown, converter, register_tagged_union, variant
from ._checks import _check_limit, _check_token

__all__ = [
    "AuthenticationStatus",
    "BoolOrMixed",
    "ComputeDeviceAuthenticationStatus",
    "EnsureAuthenticatedAuthenticated",
    "EnsureAuthenticatedAuthenticationCode",
    "EnsureAuthenticatedToClientPacket",
    "FuzzyFindStaffPicksParameter",
    "FuzzyFindStaffPicksResult",
    "GetAuthenticationStatusResult",
    "GetModelCatalogResult",
    "HubEmbeddingModelMetadata",
    "HubLLMMetadata",
    "HubModel",
    "HubModelMetadata",
    "HubModelMetadataBase",
    "IsAuthenticatedResult",
    "LmLinkLastError",
    "LmLinkPeer",
    "LmLinkSetDisabledParameter",
    "LmLinkSetPreferredDeviceParameter",
    "LmLinkStatusResult",
    "LmLinkUpdateDeviceNameParameter",
    "LoggedInUserAuthenticationStatus",
    "LoginAsComputeDeviceParameter",
    "LoginWithPreAuthenticatedKeysParameter",
    "LoginWithPreAuthenticatedKeysResult",
    "NoAuthenticationStatus",
    "StaffPick",
]


# --- hub authentication ------------------------------------------------------------------


@attrs.frozen
class IsAuthenticatedResult:
    authenticated: bool


@variant("none")
class NoAuthenticationStatus:
    pass


@variant("loggedInUser")
class LoggedInUserAuthenticationStatus:
    user_name: str


@variant("computeDevice")
class ComputeDeviceAuthenticationStatus:
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


@variant("authenticationCode")
class EnsureAuthenticatedAuthenticationCode:
    """Show the user ``code`` and where to enter it (``manual_url``, or ``filled_url``)."""

    code: str
    manual_url: str
    filled_url: str


@variant("authenticated")
class EnsureAuthenticatedAuthenticated:
    pass


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
class HubModelMetadataBase:
    """What the hub tells of every model (the base of the two below)."""

    architectures: list[str]
    compatibility_types: list[str]
    params_strings: list[str]
    min_memory_usage_bytes: float
    context_lengths: list[float]


@variant("llm", kw_only=True)
class HubLLMMetadata(HubModelMetadataBase):
    trained_for_tool_use: bool | Literal["mixed"]
    vision: bool | Literal["mixed"]
    reasoning: bool | Literal["mixed"]


@variant("embedding", kw_only=True)
class HubEmbeddingModelMetadata(HubModelMetadataBase):
    pass


HubModelMetadata = HubLLMMetadata | HubEmbeddingModelMetadata | Unknown
register_tagged_union(HubModelMetadata)


@variant("model", kw_only=True)
class HubModel:
    """A model of the LM Studio catalog; ``staff_picked_at`` is a timestamp (ms)."""

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
