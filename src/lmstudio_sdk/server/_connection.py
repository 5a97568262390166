"""One websocket connection: a :class:`ServerSession` driven over a ``websockets`` socket.

Theory of operation
===================

* Authentication first: frames go to the session until it accepts or rejects the client,
  bounded by ``auth_timeout`` (then the reference's failure reply is sent and the socket
  closed). Malformed auth frames are ignored, as the reference does.
* Then one reader loop: every frame goes to :meth:`ServerSession.receive_text`; the frames
  the session produced itself (warnings, strict-mode errors, ``keepAliveAck``) are sent at
  once, then every call and channel is started as its **own task** in the connection's task
  group. A slow prediction therefore never delays another RPC on the same socket, and other
  connections have their own loops.
* Writes are serialised by one lock (frames of one task keep their order; the session's
  state changes and the write happen under the lock, so a ``channelClose`` can never
  overtake the packet before it).
* A handler that returns ends its channel with ``channelClose`` (RPC: ``rpcResult``); one
  that raises ends it with ``channelError`` (``rpcError``), like the reference server port.
* When the socket closes, the task group is cancelled: every prediction, load and log
  stream of this connection stops, and nothing more is sent. The identity is released
  and, if that was its last socket, its uploaded files are deleted.
* Fault injection (scripted engine): a handler may drop the socket (no close frame) or
  send a frame that is not valid JSON.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ..errors import LMStudioServerError, LocalProtocolError
from ..protocol.endpoints._spec import ChannelSpec, RpcSpec
from ..protocol.events import (
    AuthenticationRejected,
    CallReceived,
    ChannelOpened,
    ChannelPacketReceived,
    ClientAuthenticated,
    MessageIgnored,
    RequestRejected,
    ServerEvent,
    WarningReceived,
)
from ..protocol.server_session import ServerSession
from ..protocol.session import SessionState
from ..protocol.wire import SerializedError
from ._errors import from_engine_error
from ._limits import printable
from .engines.base import EngineError, InjectedWireFault

if TYPE_CHECKING:
    from ._state import ServerState

__all__ = [
    "CallContext",
    "ChannelContext",
    "ChannelHandler",
    "Connection",
    "ConnectionDropped",
    "GuardedConnection",
    "RpcHandler",
    "peer_address",
]

logger = logging.getLogger("lmstudio_sdk.server")

# What the fault "malformedFrame" sends: the start of a channelSend, cut off (not JSON).
MALFORMED_FRAME = '{"type":"channelSend","channelId":'


class GuardedConnection(ServerConnection):
    """The websockets connection class of the server: drops unauthenticated rule-breakers.

    After failing a connection (a frame over the size limit, say), websockets keeps
    reading and discarding what the peer sends until the close handshake times out: an
    unauthenticated client pushing 60 MB frames would keep the event loop busy discarding
    them for seconds, stalling every other client. Until the socket authenticates, a peer
    that breaks the protocol has its TCP connection dropped at once instead.
    """

    authenticated = False

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self.authenticated and self.protocol.parser_exc is not None:
            self.transport.abort()


class ConnectionDropped(Exception):
    """The socket is gone (or was dropped on purpose); the handler just unwinds."""


class CallContext:
    """What an RPC handler gets: the server state and who is calling."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.server: ServerState = connection.server
        self.namespace = connection.namespace

    @property
    def client_identifier(self) -> str:
        """The authenticated client's identifier (it owns uploaded files)."""
        identifier = self.connection.session.client_identifier
        assert identifier is not None  # handlers only run after authentication
        return identifier


class ChannelContext(CallContext):
    """What a channel handler gets: :meth:`send` packets, and the client's cancel request.

    ``cancel_requested`` is set when the client sends the endpoint's cancel packet
    (``cancel``, or ``stop`` for log streams); ``packets`` keeps every packet it sent.
    """

    def __init__(self, connection: Connection, channel_id: int, spec: ChannelSpec) -> None:
        super().__init__(connection)
        self.channel_id = channel_id
        self.spec = spec
        self.cancel_requested = anyio.Event()
        self.packets: list[Any] = []

    async def send(self, packet: Any, *, check: bool = True) -> None:
        """Send one packet of the endpoint's ``to_client`` union.

        ``check=False`` skips the round-trip validation of the packet's JSON (see
        :meth:`ServerSession.send_packet`): only for hot-path packets built here from the
        typed classes with values of the right types, such as prediction fragments.
        """
        await self.connection.send_packet(self.channel_id, packet, check=check)

    def deliver(self, packet: Any) -> None:
        self.packets.append(packet)
        cancel = self.spec.cancel_packet
        if cancel is not None and type(packet) is type(cancel):
            self.cancel_requested.set()


