"""Everything one running server shares between its connections."""

from __future__ import annotations

import collections

from ..protocol.endpoints import ENDPOINTS
from ..protocol.endpoints._spec import ChannelSpec, RpcSpec
from ..protocol.server_session import IdentityRegistry
from ._catalog import ModelCatalog
from ._connection import ChannelHandler, RpcHandler
from ._errors import bad_request
from ._files import FileStore
from ._handlers import TABLE
from ._handshakes import HandshakeBudget
from ._limits import ConnectionCounter
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
        self.logs = LogBus(share=options.share_logs)
        self.connections = ConnectionCounter(options.limits)
        self.handshakes = HandshakeBudget(options.limits)
        self.refusals: collections.Counter[str] = collections.Counter()
        self._loaded_by: dict[str, str] = {}  # instance identifier -> client identity
        self.catalog = ModelCatalog(models, self.logs, llama_threads=options.llama_threads)
        self.files = FileStore(
            options.file_storage_dir,
            max_upload_bytes=options.max_upload_bytes,
            max_files_per_client=options.limits.max_upload_files_per_client,
            max_total_bytes_per_client=options.limits.max_upload_total_bytes_per_client,
        )
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

    def record_refusal(self, reason: str) -> None:
        """Count a socket refused or closed by a limit (see ``RunningServer.refusals``)."""
        self.refusals[reason] += 1

    def check_load_quota(self, client_identifier: str) -> None:
        """Refuse a load by a client that already has its quota of loaded instances."""
        loaded = {instance.identifier for instance in self.catalog.loaded()}
        # Forget unloaded instances (by the client, another client, or their TTL).
        self._loaded_by = {i: owner for i, owner in self._loaded_by.items() if i in loaded}
        limit = self.options.limits.max_loaded_instances_per_client
        if sum(owner == client_identifier for owner in self._loaded_by.values()) >= limit:
            raise bad_request(
                f"Too many loaded models: a client may have {limit} instances loaded at once "
                "(limits.max_loaded_instances_per_client).",
                cause="Unload an instance you no longer need first.",
            )

    def record_load(self, client_identifier: str, instance_identifier: str) -> None:
        """Count a loaded instance against the client that loaded it."""
        self._loaded_by[instance_identifier] = client_identifier

    def client_released(self, client_identifier: str) -> None:
        """The identity's last socket closed: free its uploaded files."""
        self.files.release(client_identifier)

    async def start_upstreams(self) -> None:
        """Connect to the upstreams (options and catalogue): list their models and show them as loaded."""
        upstreams = self.options.resolved_upstreams()
        if not upstreams:
            return
        try:
            from .upstream._pool import UpstreamPool
        except ImportError as exc:  # pragma: no cover - httpx is the upstream extra
            raise ImportError("upstreams need httpx: pip install 'lmstudio-sdk[upstream]'") from exc
        pool = UpstreamPool(upstreams)
        try:
            facts = await pool.discover()
        except BaseException:
            await pool.aclose()
            raise
        await self.catalog.attach_upstreams(pool, facts)

    async def aclose(self) -> None:
        await self.catalog.aclose()
        self.files.close()
