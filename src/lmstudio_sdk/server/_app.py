"""The server itself: the ``websockets`` asyncio server, the greeting, start and stop.

One TCP port serves both HTTP probes (``GET /lmstudio-greeting`` answers
``{"lmstudio":true}``, and ``GET /lms-status``) and the websockets (``/llm``,
``/embedding``, ``/system``, ``/diagnostics``, ``/files``, ``/repository``); any other
path gets a 404 before the upgrade. It runs on asyncio; see :func:`running_server`,
:func:`serve`, and :class:`~lmstudio_sdk.server.BackgroundServer` for everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import anyio
import sniffio
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from .._version import __version__
from ._connection import Connection, GuardedConnection, peer_address
from ._limits import printable
from ._options import ServedModel, ServerOptions, is_loopback
from ._state import NAMESPACES, ServerState
from ._stats import ServerStats
from .engines.scripted import Faults, Script

__all__ = ["RunningServer", "running_server", "serve"]

logger = logging.getLogger("lmstudio_sdk.server")

SHUTDOWN_TIMEOUT = 10.0
"""Seconds the server waits for its connections to close before dropping them."""


class _QuietFramesLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The websockets library's logger, minus its DEBUG frame dumps.

    At DEBUG level websockets logs the start of every frame, and the auth frame carries the
    client's passkey (for API tokens, the secret half): secrets must never reach logs.
    """

    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and self.logger.isEnabledFor(level)


_WEBSOCKETS_LOGGER = _QuietFramesLogger(logging.getLogger("websockets.server"), {})


def _json_response(status: HTTPStatus, body: Any) -> Response:
    data = json.dumps(body, separators=(",", ":")).encode()
    headers = Headers(
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            ("Access-Control-Allow-Origin", "*"),
            ("Cache-Control", "no-store"),
        ]
    )
    return Response(status.value, status.phrase, headers, data)


