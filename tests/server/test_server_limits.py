"""A server that is safe to leave running: hostile or broken clients cost it little.

Before authentication a socket may only send a small frame; connections are bounded in
total and per address; browser pages are refused unless their origin is allowed; a socket
that stops reading is closed; and the other clients keep being served throughout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest
from _server_helpers import (
    LLM,
    WAIT,
    SocketClosed,
    chat,
    connect,
    get_or_load,
    open_socket,
    query,
    stack,
)

from lmstudio_sdk.protocol.endpoints import diagnostics, llm, system
from lmstudio_sdk.protocol.endpoints.diagnostics import ServerLog
from lmstudio_sdk.protocol.endpoints.llm import PredictCreationParameter
from lmstudio_sdk.protocol.events import ChannelClosed, RpcSucceeded
from lmstudio_sdk.server import BackgroundServer, Script, ServerLimits, scripted_model

UPGRADE = (
    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
)


async def _upgrade(
    server: BackgroundServer, path: str, extra: str = "", *, local_host: str | None = None
) -> tuple[int, str, Any]:
    """Send a websocket upgrade by hand: the status, the response, and the open stream."""
    stream = await anyio.connect_tcp("127.0.0.1", server.port, local_host=local_host)
    try:
        await stream.send(UPGRADE.format(path=path, extra=extra).encode())
        received = b""
        with anyio.fail_after(WAIT):
            while b"\r\n\r\n" not in received:
                received += await stream.receive()
            head, _, body = received.partition(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            if status != 101:  # the refusal's text body, up to its Content-Length
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                while len(body) < length:
                    body += await stream.receive()
    except BaseException:
        await stream.aclose()
        raise
    return status, (head + b"\r\n\r\n" + body).decode(), stream


async def test_a_big_frame_before_authentication_closes_only_that_socket(
    server_factory: Callable[..., BackgroundServer],
) -> None:
    server = server_factory(limits=ServerLimits(max_auth_frame_bytes=4096))
    async with connect(server, "system") as good:
        async with open_socket(f"{server.url}/llm") as hostile:
            with pytest.raises(SocketClosed) as closed, anyio.fail_after(WAIT):
                await _send_then_receive(hostile, "x" * 100_000)
            # 1009 (message too big), or 1006 when the dropped TCP connection's reset
            # overtook the close frame: the server does not read the rest of such a frame.
            assert closed.value.code in (1009, 1006)
        # The authenticated client sends frames far bigger than the pre-auth bound.
        reply = await good.call(system.NOTIFY, _notify("x" * 50_000))
        assert isinstance(reply, RpcSucceeded)
        assert (await good.result(system.VERSION)).version


async def _send_then_receive(socket: Any, text: str) -> None:
    await socket.send(text)  # may already see the close
    await socket.recv()


def _notify(title: str) -> Any:
    from lmstudio_sdk.protocol.endpoints.system import NotifyParameter

    return NotifyParameter(title=title)


async def test_connections_are_bounded_per_address_with_a_clear_reason(
    server_factory: Callable[..., BackgroundServer],
) -> None:
    # Loopback addresses have their own bound (every local process shares 127.0.0.1).
    server = server_factory(limits=ServerLimits(max_connections_per_loopback_address=3))
    streams = []
    try:
        for _ in range(3):
            status, _, stream = await _upgrade(server, "/llm")
            streams.append(stream)
            assert status == 101
        status, response, refused = await _upgrade(server, "/llm")
        await refused.aclose()
        assert status == 503
        assert "Too many connections from 127.0.0.1" in response
        assert "max_connections_per_loopback_address" in response
        assert server.refusals()["too many connections"] >= 1
    finally:
        for stream in streams:
            await stream.aclose()
    # Closed sockets are counted out again: a new one gets in (bounded retry: the server
    # sees the closes asynchronously).
    with anyio.fail_after(WAIT):
        while True:
            status, _, stream = await _upgrade(server, "/llm")
            await stream.aclose()
            if status == 101:
                break


async def test_the_per_address_bound_is_for_other_machines_not_this_one(
    server_factory: Callable[..., BackgroundServer],
) -> None:
    # The processes of a developer's machine all connect from 127.0.0.1: a bound meant for
    # one remote machine would have them lock each other out.
    server = server_factory(limits=ServerLimits(max_connections_per_address=2))
    streams = []
    try:
        for _ in range(4):
            status, _, stream = await _upgrade(server, "/llm")
            streams.append(stream)
            assert status == 101
    finally:
        for stream in streams:
            await stream.aclose()


async def test_the_total_number_of_connections_is_bounded(
    server_factory: Callable[..., BackgroundServer],
) -> None:
    server = server_factory(limits=ServerLimits(max_connections=2))
    async with connect(server, "system") as first, connect(server, "llm"):
        status, response, stream = await _upgrade(server, "/system")
        await stream.aclose()
        assert status == 503
        assert "max_connections" in response
        # Those already connected keep being served.
        assert (await first.result(system.VERSION)).version


async def test_browser_origins_are_refused_unless_allowed(
    server_factory: Callable[..., BackgroundServer],
) -> None:
    server = server_factory(allowed_origins=["http://localhost:3000/"])
    status, response, stream = await _upgrade(server, "/llm", "Origin: https://evil.example\r\n")
    await stream.aclose()
    assert status == 403
    assert "https://evil.example" in response
    assert "--allow-origin" in response
    status, _, stream = await _upgrade(server, "/llm", "Origin: http://localhost:3000\r\n")
    await stream.aclose()
    assert status == 101
    # No Origin header: a non-browser client, always allowed.
    status, _, stream = await _upgrade(server, "/llm")
    await stream.aclose()
    assert status == 101
    assert server.refusals() == {"origin not allowed": 1}


async def test_the_greeting_answers_any_origin(server: BackgroundServer) -> None:
    # It reveals nothing but "this is LM Studio", and the official clients probe it.
    status, response, stream = await _upgrade(server, "/lmstudio-greeting", "Origin: x\r\n")
    await stream.aclose()
    assert status == 200
    assert '{"lmstudio":true}' in response


FLOOD = "flood-llm"


async def test_a_socket_that_stops_reading_is_closed_and_the_reason_recorded(
    server_factory: Callable[..., BackgroundServer],
) -> None:
    # 2,000 fragments of 10 kB: far more than the socket buffers hold.
    flood = scripted_model(FLOOD, script=Script(fragments=("y" * 10_000,) * 2000))
    server = server_factory(
        models=[flood, scripted_model(LLM)],
        limits=ServerLimits(send_stall_timeout=0.5),
    )
    async with (
        connect(server, "diagnostics") as logs,
        connect(server, "llm") as reader,
        connect(server, "llm") as stalled,
    ):
        stream = await logs.open(diagnostics.STREAM_LOGS)
        await get_or_load(stalled, FLOOD)
        channel = await stalled.open(
            llm.PREDICT,
            PredictCreationParameter(
                model_specifier=query(FLOOD), history=chat("Go"), prediction_config_stack=stack()
            ),
        )
        await stalled.next_on(channel)  # the prediction runs
        # `stalled` reads nothing more; the server gives up on it within bounded time.
        # The server says so in its log stream (a server event every client sees).
        with anyio.fail_after(WAIT):
            while True:
                data = (await logs.next_on(stream)).log.data
                if isinstance(data, ServerLog) and "stopped reading" in data.content:
                    break
        assert data.level == "warn"
        assert server.refusals()["stopped reading"] == 1
        # Meanwhile and afterwards, another client is served normally.
        await get_or_load(reader, LLM)
        packets, end = await reader.until_end(
            await reader.open(
                llm.PREDICT,
                PredictCreationParameter(
                    model_specifier=query(LLM), history=chat("Hi"), prediction_config_stack=stack()
                ),
            )
        )
        assert isinstance(end, ChannelClosed)
        assert packets


async def test_a_huge_frame_after_authentication_is_parsed_without_stalling_others(
    server_factory: Callable[..., BackgroundServer],
) -> None:
    # A 20 MB frame is decoded in a worker thread; the other client's calls go on.
    server = server_factory(limits=ServerLimits(large_frame_bytes=2**16))
    async with connect(server, "system") as big, connect(server, "system") as other:
        call_id, frame = big.session.call(system.NOTIFY, _notify("z" * 20_000_000))
        await big.send(frame)
        assert (await other.result(system.VERSION)).version
        reply = await big.wait_for(lambda e: getattr(e, "call_id", None) == call_id)
        assert isinstance(reply, RpcSucceeded)
