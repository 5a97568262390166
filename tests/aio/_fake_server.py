"""A scripted stand-in for LM Studio built on ``ServerSession``, for the client tests.

:class:`FakeServer` runs in the test's own event loop over the in-memory transport, so it
works with Trio's autojump clock (which must never meet real sockets). Tests script it per
endpoint:

* ``server.rpc["system.version"] = handler``: ``async def handler(parameter) -> result``;
  raising ``LMStudioServerError`` (or any exception) answers with an ``rpcError``;
  :func:`hang` never answers;
* ``server.channels["llm.predict"] = handler``: ``async def handler(ch: ServerChannel)``,
  which sends packets with ``await ch.send(packet)``, can wait for the client's cancel
  (``await ch.cancelled.wait()``); returning sends ``channelClose``, raising sends
  ``channelError``.

Endpoints with no handler get the reference server's reaction: a ``communicationWarning``
and no reply.

Records, for assertions: ``server.cancels`` (``"ns.endpoint"`` of every channel that got a
cancel/stop packet, in order), ``server.frames_in`` (every frame received, per namespace),
``server.connects`` (sockets opened per namespace), ``server.auth_packets``.

Faults: ``server.frozen = True`` (nothing is answered any more), :meth:`FakeServer.drop`
(the network goes away), :meth:`ServerConnection.send_raw` (send any text, e.g. a broken
frame).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import attrs
from anyio.abc import TaskGroup

from lmstudio_sdk._async._memory import MemoryTransport, memory_transport_pair
from lmstudio_sdk._async.transport import TransportClosed
from lmstudio_sdk.protocol import codec
from lmstudio_sdk.protocol.endpoints import ENDPOINTS, llm, shared
from lmstudio_sdk.protocol.events import (
    AuthenticationRejected,
    CallReceived,
    ChannelOpened,
    ChannelPacketReceived,
    ClientAuthenticated,
    RequestRejected,
)
from lmstudio_sdk.protocol.kv import KVConfig
from lmstudio_sdk.protocol.server_session import IdentityRegistry, ServerSession
from lmstudio_sdk.protocol.session import SessionState

RpcHandler = Callable[[Any], Awaitable[Any]]
ChannelHandler = Callable[["ServerChannel"], Awaitable[None]]

CANCEL_TYPES = frozenset({"cancel", "stop", "cancelDownload", "cancelPlan"})


async def hang(_: Any = None) -> Any:
    """An RPC handler that never answers."""
    await anyio.sleep_forever()


# ------------------------------------------------------------------------------ wire helpers


def llm_instance(identifier: str = "smollm2-135m-instruct") -> shared.LLMInstanceInfo:
    return shared.LLMInstanceInfo(
        model_key=identifier,
        format="gguf",
        display_name="SmolLM2 135M Instruct",
        path=f"lmstudio-community/{identifier}/{identifier}.gguf",
        size_bytes=100_000_000,
        publisher="lmstudio-community",
        indexed_model_identifier=identifier,
        device_identifier=None,
        vision=False,
        trained_for_tool_use=False,
        max_context_length=8192,
        identifier=identifier,
        instance_reference=f"ref-{identifier}",
        context_length=4096,
        ttl_ms=None,
        last_used_time=None,
    )


def llm_info(key: str = "smollm2-135m-instruct") -> shared.LLMInfo:
    return shared.LLMInfo(
        model_key=key,
        format="gguf",
        display_name="SmolLM2 135M Instruct",
        path=f"lmstudio-community/{key}/{key}.gguf",
        size_bytes=100_000_000,
        vision=False,
        trained_for_tool_use=False,
        max_context_length=8192,
    )


def fragment(
    text: str, *, tokens: int = 1, reasoning_type: str = "none", structural: bool = False
) -> llm.PredictFragment:
    return llm.PredictFragment(
        shared.LLMPredictionFragment(text, tokens, False, reasoning_type, structural)
    )


def success(stop_reason: str, identifier: str = "smollm2-135m-instruct") -> llm.PredictSuccess:
    return llm.PredictSuccess(
        stats=shared.LLMPredictionStats(stop_reason=stop_reason),
        model_info=llm_instance(identifier),
        load_model_config=KVConfig(),
        prediction_config=KVConfig(),
    )


def predict_parameter(text: str = "Hi") -> llm.PredictCreationParameter:
    from lmstudio_sdk.protocol.kv import KVConfigLayer, KVConfigStack

    return llm.PredictCreationParameter(
        shared.ModelSpecifierQuery(shared.ModelQuery(identifier="smollm2-135m-instruct")),
        shared.ChatHistoryData([shared.UserMessage([shared.TextPart(text)])]),
        KVConfigStack([KVConfigLayer("apiOverride", KVConfig())]),
    )


async def stream_until_cancelled(ch: ServerChannel, count: int = 3) -> None:
    """Predict like LM Studio: ``count`` fragments, then (after the client's cancel) the
    ``success`` with ``userStopped``. Without a cancel it waits forever."""
    for i in range(count):
        await ch.send(fragment(f"tok{i} "))
    await ch.cancelled.wait()
    await ch.send(success("userStopped"))


# ------------------------------------------------------------------------------ the server


@attrs.define(eq=False)
class ServerChannel:
    """One channel as a handler sees it."""

    connection: ServerConnection
    channel_id: int
    endpoint: str
    parameter: Any
    cancelled: anyio.Event = attrs.field(factory=anyio.Event)
    packets: list[Any] = attrs.field(factory=list)  # what the client sent on it

    async def send(self, packet: Any) -> None:
        await self.connection.send_frame(
            self.connection.session.send_packet(self.channel_id, packet)
        )


class ServerConnection:
    """The server end of one socket."""

    def __init__(self, server: FakeServer, namespace: str, transport: Any) -> None:
        self.server = server
        self.namespace = namespace
        self.transport = transport
        self.session = ServerSession(
            namespace,
            ENDPOINTS[namespace],
            server.registry,
            unknown_endpoint_errors=server.unknown_endpoint_errors,
        )
        self._lock = anyio.Lock()
        self._channels: dict[int, ServerChannel] = {}
        self.closed = anyio.Event()

    async def send_frame(self, frame: str) -> None:
        async with self._lock:
            try:
                await self.transport.send_text(frame)
            except TransportClosed:
                # The client went away: the handler sending stops here, like a real
                # server's handler whose socket closed (serve() cleans up).
                await anyio.sleep_forever()

    async def send_raw(self, text: str) -> None:
        """Send anything (a broken frame, an unknown message type...)."""
        await self.send_frame(text)

    async def serve(self) -> None:
        try:
            async with anyio.create_task_group() as tg:
                try:
                    await self._loop(tg)
                finally:
                    tg.cancel_scope.cancel()
        finally:
            self.session.connection_lost()
            self.closed.set()
            with anyio.CancelScope(shield=True):
                await self.transport.aclose()

    async def _loop(self, tg: TaskGroup) -> None:
        while True:
            try:
                text = await self.transport.receive_text()
            except TransportClosed:
                return
            self.server.frames_in[self.namespace].append(text)
            if self.server.frozen:
                continue
            events = self.session.receive_text(text)
            for frame in self.session.data_to_send():
                await self.send_frame(frame)
            for event in events:
                self._dispatch(event, tg)
            if self.session.state is SessionState.CLOSED:  # authentication rejected
                await self.transport.aclose()
                return

    def _dispatch(self, event: Any, tg: TaskGroup) -> None:
        server = self.server
        if isinstance(event, ClientAuthenticated):
            server.connects[self.namespace] += 1
            server.identities.append(event.client_identifier)
        elif isinstance(event, AuthenticationRejected):
            server.rejections.append(event.reason)
        elif isinstance(event, CallReceived):
            label = f"{self.namespace}.{event.spec.name}"
            handler = server.rpc.get(label)
            if handler is None:
                # No handler: what a server without this endpoint does (a warning only).
                tg.start_soon(self._warn, f"no handler for {label}")
            else:
                tg.start_soon(self._run_call, event.call_id, handler, event.parameter)
        elif isinstance(event, ChannelOpened):
            label = f"{self.namespace}.{event.spec.name}"
            channel = ServerChannel(self, event.channel_id, label, event.creation_parameter)
            self._channels[event.channel_id] = channel
            handler = server.channels.get(label)
            if handler is None:
                tg.start_soon(self._warn, f"no handler for {label}")
            else:
                tg.start_soon(self._run_channel, channel, handler)
        elif isinstance(event, ChannelPacketReceived):
            channel = self._channels[event.channel_id]
            channel.packets.append(event.packet)
            if getattr(event.packet, "type", None) in CANCEL_TYPES:
                server.cancels.append(channel.endpoint)
                channel.cancelled.set()
        elif isinstance(event, RequestRejected):
            server.rejected.append(event.kind)

    async def _warn(self, warning: str) -> None:
        from lmstudio_sdk.protocol.wire import CommunicationWarning, encode

        await self.send_frame(encode(CommunicationWarning(warning, "rpcEndpointUnhandled")))

    async def _run_call(self, call_id: int, handler: RpcHandler, parameter: Any) -> None:
        try:
            result = await handler(parameter)
        except Exception as exc:
            frame = self.session.reply_error(call_id, exc)
        else:
            frame = self.session.reply(call_id, result)
        await self.send_frame(frame)

    async def _run_channel(self, channel: ServerChannel, handler: ChannelHandler) -> None:
        try:
            await handler(channel)
        except Exception as exc:
            frame = self.session.fail_channel(channel.channel_id, exc)
        else:
            frame = self.session.close_channel(channel.channel_id)
        await self.send_frame(frame)


class FakeServer:
    """See the module docstring."""

    def __init__(
        self,
        *,
        api_tokens: tuple[str, ...] = (),
        require_token: bool = False,
        unknown_endpoint_errors: bool = False,
    ) -> None:
        self.registry = IdentityRegistry(api_tokens, require_token=require_token)
        self.unknown_endpoint_errors = unknown_endpoint_errors
        self.rpc: dict[str, RpcHandler] = {}
        self.channels: dict[str, ChannelHandler] = {}
        self.cancels: list[str] = []
        self.frames_in: dict[str, list[str]] = {ns: [] for ns in ENDPOINTS}
        self.connects: Counter[str] = Counter()
        self.identities: list[str] = []
        self.rejections: list[str] = []
        self.rejected: list[str] = []
        self.live: list[ServerConnection] = []
        self.connect_attempts: list[float] = []  # anyio.current_time() of each attempt
        self.refuse_connections = False
        # A frozen server (a stopped process, a network that blackholes): frames are
        # received and recorded, and nothing is answered, not even keepAlive.
        self.frozen = False
        self._task_group: TaskGroup | None = None

    async def transport_factory(self, url: str, task_group: TaskGroup) -> MemoryTransport:
        """For ``AsyncClient(transport_factory=...)``: a memory socket to this server."""
        from lmstudio_sdk._async.transport import connect_failed

        self.connect_attempts.append(anyio.current_time())
        await anyio.lowlevel.checkpoint()
        if self.refuse_connections:
            raise connect_failed(url, "connection refused")
        assert self._task_group is not None, "use `async with serving(server)`"
        namespace = url.rsplit("/", 1)[-1]
        client_end, server_end = memory_transport_pair()
        connection = ServerConnection(self, namespace, server_end)
        self.live.append(connection)
        self._task_group.start_soon(connection.serve)
        return client_end

    def connections(self, namespace: str) -> list[ServerConnection]:
        return [c for c in self.live if c.namespace == namespace and not c.closed.is_set()]

    def drop(self, namespace: str | None = None) -> None:
        """The network goes away under the open sockets (of ``namespace``, or all)."""
        for connection in self.live:
            if namespace in (None, connection.namespace) and not connection.closed.is_set():
                connection.transport.drop()

    def received(self, namespace: str) -> list[Any]:
        """Every frame received on ``namespace``, parsed as JSON."""
        return [codec.loads(frame) for frame in self.frames_in[namespace]]


@asynccontextmanager
async def serving(server: FakeServer) -> AsyncIterator[FakeServer]:
    """Run ``server``'s connections in a task group of the current loop."""
    async with anyio.create_task_group() as tg:
        server._task_group = tg
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()


def memory_client(server: FakeServer, **options: Any) -> Any:
    """An ``AsyncClient`` talking to ``server`` over the in-memory transport."""
    from lmstudio_sdk import AsyncClient

    options.setdefault("timeout", 60.0)
    return AsyncClient(
        "ws://fake.invalid:1234", transport_factory=server.transport_factory, **options
    )


# ------------------------------------------------------------------------------ test plumbing


def backend(name: str) -> tuple[str, dict[str, object]]:
    """``asyncio``, ``trio`` (real clocks) or ``autojump`` (Trio, a fresh MockClock)."""
    import trio.testing

    if name == "autojump":
        return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})
    return (name, {})


@asynccontextmanager
async def connected(server: FakeServer, **options: Any) -> AsyncIterator[Any]:
    """Serve ``server`` and yield an open ``AsyncClient`` talking to it in memory."""
    async with serving(server), memory_client(server, **options) as client:
        yield client
