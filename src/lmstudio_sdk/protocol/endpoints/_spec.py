"""Descriptions of endpoints: what an RPC takes and returns, what a channel carries."""

from __future__ import annotations

import functools
from typing import Any, Generic

import attrs
from typing_extensions import TypeVar

from .._unset import UNSET, UnsetType
from ..merging import NO_MERGE, MergeRule

__all__ = ["ChannelSpec", "EndpointSpec", "RpcSpec", "raw_result"]


P = TypeVar("P", default=Any)
R = TypeVar("R", default=Any)


@attrs.frozen
class RpcSpec(Generic[P, R]):
    """An RPC endpoint taking a ``P`` and returning an ``R``.

    ``parameter``/``result`` are the wire types, or ``None`` for void. A void parameter is
    left out of the ``rpcCall`` frame; a void result is an ``rpcResult`` without a
    ``result`` key. ``P`` and ``R`` are inferred from classes; a void or union side is
    spelled out once in the constant's annotation (``RpcSpec[None, list[ModelInfo]]``).
    ``Connection.call(spec, parameter)`` takes a ``P`` and returns an ``R``.
    """

    namespace: str
    name: str
    parameter: type[P] | None
    result: type[R] | None

    @property
    def kind(self) -> str:
        return "rpc"


@attrs.frozen
class ChannelSpec:
    """A channel endpoint.

    ``to_client`` and ``to_server`` are registered tagged unions of packets (``to_server`` is
    ``None`` when the client can send nothing). ``cancel_packet`` is the packet that asks the
    server to end the channel early (``{"type": "cancel"}``, ``{"type": "stop"}`` ...), or
    ``None`` when the endpoint has none and only dropping the socket ends it.

    ``merge`` is how a lagging consumer's unread packets are combined
    (:mod:`lmstudio_sdk.protocol.merging`). ``idle_timeout`` is the longest silence (seconds)
    a client accepts on the channel by default: ``None`` for endpoints that may be quiet for
    hours (log streams), ``UNSET`` for the client's own default.
    """

    namespace: str
    name: str
    creation_parameter: Any
    to_client: Any
    to_server: Any
    cancel_packet: Any = None
    merge: MergeRule = NO_MERGE
    idle_timeout: float | UnsetType | None = UNSET

    @property
    def kind(self) -> str:
        return "channel"


EndpointSpec = RpcSpec | ChannelSpec


@functools.cache
def raw_result(spec: RpcSpec[P, Any]) -> RpcSpec[P, Any]:
    """``spec`` with its result left as parsed JSON (``Any``), for a caller that decodes it
    itself, in one step to a public view: that caller then owns the checks of
    ``spec.result`` (``lmstudio_sdk.results.instance_infos`` does them for ``listLoaded``).
    """
    return attrs.evolve(spec, result=Any)