RpcHandler = Callable[[CallContext, Any], Awaitable[Any]]
ChannelHandler = Callable[[ChannelContext, Any], Awaitable[None]]


class Connection:
    """Serves one websocket (one namespace) until it closes; see the module docstring."""

    def __init__(self, ws: ServerConnection, namespace: str, server: ServerState) -> None:
        self.ws = ws
        self.namespace = namespace
        self.server = server
        self.session = ServerSession(
            namespace,
            server.endpoints(namespace),
            server.registry,
            unknown_endpoint_errors=server.options.strict_errors,
        )
        self._write_lock = anyio.Lock()
        self._channels: dict[int, ChannelContext] = {}
        self._task_group: anyio.abc.TaskGroup | None = None
        self._dropped = False
        self._peer = _peer_name(ws)
        self._large_frame = server.options.limits.large_frame_bytes

    def __repr__(self) -> str:
        return f"<Connection /{self.namespace} from {self._peer} {self.session.state.value}>"

    # ------------------------------------------------------------------ main loop

    async def serve(self) -> None:
        """Authenticate, then serve frames until the socket closes."""
        try:
            if not await self._authenticate():
                return
            async with anyio.create_task_group() as task_group:
                self._task_group = task_group
                await self._read_loop()
                # The socket is gone: stop every call and channel of this connection.
                task_group.cancel_scope.cancel()
        finally:
            event = self.session.connection_lost()
            if event.open_channels or event.pending_calls:
                logger.debug(
                    "%r: client gone; stopped %d channels and %d calls",
                    self,
                    len(event.open_channels),
                    len(event.pending_calls),
                )
            if event.identity_released and event.client_identifier is not None:
                self.server.client_released(event.client_identifier)

    async def _authenticate(self) -> bool:
        with anyio.move_on_after(self.server.options.auth_timeout):
            while True:
                try:
                    frame = await self.ws.recv()
                except ConnectionClosed:
                    return False
                events = self.session.receive_text(frame)
                await self._send_frames(self.session.data_to_send())
                for event in events:
                    if isinstance(event, ClientAuthenticated):
                        logger.debug(
                            "%r: client %s authenticated", self, printable(event.client_identifier)
                        )
                        # Authenticated: frames up to the configured size from now on.
                        self.ws.protocol.max_message_size = self.server.options.max_frame_bytes
                        if isinstance(self.ws, GuardedConnection):
                            self.ws.authenticated = True
                        return True
                    if isinstance(event, AuthenticationRejected):
                        logger.info(
                            "%r: authentication rejected: %s", self, printable(event.reason)
                        )
                        await self._close(1008, "authentication failed")
                        return False
                    if isinstance(event, MessageIgnored):
                        logger.info(
                            "%r: ignored a frame before authentication: %s",
                            self,
                            printable(event.reason),
                        )
        reply = self.session.authentication_timed_out()
        logger.info("%r: no authentication within %gs", self, self.server.options.auth_timeout)
        if reply is not None:
            await self._send_frames([reply])
        await self._close(1008, "authentication timed out")
        return False

    async def _read_loop(self) -> None:
        while True:
            try:
                frame = await self.ws.recv()
            except ConnectionClosed:
                return
            if self.server.options.frame_recorder is not None:
                # After authentication only: the authentication frame carries the passkey.
                self.server.options.frame_recorder(self.namespace, frame)
            if len(frame) >= self._large_frame:
                # Parsing tens of megabytes takes long enough to stall every other client
                # of this event loop: do it in a thread. The write lock keeps this
                # connection's own tasks away from the session meanwhile.
                async with self._write_lock:
                    events = await anyio.to_thread.run_sync(self.session.receive_text, frame)
            else:
                events = self.session.receive_text(frame)
            frames = self.session.data_to_send()
            if frames:
                await self._send_frames(frames)
            for event in events:
                await self._dispatch(event)

    async def _dispatch(self, event: ServerEvent) -> None:
        assert self._task_group is not None
        if isinstance(event, CallReceived):
            self._task_group.start_soon(self._run_call, event, name=f"rpc {event.spec.name}")
        elif isinstance(event, ChannelOpened):
            limit = self.server.options.limits.max_channels_per_connection
            if len(self._channels) >= limit:
                await self._refuse_channel(event, limit)
                return
            context = ChannelContext(self, event.channel_id, event.spec)
            self._channels[event.channel_id] = context
            self._task_group.start_soon(
                self._run_channel, context, event, name=f"channel {event.spec.name}"
            )
        elif isinstance(event, ChannelPacketReceived):
            channel = self._channels.get(event.channel_id)
            if channel is not None:
                channel.deliver(event.packet)
        elif isinstance(event, RequestRejected):
            logger.info("%r: rejected (%s): %s", self, event.kind, printable(event.reason))
        elif isinstance(event, MessageIgnored):
            logger.info("%r: ignored a frame: %s", self, printable(event.reason))
            # The reference only logs this; we also tell the client, within the warning cap,
            # so a broken client learns why nothing happens.
            await self._warn(f"Received a frame that is not a valid message: {event.reason}")
        elif isinstance(event, WarningReceived):
            logger.warning(
                "%r: the client sent a warning (%s): %s",
                self,
                printable(event.kind),
                printable(event.warning),
            )

    async def _refuse_channel(self, event: ChannelOpened, limit: int) -> None:
        self.server.record_refusal("too many channels")
        error = SerializedError(
            title=f"Too many open channels: one connection may have {limit} open at once",
            cause="limits.max_channels_per_connection of the server",
            suggestion="Wait for (or cancel) running predictions and other channels first.",
        )
        with contextlib.suppress(ConnectionDropped):
            await self._write(lambda: self.session.fail_channel(event.channel_id, error))

    async def _warn(self, warning: str) -> None:
        frame = self.session.warn(warning)
        if frame is not None:
            await self._send_frames([frame])

    # ------------------------------------------------------------------ calls and channels

    async def _run_call(self, event: CallReceived) -> None:
        # The socket may close between the handler's end and the answer: nobody to tell.
        with contextlib.suppress(ConnectionDropped):
            await self._answer_call(event)

    async def _run_channel(self, context: ChannelContext, event: ChannelOpened) -> None:
        with contextlib.suppress(ConnectionDropped):
            await self._serve_channel(context, event)

    async def _answer_call(self, event: CallReceived) -> None:
        handler = self.server.rpc_handler(event.spec)
        context = CallContext(self)
        call_id = event.call_id
        try:
            result = await handler(context, event.parameter)
        except Exception as exc:
            await self._answer_failure(event.spec, exc, partial(self.session.reply_error, call_id))
            return
        try:
            await self._write(lambda: self.session.reply(call_id, result))
        except LocalProtocolError as exc:  # our handler returned something off-schema
            logger.error("%r: invalid result for %s", self, event.spec.name, exc_info=exc)
            internal = SerializedError(title=f"Internal server error: {exc}")
            await self._write(lambda: self.session.reply_error(call_id, internal))

    async def _serve_channel(self, context: ChannelContext, event: ChannelOpened) -> None:
        handler = self.server.channel_handler(event.spec)
        channel_id = event.channel_id
        stats = self.server.stats
        endpoint = f"{event.spec.namespace}.{event.spec.name}"
        # Counted while the handler runs: no longer counted once the client sees the end.
        stats.channel_opened(endpoint)
        try:
            try:
                await handler(context, event.creation_parameter)
            finally:
                stats.channel_ended(endpoint)
        except Exception as exc:
            await self._answer_failure(
                event.spec, exc, partial(self.session.fail_channel, channel_id)
            )
            return
        finally:
            self._channels.pop(channel_id, None)
        await self._write(lambda: self.session.close_channel(channel_id))

    async def _answer_failure(
        self,
        spec: RpcSpec | ChannelSpec,
        exc: Exception,
        answer: Callable[[SerializedError], str],
    ) -> None:
        """Send ``answer(error)`` for a handler's exception, unless the wire is broken (the
        socket is gone, or an injected fault breaks it instead)."""
        cause = _unwrap(exc)
        if isinstance(cause, ConnectionDropped):
            return
        if isinstance(cause, InjectedWireFault):
            await self._wire_fault(cause.kind)
            return
        error = self._serialize_error(spec, cause)
        await self._write(lambda: answer(error))

    def _serialize_error(self, spec: RpcSpec | ChannelSpec, exc: BaseException) -> SerializedError:
        if isinstance(exc, LMStudioServerError):
            logger.info("%r: %s.%s failed: %s", self, spec.namespace, spec.name, exc)
            return SerializedError.from_exception(exc)
        if isinstance(exc, EngineError):
            logger.info("%r: %s.%s failed: %s", self, spec.namespace, spec.name, exc)
            return SerializedError.from_exception(from_engine_error(exc))
        logger.error("%r: internal error in %s.%s", self, spec.namespace, spec.name, exc_info=exc)
        title = f"Internal server error in {spec.name}: {type(exc).__name__}: {exc}"
        return SerializedError(title=title, root_title=title)

    # ------------------------------------------------------------------ writing

    async def send_packet(self, channel_id: int, packet: Any, *, check: bool = True) -> None:
        """Send one channel packet (raises :class:`ConnectionDropped` if the socket is gone)."""
        await self._write(lambda: self.session.send_packet(channel_id, packet, check=check))

    async def _write(self, make_frame: Callable[[], str]) -> None:
        # The frame is built under the lock: session state and wire order stay in step.
        async with self._write_lock:
            if self._dropped or self.session.state is not SessionState.OPEN:
                raise ConnectionDropped
            frame = make_frame()
            await self._send_one(frame, dropped=True)

    async def _send_one(self, frame: str, *, dropped: bool) -> None:
        """Send a frame, bounded: a client that stopped reading is closed, not waited on."""
        stall = self.server.options.limits.send_stall_timeout
        try:
            with anyio.fail_after(stall):
                await self.ws.send(frame)
        except ConnectionClosed:
            if dropped:
                raise ConnectionDropped from None
        except TimeoutError:
            self.server.record_refusal("stopped reading")
            self.server.logs.server_log(
                f"Closed a connection to /{self.namespace} from {self._peer}: the client "
                f"stopped reading what it was sent for {stall:g}s (limits.send_stall_timeout)",
                "warn",
            )
            self._dropped = True
            self.ws.transport.abort()
            if dropped:
                raise ConnectionDropped from None

    async def _send_frames(self, frames: list[str]) -> None:
        async with self._write_lock:
            for frame in frames:
                if self._dropped:
                    return
                await self._send_one(frame, dropped=False)

    async def _close(self, code: int, reason: str) -> None:
        with anyio.move_on_after(2), contextlib.suppress(ConnectionClosed):
            await self.ws.close(code, reason)

    # ------------------------------------------------------------------ fault injection

    async def _wire_fault(self, kind: str) -> None:
        if kind == "dropSocket":
            self.drop()
        else:
            with contextlib.suppress(ConnectionDropped):
                await self.send_malformed_frame()

    def drop(self) -> None:
        """Fault injection: drop the TCP connection now, without a close frame."""
        logger.info("%r: dropping the connection (injected fault)", self)
        self._dropped = True
        self.ws.transport.abort()

    async def send_malformed_frame(self) -> None:
        """Fault injection: send one frame that is not valid JSON."""
        logger.info("%r: sending a malformed frame (injected fault)", self)
        async with self._write_lock:
            try:
                await self.ws.send(MALFORMED_FRAME)
            except ConnectionClosed:
                raise ConnectionDropped from None


def _unwrap(exc: BaseException) -> BaseException:
    # Handlers that use task groups raise exception groups; one leaf is the real error.
    # (Duck-typed: BaseExceptionGroup is a builtin only from Python 3.11 on.)
    while True:
        inner = getattr(exc, "exceptions", None)
        if not isinstance(inner, tuple) or len(inner) != 1:
            return exc
        exc = inner[0]


def peer_address(ws: ServerConnection) -> str:
    """The remote IP address of a socket (``"?"`` when unknown)."""
    try:
        address = ws.remote_address
    except Exception:  # pragma: no cover - transport already gone
        return "?"
    if isinstance(address, tuple) and address:
        return str(address[0])
    return str(address)


def _peer_name(ws: ServerConnection) -> str:
    try:
        address = ws.remote_address
    except Exception:  # pragma: no cover - transport already gone
        return "?"
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)
