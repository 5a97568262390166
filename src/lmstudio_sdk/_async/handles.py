"""Handles to loaded model instances (``client.llm.model(...)`` and friends return these).

A handle names one loaded instance by its ``identifier`` and talks to the server through
its namespace's connection. It holds no resources: dropping it does not unload the model,
and it stays usable for as long as its client is open. Requests select the model with a
query on the identifier, as the official Python SDK does, so a model unloaded and loaded
again under the same identifier keeps working.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ..protocol.endpoints import shared
from ..results import ModelInstanceInfo
from .connection import DEFAULT, _Default

if TYPE_CHECKING:
    from .connection import Connection
    from .namespaces import _ModelNamespace

__all__ = ["AsyncEmbeddingModel", "AsyncLLM", "AsyncModelHandle"]


class AsyncModelHandle:
    """A loaded model instance. Get one from ``client.llm`` / ``client.embedding``.

    ``info`` is what the server reported when the handle was made; :meth:`get_info` asks
    again.
    """

    domain: ClassVar[str] = ""

    def __init__(
        self, namespace: _ModelNamespace[Any], identifier: str, info: ModelInstanceInfo
    ) -> None:
        self._namespace = namespace
        self._identifier = identifier
        self._info = info

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._identifier!r}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AsyncModelHandle):
            return NotImplemented
        return (self.domain, self._identifier, self._namespace._client) == (
            other.domain,
            other._identifier,
            other._namespace._client,
        )

    def __hash__(self) -> int:
        return hash((self.domain, self._identifier))

    @property
    def identifier(self) -> str:
        """The instance identifier the server knows this model by."""
        return self._identifier

    @property
    def info(self) -> ModelInstanceInfo:
        """The instance info as of when this handle was made (see :meth:`get_info`)."""
        return self._info

    def _specifier(self) -> shared.ModelSpecifierQuery:
        """The model specifier that selects this instance in requests."""
        return shared.ModelSpecifierQuery(shared.ModelQuery(identifier=self._identifier))

    def _connection(self) -> Connection:
        """The namespace connection (for endpoint calls made by subclasses)."""
        return self._namespace._connection()

    async def get_info(self, *, timeout: float | _Default | None = DEFAULT) -> ModelInstanceInfo:
        """Ask the server for this instance's current info.

        :raises LMStudioModelNotFoundError: the instance is no longer loaded.
        """
        info = await self._namespace.get_model_info(self._identifier, timeout=timeout)
        self._info = info
        return info

    async def unload(self, *, timeout: float | _Default | None = DEFAULT) -> None:
        """Unload this instance from the server."""
        await self._namespace.unload(self._identifier, timeout=timeout)


class AsyncLLM(AsyncModelHandle):
    """A loaded LLM instance."""

    domain: ClassVar[str] = "llm"


class AsyncEmbeddingModel(AsyncModelHandle):
    """A loaded embedding model instance."""

    domain: ClassVar[str] = "embedding"
