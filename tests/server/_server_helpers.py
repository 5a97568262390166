"""Helpers for the server tests: the scripted test models and a raw test client.

The client is deliberately low level: a websocket (``websockets`` under asyncio,
trio-websocket under Trio) driven by the sans-io ``ClientSession``, so these tests see
exactly the frames the server sends. Every wait is bounded (``WAIT``), so a server that
does not answer fails the test instead of hanging it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import anyio
import sniffio

from lmstudio_sdk.protocol import UNSET
from lmstudio_sdk.protocol.endpoints import ChannelSpec, RpcSpec
from lmstudio_sdk.protocol.endpoints.shared import (
    ChatHistoryData,
    ModelQuery,
    ModelSpecifierQuery,
    TextPart,
    UserMessage,
)
from lmstudio_sdk.protocol.events import (
    Authenticated,
    AuthenticationFailed,
    ChannelClosed,
    ChannelFailed,
    ChannelPacketReceived,
    RpcFailed,
    RpcSucceeded,
)
from lmstudio_sdk.protocol.kv import KVConfig, KVConfigField, KVConfigLayer, KVConfigStack
from lmstudio_sdk.protocol.session import ClientSession
from lmstudio_sdk.server import (
    BackgroundServer,
    Faults,
    Script,
    ScriptedToolCall,
    scripted_model,
)

WAIT = 10.0
"""Seconds any single wait on the server may take before the test fails."""

LLM = "scripted-llm"
EMBEDDING = "scripted-embedding"
SLOW = "slow-llm"  # 100 fragments at 200 per second: a prediction that lasts ~0.5 s
REASONING = "reasoning-llm"
TOOLS = "tools-llm"
ECHO = "echo-llm"

SLOW_FRAGMENTS = 100


def scripted_test_models() -> list[Any]:
    """The scripted models every test server offers."""
    return [
        scripted_model(LLM),
        scripted_model(EMBEDDING, domain="embedding"),
        scripted_model(
            SLOW, script=Script(fragments=("tick ",) * SLOW_FRAGMENTS, fragments_per_second=200)
        ),
        scripted_model(REASONING, script=Script(text="The answer is 4.", reasoning="2 plus 2")),
        scripted_model(
            TOOLS,
            script=Script(tool_calls=(ScriptedToolCall(name="add", arguments={"a": 1, "b": 2}),)),
        ),
        scripted_model(ECHO, script=Script(echo=True, echo_prefix="echo: ")),
        scripted_model("drop-llm", faults=Faults(drop_socket_after_fragments=2)),
        scripted_model("malformed-llm", faults=Faults(malformed_frame_after_fragments=2)),
        scripted_model(
            "error-llm", faults=Faults(error="Scripted failure", error_after_fragments=2)
        ),
        scripted_model("silent-llm", faults=Faults(never_answer=True)),
        scripted_model(
            "broken-tokenizer",
            faults=Faults(operations={"tokenize"}, error="Tokenizer exploded"),
        ),
    ]


# --- raw websockets on either backend ------------------------------------------------------


class SocketClosed(Exception):
    """The websocket closed; ``code`` is the close code (1006: dropped, no close frame)."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"websocket closed: {code} {reason}")


class RawSocket:
    """A text websocket with the same API under asyncio and Trio."""

    def __init__(self, ws: Any, backend: str) -> None:
        self._ws = ws
        self._backend = backend

    async def send(self, text: str) -> None:
        if self._backend == "trio":
            import trio_websocket

            try:
                await self._ws.send_message(text)
            except trio_websocket.ConnectionClosed as exc:
                raise SocketClosed(exc.reason.code, exc.reason.reason or "") from None
        else:
            from websockets.exceptions import ConnectionClosed

            try:
                await self._ws.send(text)
            except ConnectionClosed as exc:
                raise _closed(exc) from None

    async def recv(self) -> str:
        if self._backend == "trio":
            import trio_websocket

            try:
                message = await self._ws.get_message()
            except trio_websocket.ConnectionClosed as exc:
                raise SocketClosed(exc.reason.code, exc.reason.reason or "") from None
        else:
            from websockets.exceptions import ConnectionClosed

            try:
                message = await self._ws.recv()
            except ConnectionClosed as exc:
                raise _closed(exc) from None
        assert isinstance(message, str), f"the server sent a binary frame: {message!r}"
        return message


def _closed(exc: Any) -> SocketClosed:
    received = exc.rcvd
    if received is None:
        return SocketClosed(1006, "no close frame")
    return SocketClosed(received.code, received.reason)


@asynccontextmanager
async def _open_trio_socket(url: str) -> AsyncIterator[RawSocket]:
    # Not trio_websocket.open_websocket_url: it leaves the TCP socket open when the server
    # starts the close handshake (a ResourceWarning), so the stream is ours to close.
    import trio
    import trio_websocket

    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    stream = await trio.open_tcp_stream(parts.hostname, parts.port)
    try:
        async with trio.open_nursery() as nursery:
            ws = await trio_websocket.wrap_client_stream(
                nursery, stream, parts.hostname, parts.path, max_message_size=256 * 2**20
            )
            try:
                yield RawSocket(ws, "trio")
            finally:
                with trio.move_on_after(2):
                    await ws.aclose()
                nursery.cancel_scope.cancel()
    finally:
        await stream.aclose()


@asynccontextmanager
async def open_socket(url: str) -> AsyncIterator[RawSocket]:
    """A websocket to ``url`` on the running backend."""
    backend = sniffio.current_async_library()
    with anyio.fail_after(WAIT):
        if backend == "trio":
            async with _open_trio_socket(url) as socket:
                yield socket
            return
        from websockets.asyncio.client import connect

        async with connect(url, max_size=None, compression=None, close_timeout=2) as ws:
            yield RawSocket(ws, "asyncio")


