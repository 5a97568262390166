"""One conformance suite for every Transport implementation.

``TestConformance`` runs each check on the in-memory pair (asyncio and Trio), on
trio-websocket (Trio only) and on ``websockets`` (asyncio only), each against an echo peer
(see ``conftest.py``). The module-level tests cover ``open_transport``/``connect``: failures
to connect, bounded closing, and ownership by a task group, on both backends.

No test sleeps to wait for something: tasks hand over with events or by blocking on
``wait_all_tasks_blocked``; the only real-clock bounds are short timeouts under test.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import pytest
import trio.testing

from lmstudio_sdk._async._memory import MemoryTransport, memory_transport_pair
from lmstudio_sdk._async.transport import (
    Transport,
    TransportClosed,
    connect,
    describe_os_error,
    open_transport,
)
from lmstudio_sdk.errors import LMStudioConnectionError, LocalProtocolError, RemoteProtocolError

if TYPE_CHECKING:
    from conftest import WsServer  # tests/aio/conftest.py

OpenEcho = Callable[[], AbstractAsyncContextManager[Transport]]

CASES = [
    pytest.param(("asyncio", "memory"), id="memory-asyncio"),
    pytest.param(("trio", "memory"), id="memory-trio"),
    pytest.param(("trio", "trio-websocket"), id="trio-websocket"),
    pytest.param(("asyncio", "websockets"), id="websockets"),
]
EXPECTED_CLASS = {
    "memory": "MemoryTransport",
    "trio-websocket": "TrioWebsocketTransport",
    "websockets": "WebsocketsTransport",
}
UNICODE = "héllo wörld ✓ 日本語 🦙 \u0000 \u2028 end"


async def memory_echo_peer(peer: MemoryTransport) -> None:
    """The ``/echo`` behaviour of ``ws_server``, over the in-memory transport."""
    while True:
        try:
            message = await peer.receive_text()
        except TransportClosed:
            await peer.aclose()
            return
        if message == "!drop":
            peer.drop()
            return
        if message.startswith("!close "):
            _, code, reason = message.split(" ", 2)
            await peer.aclose(int(code), reason)
            return
        await peer.send_text(message)


@asynccontextmanager
async def open_memory_echo() -> AsyncIterator[Transport]:
    client, server = memory_transport_pair()
    async with anyio.create_task_group() as tg:
        tg.start_soon(memory_echo_peer, server)
        try:
            yield client
        finally:
            await client.aclose()


async def receive_n(transport: Transport, count: int) -> list[str]:
    return [await transport.receive_text() for _ in range(count)]


class TestConformance:
    @pytest.fixture(params=CASES)
    def case(self, request: pytest.FixtureRequest) -> tuple[str, str]:
        return request.param  # type: ignore[no-any-return]

    @pytest.fixture
    def anyio_backend(self, case: tuple[str, str]) -> tuple[str, dict[str, object]]:
        return (case[0], {})

    @pytest.fixture
    def open_echo(self, case: tuple[str, str], ws_server: WsServer) -> OpenEcho:
        kind = case[1]

        @asynccontextmanager
        async def opener() -> AsyncIterator[Transport]:
            cm = open_memory_echo() if kind == "memory" else open_transport(ws_server.url("/echo"))
            async with cm as transport:
                assert type(transport).__name__ == EXPECTED_CLASS[kind]
                yield transport

        return opener

    async def test_text_round_trip(self, open_echo: OpenEcho) -> None:
        frames = ["hello", UNICODE, "", '{"type":"rpcCall","callId":1}', " " * 3]
        async with open_echo() as transport:
            for frame in frames:
                await transport.send_text(frame)
                assert await transport.receive_text() == frame

    async def test_five_megabyte_frame(self, open_echo: OpenEcho) -> None:
        big = UNICODE + os.urandom(5 * 2**20 // 2).hex() + UNICODE  # 5 MiB, no repeats
        async with open_echo() as transport:
            await transport.send_text(big)
            echoed = await transport.receive_text()
        assert len(echoed) == len(big)
        assert echoed == big

    async def test_many_frames_keep_their_order(self, open_echo: OpenEcho) -> None:
        sent = [f"frame-{i}" for i in range(500)]
        async with open_echo() as transport, anyio.create_task_group() as tg:

            async def send_all() -> None:
                for frame in sent:
                    await transport.send_text(frame)

            tg.start_soon(send_all)
            assert await receive_n(transport, len(sent)) == sent

    async def test_concurrent_senders_do_not_interleave_frames(self, open_echo: OpenEcho) -> None:
        async with open_echo() as transport:

            async def send_many(prefix: str) -> None:
                for i in range(200):
                    await transport.send_text(f"{prefix}-{i}-" + prefix * 1000)

            async with anyio.create_task_group() as tg:
                tg.start_soon(send_many, "a")
                tg.start_soon(send_many, "b")
                received = await receive_n(transport, 400)
        for prefix in "ab":
            mine = [frame for frame in received if frame.startswith(prefix)]
            assert mine == [f"{prefix}-{i}-" + prefix * 1000 for i in range(200)]

    async def test_peer_close_delivers_queued_frames_then_closed(self, open_echo: OpenEcho) -> None:
        async with open_echo() as transport:
            await transport.send_text("before")
            await transport.send_text("!close 4000 going away now")
            assert await transport.receive_text() == "before"
            with pytest.raises(TransportClosed) as info:
                await transport.receive_text()
            assert info.value.code == 4000
            assert info.value.reason == "going away now"
            assert "4000" in str(info.value)
            assert isinstance(info.value, LMStudioConnectionError)
            with pytest.raises(TransportClosed):
                await transport.send_text("too late")
            with pytest.raises(TransportClosed):  # it keeps saying so
                await transport.receive_text()

    async def test_abrupt_drop_raises_transport_closed(self, open_echo: OpenEcho) -> None:
        async with open_echo() as transport:
            await transport.send_text("!drop")
            with pytest.raises(TransportClosed) as info:
                await transport.receive_text()
            assert info.value.code == 1006
            assert "lost" in str(info.value)

    async def test_aclose_is_idempotent_and_later_io_fails(self, open_echo: OpenEcho) -> None:
        async with open_echo() as transport:
            await transport.send_text("ping")
            assert await transport.receive_text() == "ping"
            await transport.aclose()
            await transport.aclose()
            with pytest.raises(TransportClosed, match="closed by this side"):
                await transport.send_text("after close")
            with pytest.raises(TransportClosed, match="closed by this side"):
                await transport.receive_text()
        await transport.aclose()  # and after the context manager closed it too

    async def test_aclose_wakes_a_blocked_receiver(self, open_echo: OpenEcho) -> None:
        outcome: list[BaseException] = []

        async def receiver(transport: Transport) -> None:
            try:
                await transport.receive_text()
            except TransportClosed as exc:
                outcome.append(exc)

        with anyio.fail_after(5):  # a receiver left blocked would hang the task group
            async with open_echo() as transport, anyio.create_task_group() as tg:
                tg.start_soon(receiver, transport)
                await anyio.wait_all_tasks_blocked()
                await transport.aclose()
        assert len(outcome) == 1
        assert "closed by this side" in str(outcome[0])

    async def test_cancelled_receive_leaves_transport_usable(self, open_echo: OpenEcho) -> None:
        async with open_echo() as transport:
            scope = anyio.CancelScope()

            async def receiver() -> None:
                with scope:
                    await transport.receive_text()
                    pytest.fail("nothing was sent, receive_text() must still be waiting")

            async with anyio.create_task_group() as tg:
                tg.start_soon(receiver)
                await anyio.wait_all_tasks_blocked()
                scope.cancel()
            assert scope.cancelled_caught
            await transport.send_text("still here")
            assert await transport.receive_text() == "still here"

    async def test_send_rejects_non_text(self, open_echo: OpenEcho) -> None:
        async with open_echo() as transport:
            with pytest.raises(LocalProtocolError, match="str"):
                await transport.send_text(b"bytes are a binary frame")  # type: ignore[arg-type]
            await transport.send_text("fine")
            assert await transport.receive_text() == "fine"


class TestMemoryPair:
    """The memory pair's own features, on Trio's autojump clock (where real sockets may not go)."""

    @pytest.fixture
    def anyio_backend(
        self, autojump_backend: tuple[str, dict[str, object]]
    ) -> tuple[str, dict[str, object]]:
        return autojump_backend

    async def test_an_hour_of_silence_passes_instantly(self) -> None:
        client, server = memory_transport_pair()
        async with client, server:
            start = anyio.current_time()
            with anyio.move_on_after(3600) as scope:
                await client.receive_text()
            assert scope.cancelled_caught
            assert anyio.current_time() - start >= 3600
            assert isinstance(trio.lowlevel.current_clock(), trio.testing.MockClock)
            await server.send_text("after an hour")
            assert await client.receive_text() == "after an hour"

    async def test_full_buffer_makes_send_wait(self) -> None:
        client, server = memory_transport_pair(max_buffered=2)
        async with client, server:
            await client.send_text("1")
            await client.send_text("2")
            with anyio.move_on_after(60) as scope:
                await client.send_text("3")
            assert scope.cancelled_caught
            assert await receive_n(server, 2) == ["1", "2"]
            await server.aclose()
            with pytest.raises(TransportClosed) as info:
                await client.send_text("to nobody")
            assert info.value.code == 1000

    async def test_drop_fails_both_ends_and_loses_queued_frames(self) -> None:
        client, server = memory_transport_pair()
        await client.send_text("in flight")
        server.drop()
        for end in (client, server):
            with pytest.raises(TransportClosed) as info:
                await end.receive_text()
            assert info.value.code == 1006
            with pytest.raises(TransportClosed) as info:
                await end.send_text("into the void")
            assert info.value.code == 1006
            await end.aclose()


# --- open_transport() / connect(): both backends, real sockets ---------------------------


async def test_connect_refused_port_names_the_reason(refused_port: int) -> None:
    url = f"ws://127.0.0.1:{refused_port}/llm"
    with pytest.raises(LMStudioConnectionError) as info:
        async with open_transport(url, connect_timeout=5):
            pytest.fail("must not connect")
    assert type(info.value) is LMStudioConnectionError
    assert info.value.attempts == ((url, "connection refused"),)
    assert "connection refused" in str(info.value)


async def test_handshake_rejected_by_the_server(ws_server: WsServer) -> None:
    url = ws_server.url("/reject")
    with pytest.raises(LMStudioConnectionError) as info:
        async with open_transport(url):
            pytest.fail("must not connect")
    assert info.value.attempts == ((url, "HTTP 403 during websocket handshake"),)


async def test_handshake_on_unknown_path(ws_server: WsServer) -> None:
    with pytest.raises(LMStudioConnectionError, match="HTTP 404 during websocket handshake"):
        async with open_transport(ws_server.url("/nowhere")):
            pytest.fail("must not connect")


async def test_connect_times_out_on_a_silent_server(ws_server: WsServer) -> None:
    with (
        anyio.fail_after(10),
        pytest.raises(LMStudioConnectionError, match=r"timed out after 0\.3 s"),
    ):
        async with open_transport(ws_server.raw_url("/silent"), connect_timeout=0.3):
            pytest.fail("must not connect")


async def test_cancelled_connect_leaves_nothing_behind(ws_server: WsServer) -> None:
    # Leaked sockets would show up as ResourceWarnings, which this suite turns into errors.
    with anyio.move_on_after(0.2) as scope:
        async with open_transport(ws_server.raw_url("/silent"), connect_timeout=30):
            pytest.fail("must not connect")
    assert scope.cancelled_caught


async def test_aclose_is_bounded_when_the_peer_ignores_the_close(ws_server: WsServer) -> None:
    with anyio.fail_after(10):
        async with open_transport(ws_server.raw_url("/mute"), close_timeout=0.2) as transport:
            await transport.send_text("nobody answers")
            await transport.aclose()
        with pytest.raises(TransportClosed):
            await transport.receive_text()


async def test_leaving_the_block_sends_a_normal_close(ws_server: WsServer) -> None:
    tag = uuid.uuid4().hex
    async with open_transport(ws_server.url(f"/echo?tag={tag}")) as transport:
        await transport.send_text("hi")
        assert await transport.receive_text() == "hi"
    assert await anyio.to_thread.run_sync(ws_server.close_code, tag) == 1000


async def test_cancelled_block_drops_the_connection_at_once(ws_server: WsServer) -> None:
    # A cancelled task does not wait for a close handshake (close_timeout is an hour here).
    tag = uuid.uuid4().hex
    with anyio.fail_after(5), anyio.CancelScope() as outer:
        url = ws_server.url(f"/echo?tag={tag}")
        async with open_transport(url, close_timeout=3600) as transport:
            outer.cancel()
            await anyio.sleep_forever()  # cancelled at once
    assert outer.cancelled_caught
    with pytest.raises(TransportClosed):
        await transport.send_text("closed")
    assert await anyio.to_thread.run_sync(ws_server.close_code, tag) is None  # no close frame


async def test_oversized_frame_closes_with_1009(ws_server: WsServer) -> None:
    async with open_transport(ws_server.url("/echo"), max_message_size=1000) as transport:
        await transport.send_text("x" * 2000)
        with pytest.raises(TransportClosed) as info:
            await transport.receive_text()
    assert info.value.code == 1009


async def test_binary_frame_is_a_protocol_error_not_a_crash(ws_server: WsServer) -> None:
    async with open_transport(ws_server.url("/echo")) as transport:
        await transport.send_text("!binary")
        with pytest.raises(RemoteProtocolError, match="binary frame"):
            await transport.receive_text()
        await transport.send_text("text again")
        assert await transport.receive_text() == "text again"


async def test_block_exception_propagates_unwrapped(ws_server: WsServer) -> None:
    with pytest.raises(KeyError, match="mine"):
        async with open_transport(ws_server.url("/echo")):
            raise KeyError("mine")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:1234/llm", "scheme must be ws:// or wss://"),
        ("127.0.0.1:1234", "scheme must be ws:// or wss://"),
        ("ws:///llm", "names no host"),
        ("ws://127.0.0.1:99999/llm", "invalid websocket URL"),
    ],
)
async def test_bad_url_is_a_clear_error(url: str, expected: str) -> None:
    with pytest.raises(LMStudioConnectionError, match=expected):
        async with open_transport(url):
            pytest.fail("must not connect")


async def test_credentials_in_url_are_refused_without_echoing_them() -> None:
    with pytest.raises(LMStudioConnectionError) as info:
        async with open_transport("ws://user:s3cret-token@127.0.0.1:1234/llm"):
            pytest.fail("must not connect")
    assert "s3cret-token" not in str(info.value)
    assert "api_token" in str(info.value)


async def test_connect_lives_in_the_callers_task_group(ws_server: WsServer) -> None:
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            transport = await connect(ws_server.url("/echo"), task_group=tg)
            await transport.send_text(UNICODE)
            assert await transport.receive_text() == UNICODE
            await transport.aclose()
        # The task group could exit: aclose() released the task holding the connection.
        with pytest.raises(TransportClosed):
            await transport.receive_text()


async def test_connect_failure_goes_to_the_caller_not_the_group(refused_port: int) -> None:
    async with anyio.create_task_group() as tg:
        with pytest.raises(LMStudioConnectionError, match="connection refused"):
            await connect(f"ws://127.0.0.1:{refused_port}/llm", task_group=tg)
        assert not tg.cancel_scope.cancel_called


async def test_cancelling_the_owning_group_closes_the_transport(ws_server: WsServer) -> None:
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            transport = await connect(ws_server.url("/echo"), task_group=tg)
            tg.cancel_scope.cancel()
    with pytest.raises(TransportClosed):
        await transport.send_text("gone")


def test_describe_os_error_finds_the_real_cause() -> None:
    wrapped = OSError("All connection attempts failed")
    wrapped.__cause__ = socket.gaierror(-2, "Name or service not known")
    assert describe_os_error(wrapped) == "host not found (Name or service not known)"
    assert describe_os_error(OSError(113, "No route to host")) == "network error: no route to host"


def test_importing_transport_loads_no_websocket_library() -> None:
    code = (
        "import sys, lmstudio_sdk._async.transport, lmstudio_sdk._async._memory,"
        " lmstudio_sdk._async._http;"
        "print(sorted(m for m in ('trio', 'trio_websocket', 'websockets') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
