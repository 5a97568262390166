"""What the generated blocking wrappers share and the generator does not write: holding the
client and the async object, ``__repr__``, equality of handles, the portal accessor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

if TYPE_CHECKING:
    from .._async.handles import AsyncModelHandle
    from ._portal import Portal
    from .client import Client

__all__ = ["HandleBase", "NamespaceBase"]

A = TypeVar("A")


class NamespaceBase(Generic[A]):
    """A blocking namespace over the async namespace ``A`` of the client's async client."""

    def __init__(self, client: Client, namespace: A) -> None:
        self._client = client
        self._async = namespace

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._client!r}>"

    def _portal(self) -> Portal:
        return self._client._portal()


class HandleBase:
    """A blocking handle over an async model handle (equal when the async ones are)."""

    domain: ClassVar[str] = ""

    def __init__(self, client: Client, handle: AsyncModelHandle) -> None:
        self._client = client
        self._async: Any = handle

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._async.identifier!r}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HandleBase):
            return NotImplemented
        return bool(self._async == other._async)

    def __hash__(self) -> int:
        return hash(self._async)

    def _portal(self) -> Portal:
        return self._client._portal()
