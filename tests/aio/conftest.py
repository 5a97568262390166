"""Shared fixtures for the async-core tests: loopback peers for the transports.

``ws_server`` runs, in one background thread with its own asyncio loop, on 127.0.0.1:

* a ``websockets`` server: ``/echo`` echoes text frames and obeys commands (below);
  ``/echo?tag=<tag>`` also records the close code it received (``close_code(tag)``);
  ``/reject`` refuses the upgrade with HTTP 403, any other path gets HTTP 404;
* a raw TCP "misbehaving peer": ``/mute`` completes the websocket handshake and then
  ignores everything (it never answers a close frame), ``/silent`` never answers the
  handshake at all.

Echo commands (the conformance suite's in-memory echo peer obeys them too): ``!close <code> <reason>``
closes with that code and reason; ``!drop`` drops the TCP connection without a close frame;
``!binary`` sends one binary frame.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import socket
import threading
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


async def _echo(ws: ServerConnection) -> None:
    try:
        async for message in ws:
            if message == "!drop":
                ws.transport.abort()
                return
            if message == "!binary":
                await ws.send(b"\x00\x01binary")
            elif isinstance(message, str) and message.startswith("!close "):
                _, code, reason = message.split(" ", 2)
                await ws.close(int(code), reason)
                return
            else:
                await ws.send(message)
    except ConnectionClosed:
        pass  # the client went away without a close frame: recorded below as 1006


def _route(ws: ServerConnection, request: Request) -> Response | None:
    path = urlsplit(request.path).path
    if path == "/reject":
        return ws.respond(HTTPStatus.FORBIDDEN, "no websockets for you\n")
    if path != "/echo":
        return ws.respond(HTTPStatus.NOT_FOUND, "not found\n")
    return None


async def _misbehave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        path = head.split(b" ", 2)[1]
        if path == b"/mute":
            key = next(
                line.split(b":", 1)[1].strip()
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            accept = base64.b64encode(hashlib.sha1(key + _WS_GUID.encode()).digest())
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
        # Then ignore whatever comes, until the client goes away.
        while await reader.read(65536):
            pass
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


class WsServer:
    """The loopback servers described in the module docstring (see ``ws_server``)."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.ws_port = 0
        self.raw_port = 0
        self._thread = threading.Thread(target=self._run, name="ws-test-server", daemon=True)
        self._close_codes: dict[str, int | None] = {}
        self._closed = threading.Condition()

    def url(self, path: str) -> str:
        """A URL on the websockets server (``/echo``, ``/reject``...)."""
        return f"ws://127.0.0.1:{self.ws_port}{path}"

    def raw_url(self, path: str) -> str:
        """A URL on the misbehaving peer (``/mute`` or ``/silent``)."""
        return f"ws://127.0.0.1:{self.raw_port}{path}"

    def close_code(self, tag: str, timeout: float = 5.0) -> int | None:
        """Block until ``/echo?tag=<tag>`` has closed; return the close code the server got.

        ``None`` means the server got no close frame (an abrupt drop, 1006).
        """
        with self._closed:
            if not self._closed.wait_for(lambda: tag in self._close_codes, timeout):
                raise TimeoutError(f"the connection tagged {tag!r} did not close in {timeout} s")
            return self._close_codes[tag]

    async def _echo_and_record(self, ws: ServerConnection) -> None:
        await _echo(ws)
        await ws.wait_closed()
        tags = parse_qs(urlsplit(ws.request.path).query).get("tag") if ws.request else None
        if tags:
            rcvd = ws.protocol.close_rcvd
            with self._closed:
                self._close_codes[tags[0]] = rcvd.code if rcvd is not None else None
                self._closed.notify_all()

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the test websocket server did not start within 10 s")
        if self._error is not None:
            raise RuntimeError("the test websocket server failed to start") from self._error

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with serve(
            self._echo_and_record,
            "127.0.0.1",
            0,
            process_request=_route,
            compression=None,
            max_size=None,
        ) as ws_server:
            raw_server = await asyncio.start_server(_misbehave, "127.0.0.1", 0)
            async with raw_server:
                self.ws_port = _port(ws_server.sockets)
                self.raw_port = _port(raw_server.sockets)
                self._ready.set()
                await self._stop.wait()


def _port(sockets: Any) -> int:
    return int(next(iter(sockets)).getsockname()[1])


@pytest.fixture(scope="session")
def ws_server() -> Iterator[WsServer]:
    """Loopback websocket peers running in a background thread (stopped at teardown)."""
    server = WsServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nobody takes it), not listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
