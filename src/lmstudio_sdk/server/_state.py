"""Everything one running server shares between its connections."""

from __future__ import annotations

from ..protocol.endpoints import ENDPOINTS
from ..protocol.endpoints._spec import ChannelSpec, RpcSpec
from ..protocol.server_session import IdentityRegistry
from ._catalog import ModelCatalog
from ._connection import ChannelHandler, RpcHandler
from ._files import FileStore
from ._handlers import TABLE
from ._logs import LogBus
from ._options import ServedModel, ServerOptions
from ._stats import ServerStats

__all__ = ["NAMESPACES", "ServerState"]

NAMESPACES = ("llm", "embedding", "system", "diagnostics", "files", "repository")
"""The websocket paths this server serves (``/llm``...)."""


class ServerState:
    """Options, identities, models, logs and files of one running server."""

    def __init__(self, options: ServerOptions, models: tuple[ServedModel, ...]) -> None:
        self.options = options
        self.registry = IdentityRegistry(options.api_tokens, require_token=options.requires_token)
        self.logs = LogBus()
        self.catalog = ModelCatalog(models, self.logs, llama_threads=options.llama_threads)
        self.files = FileStore(options.file_storage_dir, max_upload_bytes=options.max_upload_bytes)
        self.experiment_flags: set[str] = set()
        self.stats = ServerStats()
        # Only endpoints with a handler are given to the sessions: a call to any other is
        # answered like an unknown endpoint (a warning, or an error in strict mode).
        self._endpoints = {
            namespace: {
                name: spec
                for name, spec in ENDPOINTS[namespace].items()
                if name in TABLE.handled(namespace)
            }
            for namespace in NAMESPACES
        }

    def endpoints(self, namespace: str) -> dict[str, RpcSpec | ChannelSpec]:
        return self._endpoints[namespace]

    def rpc_handler(self, spec: RpcSpec) -> RpcHandler:
        return TABLE.rpcs[spec.namespace, spec.name]

    def channel_handler(self, spec: ChannelSpec) -> ChannelHandler:
        return TABLE.channels[spec.namespace, spec.name]

    def client_released(self, client_identifier: str) -> None:
        """The identity's last socket closed: free its uploaded files."""
        self.files.release(client_identifier)

    async def start_upstreams(self) -> None:
        """Connect to ``options.upstreams``: list their models and show them as loaded."""
        if not self.options.upstreams:
            return
        try:
            from .upstream._pool import UpstreamPool
        except ImportError as exc:  # pragma: no cover - httpx is the upstream extra
            raise ImportError(
                "upstreams need httpx: pip install 'lmstudio-sdk[upstream]'"
            ) from exc
        pool = UpstreamPool(self.options.upstreams)
        try:
            facts = await pool.discover()
        except BaseException:
            await pool.aclose()
            raise
        await self.catalog.attach_upstreams(pool, facts)

    async def aclose(self) -> None:
        await self.catalog.aclose()
        self.files.close()
