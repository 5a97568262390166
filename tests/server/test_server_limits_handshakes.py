"""An address whose handshakes keep failing before authentication costs the server nothing.

Each address has a budget of failed handshakes (a frame too big before authentication,
bad credentials, garbage instead of HTTP...); once it is spent, its new connections are
held: accepted, never read, dropped after the auth timeout. Sockets already open, and
other addresses, are not affected; the budget refills with time.
"""

from __future__ import annotations

import contextlib
import logging
import struct
from collections.abc import Callable

import anyio
import anyio.abc
import pytest
from _server_helpers import WAIT, connect

from lmstudio_sdk.protocol.endpoints import system
from lmstudio_sdk.protocol.events import AuthenticationFailed
from lmstudio_sdk.server import BackgroundServer, ServerLimits
from lmstudio_sdk.server._handshakes import HandshakeBudget

UPGRADE = (
    b"GET /llm HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
# The header of a 1 MB masked text frame: far over a 4 KiB pre-authentication bound.
BIG_FRAME_HEADER = bytes([0x81, 0x80 | 127]) + struct.pack("!Q", 2**20) + b"\x01\x02\x03\x04"
TOKEN = "sk-lm-Abcd1234:Zyxw9876Vuts5432Rqpo"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_budget_holds_the_next_connection_after_n_failures_and_refills() -> None:
    clock = FakeClock()
    limits = ServerLimits(failed_handshake_burst=3, failed_handshake_refill=0.5)
    budget = HandshakeBudget(limits, clock=clock)
    assert budget.failed("10.0.0.1") is None
    assert budget.failed("10.0.0.1") is None
    assert not budget.over_budget("10.0.0.1")  # 2 of 3 spent: still served
    line = budget.failed("10.0.0.1")
    assert line is not None
    assert "Holding new connections from 10.0.0.1" in line
    assert "limits.failed_handshake_burst" in line
    assert budget.over_budget("10.0.0.1")  # the connection after the 3rd failure is held
    assert budget.failed("10.0.0.1") is None  # said once per episode, not per failure
    # Other addresses are unaffected.
    assert not budget.over_budget("10.0.0.2")
    assert not budget.over_budget("127.0.0.1")
    # 0.5 per second: one failure's worth after 2 s (no refill while time stands still).
    clock.now += 1.9
    assert budget.over_budget("10.0.0.1")
    clock.now += 0.1
    assert not budget.over_budget("10.0.0.1")
    # One more failure spends it again, and the new episode is logged again.
    assert budget.failed("10.0.0.1") is not None
    assert budget.over_budget("10.0.0.1")
    # Refilled to the full burst (never beyond), however long the address was quiet.
    clock.now += 3600
    for _ in range(2):
        assert budget.failed("10.0.0.1") is None
    assert budget.failed("10.0.0.1") is not None


def test_held_connections_are_bounded_and_dropped_at_shutdown() -> None:
    budget = HandshakeBudget(ServerLimits(max_held_connections=2))
    dropped: list[int] = []
    drops = [lambda i=i: dropped.append(i) for i in range(3)]  # type: ignore[misc]
    assert budget.hold(drops[0])
    assert budget.hold(drops[1])
    assert not budget.hold(drops[2])  # no slot left: dropped at accept by the caller
    budget.release(drops[0])
    assert budget.held == 1
    budget.drop_held()
    assert dropped == [1]


async def _fail_with_a_big_frame(port: int, local_host: str) -> None:
    async with await anyio.connect_tcp("127.0.0.1", port, local_host=local_host) as stream:
        await stream.send(UPGRADE)
        received = await _read_until_closed(stream)
        assert received.startswith(b"HTTP/1.1 101"), received
        with contextlib.suppress(anyio.BrokenResourceError):
            await stream.send(BIG_FRAME_HEADER + b"x" * 2**16)
        # The server drops the TCP connection (perhaps after a close frame).
        with anyio.fail_after(WAIT):
            while True:
                try:
                    await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    break


async def _read_until_closed(stream: anyio.abc.SocketStream) -> bytes:
    """What the server sent: up to the end of an HTTP head, or until it closed."""
    received = b""
    with anyio.fail_after(WAIT):
        while b"\r\n\r\n" not in received:
            try:
                received += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                break
    return received


async def test_an_address_whose_handshakes_fail_is_held_and_others_are_served(
    server_factory: Callable[..., BackgroundServer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "lmstudio_sdk.server")
    server = server_factory(
        api_tokens=[TOKEN],
        require_auth=False,  # guests may connect; a wrong passkey is still a failure
        auth_timeout=1.0,
        limits=ServerLimits(
            max_auth_frame_bytes=4096, failed_handshake_burst=3, failed_handshake_refill=0.001
        ),
    )
    async with connect(server, "system") as good:
        # Three failures from 127.0.0.1, of three kinds: a big frame before authentication,
        # garbage instead of HTTP, and a token client with the wrong passkey.
        await _fail_with_a_big_frame(server.port, "127.0.0.1")
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            await stream.send(b"NOT HTTP AT ALL\r\n\r\n")
            assert not (await _read_until_closed(stream)).startswith(b"HTTP/1.1 101")
        wrong = ("Abcd1234", "Wrong9876Vuts5432Rqpo")
        async with connect(server, "llm", wrong, authenticate=False) as bad:
            await bad.send(bad.session.start())
            assert isinstance(
                await bad.wait_for(lambda e: isinstance(e, AuthenticationFailed)),
                AuthenticationFailed,
            )
        # The next connection from 127.0.0.1 is held: not one byte of HTTP comes back, and
        # the server drops it after its auth timeout.
        async with await anyio.connect_tcp("127.0.0.1", server.port) as held:
            await held.send(UPGRADE)
            assert await _read_until_closed(held) == b""
        assert server.refusals()["failed handshakes"] == 1
        assert any("Holding new connections from 127.0.0.1" in r.message for r in caplog.records)
        # The client that was already connected from 127.0.0.1 is served as before...
        assert (await good.result(system.VERSION)).version
        # ...and another address gets its websocket.
        async with await anyio.connect_tcp(
            "127.0.0.1", server.port, local_host="127.0.0.2"
        ) as other:
            await other.send(UPGRADE)
            assert (await _read_until_closed(other)).startswith(b"HTTP/1.1 101")


async def test_a_client_from_a_held_address_connects_once_the_budget_refills(
    server_factory: Callable[..., BackgroundServer],
) -> None:
    # Real time here (the refill itself is the clock-driven test above): 0.25 per second,
    # so the address is over budget for about 4 s after its third failure.
    server = server_factory(
        auth_timeout=1.0,
        limits=ServerLimits(
            max_auth_frame_bytes=4096, failed_handshake_burst=3, failed_handshake_refill=0.25
        ),
    )
    for _ in range(3):
        await _fail_with_a_big_frame(server.port, "127.0.0.1")
    # A well-behaved client from the same address: held (and dropped) at first, then it
    # gets in and is served once the budget has refilled; bounded, never locked out.
    with anyio.fail_after(3 * WAIT):
        while True:
            async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
                await stream.send(UPGRADE)
                if (await _read_until_closed(stream)).startswith(b"HTTP/1.1 101"):
                    break
    assert server.refusals()["failed handshakes"] >= 1
    async with connect(server, "system") as client:
        assert (await client.result(system.VERSION)).version


async def test_beyond_the_held_bound_connections_are_dropped_at_accept(
    server_factory: Callable[..., BackgroundServer],
) -> None:
    # A long auth timeout: the one held socket stays held for the whole test, so a socket
    # that is closed within WAIT was dropped at accept.
    server = server_factory(
        auth_timeout=120.0,
        limits=ServerLimits(
            max_auth_frame_bytes=4096,
            failed_handshake_burst=1,
            failed_handshake_refill=0.001,
            max_held_connections=1,
        ),
    )
    await _fail_with_a_big_frame(server.port, "127.0.0.1")
    async with await anyio.connect_tcp("127.0.0.1", server.port) as held:
        await held.send(UPGRADE)
        async with await anyio.connect_tcp("127.0.0.1", server.port) as dropped:
            await dropped.send(UPGRADE)
            assert await _read_until_closed(dropped) == b""
        assert server.refusals()["failed handshakes"] == 2
        # The server stops promptly with a socket held, and drops it.
        await anyio.to_thread.run_sync(server.stop)
        assert await _read_until_closed(held) == b""