# --- a protocol-level test client ----------------------------------------------------------


class TestClient:
    """One namespace socket with a ``ClientSession``; records every frame it receives."""

    __test__ = False  # not a test class

    def __init__(self, socket: RawSocket, session: ClientSession) -> None:
        self.socket = socket
        self.session = session
        self.frames: list[str] = []
        self.endpoint_of_call: dict[int, RpcSpec] = {}
        self.endpoint_of_channel: dict[int, ChannelSpec] = {}
        self._backlog: list[Any] = []

    async def recv_frame(self) -> str:
        with anyio.fail_after(WAIT):
            frame = await self.socket.recv()
        self.frames.append(frame)
        return frame

    async def recv_json(self) -> Any:
        return json.loads(await self.recv_frame())

    async def send(self, frame: str) -> None:
        await self.socket.send(frame)

    async def wait_for(self, predicate: Callable[[Any], bool]) -> Any:
        """The next event that matches (earlier non-matching events are kept for later)."""
        with anyio.fail_after(WAIT):
            while True:
                for index, event in enumerate(self._backlog):
                    if predicate(event):
                        return self._backlog.pop(index)
                frame = await self.socket.recv()
                self.frames.append(frame)
                self._backlog.extend(self.session.receive_text(frame))

    async def call(self, spec: RpcSpec, parameter: Any = UNSET) -> RpcSucceeded | RpcFailed:
        call_id, frame = self.session.call(spec, parameter)
        self.endpoint_of_call[call_id] = spec
        await self.send(frame)
        return await self.wait_for(  # type: ignore[no-any-return]
            lambda e: isinstance(e, (RpcSucceeded, RpcFailed)) and e.call_id == call_id
        )

    async def result(self, spec: RpcSpec, parameter: Any = UNSET) -> Any:
        """Call and return the result; fail the test on an error reply."""
        reply = await self.call(spec, parameter)
        assert isinstance(reply, RpcSucceeded), f"{spec.name} failed: {reply}"
        return reply.result

    async def open(self, spec: ChannelSpec, parameter: Any = UNSET) -> int:
        channel_id, frame = self.session.open_channel(spec, parameter)
        self.endpoint_of_channel[channel_id] = spec
        await self.send(frame)
        return channel_id

    async def next_on(self, channel_id: int) -> Any:
        """The next packet, ``ChannelClosed`` or ``ChannelFailed`` of a channel."""
        event = await self.wait_for(
            lambda e: (
                isinstance(e, (ChannelPacketReceived, ChannelClosed, ChannelFailed))
                and e.channel_id == channel_id
            )
        )
        return event.packet if isinstance(event, ChannelPacketReceived) else event

    async def until_end(self, channel_id: int) -> tuple[list[Any], ChannelClosed | ChannelFailed]:
        """Every packet of a channel, and how it ended."""
        packets: list[Any] = []
        while True:
            item = await self.next_on(channel_id)
            if isinstance(item, (ChannelClosed, ChannelFailed)):
                return packets, item
            packets.append(item)

    async def cancel(self, channel_id: int) -> None:
        frame = self.session.cancel_channel(channel_id)
        assert frame is not None
        await self.send(frame)


_identities = iter(range(1, 1_000_000))


def new_identity() -> tuple[str, str]:
    n = next(_identities)
    return f"guest:test-{n}", f"passkey-{n}"


@asynccontextmanager
async def connect(
    server: BackgroundServer,
    namespace: str,
    identity: tuple[str, str] | None = None,
    *,
    authenticate: bool = True,
) -> AsyncIterator[TestClient]:
    """A socket to ``/namespace``, authenticated (as a new guest by default)."""
    identifier, passkey = identity or new_identity()
    async with open_socket(f"{server.url}/{namespace}") as socket:
        client = TestClient(socket, ClientSession(identifier, passkey, namespace=namespace))
        if authenticate:
            await client.send(client.session.start())
            event = await client.wait_for(
                lambda e: isinstance(e, (Authenticated, AuthenticationFailed))
            )
            assert isinstance(event, Authenticated), event
        yield client


# --- request builders ----------------------------------------------------------------------


def query(identifier: str | None = None, **criteria: Any) -> ModelSpecifierQuery:
    if identifier is not None:
        criteria["identifier"] = identifier
    return ModelSpecifierQuery(ModelQuery(**criteria))


def stack(fields: dict[str, Any] | None = None, *, layer: str = "apiOverride") -> KVConfigStack:
    """A stack of one layer with the given full keys."""
    config = KVConfig([KVConfigField(k, v) for k, v in (fields or {}).items()])
    return KVConfigStack([KVConfigLayer(layer, config)])  # type: ignore[arg-type]


def kv(config: KVConfig) -> dict[str, Any]:
    return {field.key: field.value for field in config.fields}


def chat(text: str) -> ChatHistoryData:
    return ChatHistoryData([UserMessage([TextPart(text)])])


async def get_or_load(client: TestClient, identifier: str, **options: Any) -> Any:
    """Load (or find) a model through ``getOrLoad``; returns the instance info."""
    from lmstudio_sdk.protocol.endpoints import embedding, llm
    from lmstudio_sdk.protocol.endpoints.shared import GetOrLoadCreationParameter

    ns = llm if client.session.namespace == "llm" else embedding
    channel = await client.open(
        ns.GET_OR_LOAD,
        GetOrLoadCreationParameter(
            identifier=identifier, load_config_stack=options.pop("load_stack", stack()), **options
        ),
    )
    packets, end = await client.until_end(channel)
    assert isinstance(end, ChannelClosed), end
    return packets[-1].info