def _request_handler(state: ServerState) -> Callable[[ServerConnection, Request], Response | None]:
    options = state.options

    def process_request(ws: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path == "/lmstudio-greeting":
            # What the official clients probe; the body must be exactly lmstudio: true.
            return _json_response(HTTPStatus.OK, {"lmstudio": True})
        if path == "/lms-status":
            return _json_response(
                HTTPStatus.OK, {"package": "lmstudio-sdk", "version": __version__}
            )
        if not (path.startswith("/") and path[1:] in NAMESPACES):
            return ws.respond(
                HTTPStatus.NOT_FOUND,
                f"Not found: {path}. Websockets are served on /{', /'.join(NAMESPACES)}.\n",
            )
        # Browsers always send Origin on a websocket upgrade, other clients do not: a page
        # on some web site must not drive a local server (it would read prompts, load models).
        origin = request.headers.get("Origin")
        if origin is not None and origin.rstrip("/").lower() not in options.allowed_origins:
            state.record_refusal("origin not allowed")
            if isinstance(ws, GuardedConnection):
                ws.handshake_failed()
            return ws.respond(
                HTTPStatus.FORBIDDEN,
                f"Websocket from origin {printable(origin, 200)} refused: browser pages may "
                "only connect from an allowed origin (lmsdk serve --allow-origin ORIGIN).\n",
            )
        reason = state.connections.refusal(peer_address(ws))
        if reason is not None:
            state.record_refusal("too many connections")
            return ws.respond(HTTPStatus.SERVICE_UNAVAILABLE, reason + "\n")
        # Until it authenticates a socket may only send a small frame (the auth packet):
        # the header of a bigger one closes it with 1009 before its payload is read.
        # (The parser reads this size at every frame, so the handler raises it later.)
        ws.protocol.max_message_size = options.limits.max_auth_frame_bytes
        return None  # go on with the websocket handshake

    return process_request


class RunningServer:
    """A server running in the current event loop (from :func:`running_server`).

    ``url`` is what clients connect to (``ws://host:port``; the namespace is appended as
    ``/llm``...), ``http_url`` the same for HTTP probes.
    """

    def __init__(
        self, state: ServerState, host: str, port: int, connections: set[Connection]
    ) -> None:
        self._state = state
        self._connections = connections
        self.host = host
        self.port = port

    def __repr__(self) -> str:
        return f"<RunningServer {self.url} models={self.model_keys}>"

    @property
    def url(self) -> str:
        """``ws://host:port``."""
        return f"ws://{_url_host(self.host)}:{self.port}"

    @property
    def http_url(self) -> str:
        """``http://host:port``."""
        return f"http://{_url_host(self.host)}:{self.port}"

    @property
    def options(self) -> ServerOptions:
        """The options the server was started with."""
        return self._state.options

    @property
    def models(self) -> tuple[ServedModel, ...]:
        """The models on offer."""
        return self._state.catalog.models

    @property
    def model_keys(self) -> list[str]:
        """Keys of the models on offer."""
        return [m.key for m in self.models]

    @property
    def stats(self) -> ServerStats:
        """Open-channel statistics (``open_channels``, ``peak_open_channels``...; resettable)."""
        return self._state.stats

    @property
    def open_connections(self) -> int:
        """Websockets open right now (all namespaces and clients)."""
        return self._state.connections.total

    async def connections_closed(self) -> None:
        """Wait until no websocket is open (every client's close has been processed)."""
        await self._state.connections.wait_idle()

    async def caught_up(self, within: float = 2.0) -> bool:
        """Wait until the server has handled every frame its clients sent before this call.

        Each socket gets a websocket ping; its pong follows what the client sent before, so
        once the pongs are back and those frames handled, the channels the clients opened
        are counted in :attr:`stats`. ``False`` if some client did not answer within
        ``within`` seconds (its event loop is blocked, or gone).
        """
        with anyio.move_on_after(within) as scope:
            async with anyio.create_task_group() as task_group:
                for connection in list(self._connections):
                    task_group.start_soon(connection.caught_up)
        return not scope.cancelled_caught

    @property
    def refusals(self) -> dict[str, int]:
        """Sockets refused or closed by the server's limits, counted by reason."""
        return dict(self._state.refusals)

    def loaded_identifiers(self) -> list[str]:
        """Identifiers of the instances loaded right now."""
        return [i.identifier for i in self._state.catalog.loaded()]

    def set_script(
        self, key: str, *, script: Script | None = None, faults: Faults | None = None
    ) -> None:
        """Change what a scripted model says or how it fails (loaded instances too)."""
        self._state.catalog.set_script(key, script=script, faults=faults)

    async def unload_all(self) -> None:
        """Unload every loaded instance."""
        await self._state.catalog.unload_all()


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


@asynccontextmanager
async def running_server(options: ServerOptions | None = None) -> AsyncIterator[RunningServer]:
    """Run a server in the current asyncio loop for the duration of the block.

    The server listens when the block starts (``server.port`` is the bound port, useful
    with ``port=0``); leaving the block closes every connection (their predictions stop),
    unloads every model and deletes temporary files, in bounded time::

        async with running_server(ServerOptions(port=0)) as server:
            print("serving on", server.url)
            ...

    Raises :class:`OSError` if the port cannot be bound. Needs asyncio; from Trio or
    synchronous code use :class:`~lmstudio_sdk.server.BackgroundServer`.
    """
    if sniffio.current_async_library() != "asyncio":
        raise RuntimeError(
            "the LM Studio server runs on asyncio; under Trio (or from synchronous code) use "
            "lmstudio_sdk.server.BackgroundServer, which runs it in a thread"
        )
    options = options if options is not None else ServerOptions()
    if not is_loopback(options.host):
        logger.warning(
            "listening on %s: the server is reachable from other machines%s",
            options.host,
            "" if options.requires_token else " and accepts any client (no API token required)",
        )
    state = ServerState(options, options.resolved_models())
    live: set[Connection] = set()

    async def handler(ws: ServerConnection) -> None:
        namespace = urlsplit(ws.request.path).path[1:] if ws.request is not None else ""
        address = peer_address(ws)
        # Checked again here: many handshakes may have passed process_request at once.
        refused = state.connections.add(address)
        if refused is not None:
            state.record_refusal("too many connections")
            logger.warning("refused a websocket from %s: %s", address, refused)
            with contextlib.suppress(Exception):
                await ws.close(1013, "too many connections; retry later")
            return
        connection = Connection(ws, namespace, state)
        live.add(connection)
        try:
            await connection.serve()
        except Exception:
            logger.exception("connection handler for /%s failed", namespace)
        finally:
            live.discard(connection)
            state.connections.remove(address)

    try:
        await state.start_upstreams()  # their models are listed before the first client
        ws_server = await ws_serve(
            handler,
            options.host,
            options.port,
            process_request=_request_handler(state),
            max_size=options.max_frame_bytes,
            compression=None,  # loopback: deflate costs CPU and saves nothing
            close_timeout=2,
            server_header=f"lmstudio-sdk/{__version__}",
            logger=_WEBSOCKETS_LOGGER,
            create_connection=GuardedConnection.for_server(state),
        )
        # The TTL watcher is a task owned by this block, cancelled and awaited when it ends.
        # It is not in a task group: the caller's code runs inside this block, and a task
        # group would wrap the caller's own exceptions in an ExceptionGroup.
        ttl_task = asyncio.get_running_loop().create_task(state.catalog.run_ttl())
        try:
            if options.catalog is not None:
                await state.catalog.preload(options.catalog.preloads)
            port = int(ws_server.sockets[0].getsockname()[1])
            server = RunningServer(state, options.host, port, live)
            logger.info("serving %s on %s", ", ".join(server.model_keys), server.url)
            yield server
        finally:
            with anyio.CancelScope(shield=True):
                ws_server.close()  # closes every connection with 1001 (going away)
                state.handshakes.drop_held()  # never read: nothing to say to them
                with anyio.move_on_after(SHUTDOWN_TIMEOUT):
                    await ws_server.wait_closed()
                ttl_task.cancel()
                await asyncio.wait([ttl_task])
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_TIMEOUT):
            await state.aclose()
        logger.info("server stopped")


async def serve(
    options: ServerOptions | None = None,
    *,
    started: Callable[[RunningServer], object] | None = None,
) -> None:
    """Run a server in the current asyncio loop until cancelled.

    ``started`` is called with the :class:`RunningServer` once it listens (it tells the
    bound port when ``port=0``). Cancel the task (or press Ctrl-C under ``asyncio.run``) to
    stop it; shutdown is clean and bounded.
    """
    async with running_server(options) as server:
        if started is not None:
            started(server)
        await anyio.sleep_forever()
