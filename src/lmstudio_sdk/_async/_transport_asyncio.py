"""The asyncio transport, on the ``websockets`` asyncio client. Imported only under asyncio.

Uses only API present in websockets 16 (the last release for Python 3.10) and 17.
Per-message compression is off (it costs CPU and buys nothing on loopback), proxies from
the environment are ignored (LM Studio is local; trio-websocket has no proxy support
either), and websockets' keepalive pings keep their defaults (every 20 s, 20 s to answer).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidMessage,
    InvalidStatus,
    InvalidURI,
)

from ._websocket import WebSocketTransport
from .transport import connect_failed, describe_os_error

# What only the auth packet holds. websockets logs the start and the end of every frame at
# DEBUG level (``> TEXT '{"authVersion":1,...Qx7bN8cL"}'``): the end of the auth frame is
# the end of the passkey, so the whole line is replaced, whichever part of it survived.
_AUTH_PACKET = re.compile(r"clientPasskey|clientIdentifier|authVersion")
_REDACTED = "> TEXT <the authentication packet, not logged: it carries the passkey>"


class _RedactingLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The ``websockets.client`` logger, minus the content of the authentication frame."""

    def log(self, level: int, msg: object, *args: object, **kwargs: object) -> None:
        if not self.isEnabledFor(level):
            return
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            text = f"{msg} {args}"
        if _AUTH_PACKET.search(text):
            msg, args = "%s", (_REDACTED,)
        self.logger.log(level, msg, *args, **kwargs)


_CLIENT_LOGGER = _RedactingLogger(logging.getLogger("websockets.client"), {})


class WebsocketsTransport(WebSocketTransport[ClientConnection]):
    """A :class:`~lmstudio_sdk._async.transport.Transport` over ``websockets`` (asyncio)."""

    _connection_closed = ConnectionClosed

    async def _send(self, text: str) -> None:
        await self._ws.send(text)

    async def _receive(self) -> str | bytes:
        # Cancelling recv() is safe in websockets >= 13: no frame is lost.
        return await self._ws.recv()

    async def _close(self) -> None:
        try:
            # Same rule as the Trio transport: cancelled means close abruptly at once;
            # otherwise try the close handshake, bounded by close_timeout (close() can also
            # wait on a write buffer the peer never drains, hence our own scope).
            if anyio.current_effective_deadline() != -math.inf:
                with anyio.move_on_after(self._close_timeout):
                    await self._ws.close()
        finally:
            self._ws.transport.abort()  # no-op once closed; frees the socket in any case

    def _close_code(self, exc: Exception) -> tuple[int | None, str | None]:
        assert isinstance(exc, ConnectionClosed)
        if exc.rcvd is not None:
            return exc.rcvd.code, exc.rcvd.reason
        if exc.sent is not None:  # we closed first (e.g. 1009: message too big)
            return exc.sent.code, exc.sent.reason
        return None, None


@asynccontextmanager
async def open_asyncio_transport(
    url: str, *, connect_timeout: float, max_message_size: int, close_timeout: float
) -> AsyncIterator[WebsocketsTransport]:
    """Open a ``websockets`` client connection for the duration of the block."""
    try:
        ws = await ws_connect(
            url,
            compression=None,
            proxy=None,
            open_timeout=connect_timeout,
            close_timeout=close_timeout,
            max_size=max_message_size,
            logger=_CLIENT_LOGGER,
        )
    except InvalidStatus as exc:
        reason = f"HTTP {exc.response.status_code} during websocket handshake"
        raise connect_failed(url, reason) from exc
    except InvalidMessage as exc:
        reason = "the server did not answer the websocket handshake with valid HTTP"
        raise connect_failed(url, reason) from exc
    except InvalidURI as exc:
        raise connect_failed(url, f"invalid URL ({exc})") from exc
    except InvalidHandshake as exc:
        raise connect_failed(url, f"websocket handshake failed ({exc})") from exc
    except (TimeoutError, asyncio.TimeoutError) as exc:  # distinct classes on Python 3.10
        raise connect_failed(url, f"timed out after {connect_timeout:g} s") from exc
    except OSError as exc:
        raise connect_failed(url, describe_os_error(exc)) from exc
    transport = WebsocketsTransport(ws, url, close_timeout)
    try:
        yield transport
    finally:
        await transport.aclose()
