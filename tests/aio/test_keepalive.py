"""Dead peers are noticed: keepAlive probes on idle sockets.

Where the timing is the point, the fake server runs over the in-memory transport on Trio's
autojump clock. Over real sockets (asyncio and Trio), a loopback TCP proxy between the
client and the real server starts to blackhole: the TCP connection stays open and nothing
more comes back, which is what a sleeping laptop or a dropped NAT entry looks like.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest
from _fake_server import FakeServer, ServerChannel, backend, connected, fragment, predict_parameter

from lmstudio_sdk import AsyncClient, LMStudioConnectionError
from lmstudio_sdk.protocol.endpoints import llm, system
from lmstudio_sdk.server import BackgroundServer, ServerOptions, scripted_model

WAIT = 10.0


async def version(_: Any) -> system.VersionResult:
    return system.VersionResult("0.3.30", 1)


async def empty(_: Any) -> list[Any]:
    return []


def scripted() -> FakeServer:
    server = FakeServer()
    server.rpc["system.version"] = version
    server.rpc["llm.listLoaded"] = empty

    async def steady(ch: ServerChannel) -> None:
        for _ in range(30):  # one fragment a second for 30 s, then done
            await anyio.sleep(1)
            await ch.send(fragment("tick "))

    server.channels["llm.predict"] = steady
    return server


def _keepalives(server: FakeServer, namespace: str) -> int:
    return sum(json.loads(f).get("type") == "keepAlive" for f in server.frames_in[namespace])


async def _stream(conn: Any) -> int:
    count = 0
    async with conn.open_channel(llm.PREDICT, predict_parameter()) as channel:
        async for _ in channel:
            count += 1
    return count


class TestOnTheAutojumpClock:
    @pytest.fixture
    def anyio_backend(self) -> tuple[str, dict[str, object]]:
        return backend("autojump")

    async def test_a_frozen_server_fails_work_in_flight_within_interval_plus_timeout(
        self,
    ) -> None:
        server = scripted()
        async with connected(server, keepalive_interval=5, keepalive_timeout=3) as client:
            conn = client.llm._connection()
            assert await conn.call(llm.LIST_LOADED) == []
            server.frozen = True
            start = anyio.current_time()
            with pytest.raises(LMStudioConnectionError) as caught:
                await conn.call(llm.LIST_LOADED, timeout=None)  # would wait forever
            elapsed = anyio.current_time() - start
            # The probe goes out 5 s after the last frame; 3 s of silence later, dead.
            assert 7.9 <= elapsed <= 8.1
            assert "did not answer a keepAlive within 3 s" in str(caught.value)
            assert _keepalives(server, "llm") == 1
            # The server comes back: the next call reconnects.
            server.frozen = False
            assert await conn.call(llm.LIST_LOADED) == []
            assert server.connects["llm"] == 2

    async def test_a_healthy_idle_socket_is_probed_and_kept(self) -> None:
        server = scripted()
        async with connected(server, keepalive_interval=5, keepalive_timeout=3) as client:
            assert (await client.system.version()).build == 1
            await anyio.sleep(60)
            assert _keepalives(server, "system") >= 10
            assert (await client.system.version()).build == 1
        assert server.connects["system"] == 1

    async def test_a_busy_socket_is_never_probed(self) -> None:
        server = scripted()
        async with connected(server, keepalive_interval=5, keepalive_timeout=3) as client:
            assert await _stream(client.llm._connection()) == 30
        assert _keepalives(server, "llm") == 0

    async def test_keepalive_can_be_turned_off(self) -> None:
        server = scripted()
        async with connected(server, keepalive_interval=None) as client:
            assert (await client.system.version()).build == 1
            await anyio.sleep(300)
        assert _keepalives(server, "system") == 0


def test_bad_keepalive_settings_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="keepalive_interval and keepalive_timeout"):
        AsyncClient("ws://127.0.0.1:1", keepalive_interval=0)
    with pytest.raises(ValueError, match="keepalive_interval=None turns keepalive off"):
        AsyncClient("ws://127.0.0.1:1", keepalive_timeout=-1)


# --- over real sockets, through a proxy that starts to blackhole ------------------------------


class BlackholeProxy:
    """A loopback TCP proxy; once ``blackhole`` is set, nothing more is forwarded."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.blackhole = False
        self.port = 0

    async def _pump(self, source: anyio.abc.ByteStream, sink: anyio.abc.ByteStream) -> None:
        try:
            async for data in source:
                if not self.blackhole:
                    await sink.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    async def _handle(self, client: anyio.abc.SocketStream) -> None:
        upstream = await anyio.connect_tcp("127.0.0.1", self.target_port)
        async with client, upstream, anyio.create_task_group() as tg:
            tg.start_soon(self._pump, client, upstream)
            await self._pump(upstream, client)
            tg.cancel_scope.cancel()


@asynccontextmanager
async def proxy_to(server: BackgroundServer) -> AsyncIterator[BlackholeProxy]:
    proxy = BlackholeProxy(server.port)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    proxy.port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, proxy._handle)
        try:
            yield proxy
        finally:
            tg.cancel_scope.cancel()


@pytest.fixture
def server() -> Iterator[BackgroundServer]:
    options = ServerOptions(port=0, models=(scripted_model("scripted-llm"),))
    with BackgroundServer(options) as running:
        yield running


async def test_a_blackholed_connection_is_declared_dead_then_reconnected(
    server: BackgroundServer,
) -> None:
    async with (
        proxy_to(server) as proxy,
        AsyncClient(
            f"ws://127.0.0.1:{proxy.port}", keepalive_interval=0.3, keepalive_timeout=0.5
        ) as client,
    ):
        assert await client.llm.list_loaded() == []
        proxy.blackhole = True
        with anyio.fail_after(WAIT), pytest.raises(LMStudioConnectionError) as caught:
            await client.llm.list_loaded(timeout=None)  # would wait forever
        assert "did not answer a keepAlive" in str(caught.value)
        proxy.blackhole = False
        with anyio.fail_after(WAIT):
            assert await client.llm.list_loaded() == []
