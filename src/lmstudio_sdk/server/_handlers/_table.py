"""The table of endpoint handlers, filled by the modules of this package."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ...protocol.endpoints._spec import ChannelSpec, RpcSpec
from .._connection import CallContext, ChannelHandler, RpcHandler
from ..engines.base import Domain

__all__ = ["TABLE", "HandlerTable", "domain_of"]

R = TypeVar("R", bound=RpcHandler)
C = TypeVar("C", bound=ChannelHandler)
H = TypeVar("H")


class HandlerTable:
    """``(namespace, endpoint name) -> handler``, for RPCs and channels."""

    def __init__(self) -> None:
        self.rpcs: dict[tuple[str, str], RpcHandler] = {}
        self.channels: dict[tuple[str, str], ChannelHandler] = {}

    def rpc(self, *specs: RpcSpec) -> Callable[[R], R]:
        """Register the decorated coroutine function as the handler of ``specs``."""
        return _registrar(self.rpcs, specs)

    def channel(self, *specs: ChannelSpec) -> Callable[[C], C]:
        """Register the decorated coroutine function as the handler of ``specs``."""
        return _registrar(self.channels, specs)

    def handled(self, namespace: str) -> set[str]:
        """Names of the endpoints of ``namespace`` that have a handler."""
        return {name for ns, name in (*self.rpcs, *self.channels) if ns == namespace}


def _registrar(
    handlers: dict[tuple[str, str], Any], specs: tuple[RpcSpec | ChannelSpec, ...]
) -> Callable[[H], H]:
    def register(handler: H) -> H:
        for spec in specs:
            handlers[spec.namespace, spec.name] = handler
        return handler

    return register


TABLE = HandlerTable()


def domain_of(context: CallContext) -> Domain:
    """The model domain of a model namespace (``llm`` or ``embedding``)."""
    if context.namespace == "llm":
        return "llm"
    if context.namespace == "embedding":
        return "embedding"
    raise AssertionError(f"{context.namespace} is not a model namespace")
