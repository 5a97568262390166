"""``AsyncClient``: the entry point of the async API.

::

    async with lmstudio_sdk.AsyncClient() as client:
        print(await client.system.version())
        model = await client.llm.model("smollm2-135m-instruct")

The client owns a task group for its whole ``async with`` block: the reader task of each
namespace socket lives there, and nothing of the client runs after the block (every
socket is closed on the way out, calls still in flight fail with
``LMStudioConnectionError``). Sockets (one per namespace: ``/llm``, ``/embedding``,
``/system``, ``/diagnostics``, ``/files``, ``/repository``) are opened lazily, on first
use, all with the client's one identity, and reopened on the next use after a drop.
Where the server is, and with which credentials, is described in :mod:`._discovery`; the
host is discovered at the first connection, not when the client is created. The client
never starts a server.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Final

import anyio

from .._boundary import sdk_boundary
from ..errors import LMStudioConnectionError
from . import namespaces
from ._discovery import DEFAULT_PORTS, discover, resolve_credentials, resolve_host
from ._exceptions import exceptions_unwrapped
from ._keepalive import DEFAULT_KEEPALIVE, keepalive_settings
from .channel import DEFAULT_BUFFER_SIZE, DEFAULT_DRAIN_TIMEOUT
from .connection import (
    DEFAULT_TIMEOUT,
    Connection,
    ConnectionSettings,
    TransportFactory,
    check_timeout,
)
from .transport import DEFAULT_CONNECT_TIMEOUT, connect

if TYPE_CHECKING:
    from anyio.abc import TaskGroup
    from typing_extensions import Self

    from .transport import Transport

__all__ = ["NAMESPACES", "AsyncClient"]

NAMESPACES: Final = ("llm", "embedding", "system", "diagnostics", "files", "repository")


@sdk_boundary
class AsyncClient:
    """A client of one LM Studio server, for use in ``async with``. Runs on Trio and asyncio.

    :param host: ``ws://host:port``, ``wss://...``, ``http://...`` (read as ``ws://``),
        ``https://...`` (``wss://``) or ``host:port``. Default: ``LMSTUDIO_HOST``, else the
        local LM Studio found by probing its well-known ports.
    :param api_token: an LM Studio API token (``sk-lm-...``). Default: ``LM_API_TOKEN``,
        else ``LMSTUDIO_API_TOKEN``, else a guest identity.
    :param timeout: default limit in seconds for each RPC, and for the silence between two
        packets of a stream (``None``: no limit). Each call may override it.
    :param connect_timeout: limit for opening a websocket and authenticating.
    :param channel_buffer_size: packets a stream buffers for a consumer that lags behind
        (see :mod:`lmstudio_sdk._async.channel` for the policy when it fills up).
    :param drain_timeout: how long leaving a stream early waits for the server to confirm
        the cancellation.
    :param keepalive_interval: seconds of silence on a socket after which the client sends
        a ``keepAlive`` (``None``: never). See ``docs/reliability.md``.
    :param keepalive_timeout: seconds the server then has to answer before the socket is
        declared dead: what is in flight on it fails with ``LMStudioConnectionError`` and
        the next call reconnects.
    :param transport_factory: ``(url, task_group) -> Transport``, to replace websockets
        (tests use an in-memory transport).

    :raises ValueError: a malformed ``host`` or API token (the token is never repeated).
    """

    def __init__(
        self,
        host: str | None = None,
        *,
        api_token: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        channel_buffer_size: int = DEFAULT_BUFFER_SIZE,
        drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
        keepalive_interval: float | None = DEFAULT_KEEPALIVE.interval,
        keepalive_timeout: float = DEFAULT_KEEPALIVE.timeout,
        transport_factory: TransportFactory | None = None,
    ) -> None:
        self._base_url = resolve_host(host)
        self._explicit_host = self._base_url is not None
        self._credentials = resolve_credentials(api_token)
        call_limit = check_timeout(timeout, "timeout")
        connect_limit = check_timeout(connect_timeout, "connect_timeout")
        drain_limit = check_timeout(drain_timeout, "drain_timeout")
        if connect_limit is None or drain_limit is None:
            raise ValueError("connect_timeout and drain_timeout must be numbers of seconds > 0")
        if not isinstance(channel_buffer_size, int) or channel_buffer_size < 1:
            raise ValueError(
                f"channel_buffer_size must be an int >= 1, got {channel_buffer_size!r}"
            )
        self._settings = ConnectionSettings(
            resolve_url=self._resolve_url,
            credentials=self._credentials,
            transport_factory=transport_factory
            or functools.partial(_connect_websocket, connect_timeout=connect_limit),
            timeout=call_limit,
            connect_timeout=connect_limit,
            buffer_size=channel_buffer_size,
            drain_timeout=drain_limit,
            keepalive=keepalive_settings(keepalive_interval, keepalive_timeout),
        )
        self._discovery_ports: Sequence[int] = DEFAULT_PORTS
        self._discovery_lock: anyio.Lock | None = None
        self._task_group: TaskGroup | None = None
        self._state = "new"
        self._connections: dict[str, Connection] = {}
        self.system = namespaces.SystemNamespace(self)
        self.llm = namespaces.LLMNamespace(self)
        self.embedding = namespaces.EmbeddingNamespace(self)
        self.files = namespaces.FilesNamespace(self)
        self.repository = namespaces.RepositoryNamespace(self)
        self.diagnostics = namespaces.DiagnosticsNamespace(self)

    def __repr__(self) -> str:
        where = self._base_url or "(discovering)"
        who = "guest" if self._credentials.is_guest else f"token from {self._credentials.source}"
        return f"<AsyncClient {where} {who}, {self._state}>"

    @property
    def base_url(self) -> str | None:
        """The server's base websocket URL (``None`` until discovery found it)."""
        return self._base_url

    @property
    def is_guest(self) -> bool:
        """Whether the client has no API token (it uses a random guest identity)."""
        return self._credentials.is_guest

    # ------------------------------------------------------------------ lifetime

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise RuntimeError("an AsyncClient can be entered only once; create a new one")
        self._discovery_lock = anyio.Lock()
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        self._state = "open"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self._state = "closed"
        task_group = self._task_group
        assert task_group is not None
        with exceptions_unwrapped():
            try:
                for connection in self._connections.values():
                    await connection.aclose()
            finally:
                # Readers have ended with their sockets; this also stops anything left
                # (a background cancel still being sent), so nothing outlives the block.
                task_group.cancel_scope.cancel()
                suppressed = await task_group.__aexit__(exc_type, exc, tb)
        return suppressed

    # ------------------------------------------------------------------ internals

    def _connection(self, namespace: str) -> Connection:
        """The connection of ``namespace`` (its socket opens on first use)."""
        if self._state != "open":
            state = "not open yet" if self._state == "new" else "closed"
            raise LMStudioConnectionError(
                f"the client is {state}: use it inside `async with AsyncClient(...) as client:`"
            )
        connection = self._connections.get(namespace)
        if connection is None:
            if namespace not in NAMESPACES:
                raise ValueError(f"unknown namespace {namespace!r}; known: {', '.join(NAMESPACES)}")
            assert self._task_group is not None
            connection = Connection(namespace, self._task_group, self._settings)
            self._connections[namespace] = connection
        return connection

    async def _resolve_url(self) -> str:
        if self._base_url is not None:
            return self._base_url
        assert self._discovery_lock is not None
        async with self._discovery_lock:
            if self._base_url is None:
                with exceptions_unwrapped():
                    self._base_url = await discover(self._discovery_ports)
        return self._base_url


async def _connect_websocket(
    url: str, task_group: TaskGroup, *, connect_timeout: float
) -> Transport:
    return await connect(url, task_group=task_group, connect_timeout=connect_timeout)
