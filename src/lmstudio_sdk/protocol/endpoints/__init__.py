"""Every endpoint of the namespaces this SDK speaks, as spec objects.

``ENDPOINTS[namespace][wire_name]`` is the registry (``ENDPOINTS["llm"]["predict"] is
llm.PREDICT``). Each namespace module defines its payload classes and one constant per
endpoint, named after it in upper snake case.

Namespace modules are imported on first use, not with this package: each one creates its
attrs classes at import (tens of milliseconds apiece), and a client that only lists the
loaded LLMs needs ``llm`` and ``shared`` alone. ``endpoints.llm`` (attribute access or
``from ...endpoints import llm``) and ``ENDPOINTS["llm"]`` import that module only.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

from ._spec import ChannelSpec, EndpointSpec, RpcSpec

if TYPE_CHECKING:
    from . import diagnostics, embedding, files, llm, repository, system

__all__ = [
    "ENDPOINTS",
    "NAMESPACES",
    "ChannelSpec",
    "EndpointSpec",
    "RpcSpec",
    "diagnostics",
    "embedding",
    "files",
    "llm",
    "namespace_module",
    "repository",
    "system",
]

#: The namespaces, in the order of the registry; each module is named after its namespace.
NAMESPACES: Final = ("llm", "embedding", "system", "diagnostics", "files", "repository")


def namespace_module(namespace: str) -> ModuleType:
    """The module of ``namespace`` (``"llm"`` -> :mod:`.llm`), imported on first use."""
    if namespace not in NAMESPACES:
        raise KeyError(namespace)
    return importlib.import_module(f"{__name__}.{namespace}")


def _specs_of(module: ModuleType) -> dict[str, RpcSpec | ChannelSpec]:
    namespace: str = module.NAMESPACE
    return {
        spec.name: spec
        for spec in vars(module).values()
        if isinstance(spec, (RpcSpec, ChannelSpec)) and spec.namespace == namespace
    }


class _Registry(Mapping[str, Mapping[str, "RpcSpec | ChannelSpec"]]):
    """``namespace -> {wire name: spec}``; a namespace's module is imported when first read."""

    def __init__(self) -> None:
        self._loaded: dict[str, dict[str, RpcSpec | ChannelSpec]] = {}

    def __getitem__(self, namespace: str) -> dict[str, RpcSpec | ChannelSpec]:
        specs = self._loaded.get(namespace)
        if specs is None:
            specs = self._loaded[namespace] = _specs_of(namespace_module(namespace))
        return specs

    def __iter__(self) -> Iterator[str]:
        return iter(NAMESPACES)

    def __len__(self) -> int:
        return len(NAMESPACES)

    def __repr__(self) -> str:
        return f"<endpoint registry of {', '.join(NAMESPACES)}>"


ENDPOINTS: Final[Mapping[str, Mapping[str, RpcSpec | ChannelSpec]]] = _Registry()


def __getattr__(name: str) -> Any:
    # ``endpoints.llm`` without a prior import of the submodule (PEP 562).
    if name in NAMESPACES:
        return namespace_module(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
