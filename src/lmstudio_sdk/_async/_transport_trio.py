"""The Trio transport, on trio-websocket. Imported only when Trio is running.

We open (and always close) the TCP stream ourselves and hand it to trio-websocket's
``wrap_client_stream`` inside a nursery we own, rather than using ``open_websocket``:
``open_websocket`` leaves the socket open (to the garbage collector) when the server
rejects the handshake or ends the connection. The price is unwrapping the nursery's
exception groups here, in :func:`_open_nursery`.

trio-websocket offers no compression extension in its handshake (so none is negotiated),
and sends no pings of its own; its reader task answers the server's pings.
"""

from __future__ import annotations

import math
import ssl
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

import trio
import trio_websocket

from ._exceptions import reraise
from ._websocket import WebSocketTransport
from .transport import connect_failed, describe_os_error

if sys.version_info >= (3, 11):
    _BaseExceptionGroup = BaseExceptionGroup  # noqa: F821 (a builtin from 3.11 on)
else:  # trio depends on the backport on Python 3.10
    from exceptiongroup import (  # type: ignore[import-not-found,unused-ignore]
        BaseExceptionGroup as _BaseExceptionGroup,
    )

#: Frames trio-websocket may buffer before its reader task waits for us (it then stops
#: reading the socket, which is the backpressure we want).
_MESSAGE_QUEUE_SIZE: Final = 16
#: Bytes per socket read; trio-websocket's 4 KiB default makes a 5 MB frame 1,300 reads.
_RECEIVE_BUFFER_SIZE: Final = 64 * 1024

if TYPE_CHECKING:
    from typing import TypeAlias

    _Stream: TypeAlias = "trio.SocketStream | trio.SSLStream[trio.SocketStream]"


class TrioWebsocketTransport(WebSocketTransport[trio_websocket.WebSocketConnection]):
    """A :class:`~lmstudio_sdk._async.transport.Transport` over trio-websocket."""

    _connection_closed = trio_websocket.ConnectionClosed
    receive_checkpoints = True  # get_message() is a trio memory channel receive

    def __init__(
        self,
        ws: trio_websocket.WebSocketConnection,
        stream: _Stream,
        url: str,
        close_timeout: float,
    ) -> None:
        super().__init__(ws, url, close_timeout)
        self._stream = stream

    async def _send(self, text: str) -> None:
        await self._ws.send_message(text)

    async def _receive(self) -> str | bytes:
        return await self._ws.get_message()

    async def _close(self) -> None:
        # The close handshake needs trio-websocket's reader task to read the peer's answer.
        # When we are cancelled, that task (in the same cancelled scope) is too: close
        # abruptly at once, as trio's AsyncResource convention says, instead of waiting
        # close_timeout for an answer nobody will read. Otherwise the handshake is
        # bounded, so a peer that never answers cannot hang us.
        if trio.current_effective_deadline() != -math.inf:
            with trio.move_on_after(self._close_timeout):
                await self._ws.aclose()
        # Always close the TCP stream (trio-websocket leaves it open when the connection
        # ended by itself: peer closed, dropped, or we skipped the handshake).
        await _close_stream(self._stream, self._close_timeout)

    def _close_code(self, exc: Exception) -> tuple[int | None, str | None]:
        assert isinstance(exc, trio_websocket.ConnectionClosed)
        if exc.reason is None:
            return None, None
        return exc.reason.code, exc.reason.reason


@asynccontextmanager
async def open_trio_transport(
    url: str, *, connect_timeout: float, max_message_size: int, close_timeout: float
) -> AsyncIterator[TrioWebsocketTransport]:
    """Open a trio-websocket connection for the duration of the block (owns its nursery)."""
    parts = urlsplit(url)  # already validated by transport.check_url()
    host = parts.hostname or ""
    use_tls = parts.scheme == "wss"
    port = parts.port or (443 if use_tls else 80)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    deadline = trio.current_time() + connect_timeout
    timed_out = f"timed out after {connect_timeout:g} s"

    try:
        with trio.fail_at(deadline):
            stream = await _open_stream(host, port, use_tls)
    except trio.TooSlowError:
        raise connect_failed(url, timed_out) from None
    except (OSError, trio.BrokenResourceError) as exc:
        raise connect_failed(url, describe_os_error(exc)) from exc

    try:
        async with _open_nursery() as nursery:
            try:
                with trio.fail_at(deadline):
                    ws = await trio_websocket.wrap_client_stream(
                        nursery,
                        stream,
                        parts.netloc,  # the Host header: host[:port], brackets kept for IPv6
                        resource,
                        message_queue_size=_MESSAGE_QUEUE_SIZE,
                        max_message_size=max_message_size,
                        receive_buffer_size=_RECEIVE_BUFFER_SIZE,
                    )
            except trio.TooSlowError:
                raise connect_failed(url, timed_out) from None
            transport = TrioWebsocketTransport(ws, stream, url, close_timeout)
            try:
                yield transport
            finally:
                await transport.aclose()
                nursery.cancel_scope.cancel()  # the reader task has ended; be sure of it
    except trio_websocket.ConnectionRejected as exc:  # raised by the reader task
        reason = f"HTTP {exc.status_code} during websocket handshake"
        raise connect_failed(url, reason) from exc
    finally:
        await _close_stream(stream, close_timeout)


async def _open_stream(host: str, port: int, use_tls: bool) -> _Stream:
    if not use_tls:
        return await trio.open_tcp_stream(host, port)
    tls = await trio.open_ssl_over_tcp_stream(
        host, port, ssl_context=ssl.create_default_context(), https_compatible=True
    )
    try:
        await tls.do_handshake()  # here, so a TLS failure is reported as one
    except BaseException:
        await trio.aclose_forcefully(tls)
        raise
    return tls


async def _close_stream(stream: _Stream, close_timeout: float) -> None:
    # aclose() closes the socket even when cancelled; the bound only limits TLS goodbyes.
    with trio.move_on_after(close_timeout) as scope:
        scope.shield = True
        with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.aclose()


@asynccontextmanager
async def _open_nursery() -> AsyncIterator[trio.Nursery]:
    """A nursery that re-raises a lone exception as itself, not as a one-member group.

    Callers of ``open_transport`` see their own exception (or Cancelled, or the reader
    task's ConnectionRejected) unchanged. Several real exceptions stay a group.
    """
    try:
        async with trio.open_nursery() as nursery:
            yield nursery
    except _BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            reraise(group.exceptions[0])
        raise
