"""Every endpoint of the namespaces this SDK speaks, as spec objects.

``ENDPOINTS[namespace][wire_name]`` is the registry (``ENDPOINTS["llm"]["predict"] is
llm.PREDICT``). Each namespace module defines its payload classes and one constant per
endpoint, named after it in upper snake case.
"""

from __future__ import annotations

from types import ModuleType

from . import diagnostics, embedding, files, llm, repository, system
from ._spec import ChannelSpec, EndpointSpec, RpcSpec

__all__ = [
    "ENDPOINTS",
    "ChannelSpec",
    "EndpointSpec",
    "RpcSpec",
    "diagnostics",
    "embedding",
    "files",
    "llm",
    "repository",
    "system",
]

NAMESPACE_MODULES: tuple[ModuleType, ...] = (llm, embedding, system, diagnostics, files, repository)


def _specs_of(module: ModuleType) -> dict[str, RpcSpec | ChannelSpec]:
    namespace: str = module.NAMESPACE
    return {
        spec.name: spec
        for spec in vars(module).values()
        if isinstance(spec, (RpcSpec, ChannelSpec)) and spec.namespace == namespace
    }


ENDPOINTS: dict[str, dict[str, RpcSpec | ChannelSpec]] = {
    module.NAMESPACE: _specs_of(module) for module in NAMESPACE_MODULES
}
