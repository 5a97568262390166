"""What the two websocket transports share: state, ``repr``, and the frame checks.

Each library-specific subclass supplies the raw send and receive, the exception its library
raises when the connection is gone, how to read a close code from it, and how to close.
"""

from __future__ import annotations

import abc
from typing import ClassVar, Generic, TypeVar

from ..errors import RemoteProtocolError
from .transport import TransportClosed, check_text

_Ws = TypeVar("_Ws")


class WebSocketTransport(abc.ABC, Generic[_Ws]):
    """A :class:`~lmstudio_sdk._async.transport.Transport` over one library's websocket."""

    #: The exception the library raises for I/O on a connection that has ended.
    _connection_closed: ClassVar[type[Exception]]
    #: Whether every ``receive_text()`` lets other tasks run, even when a frame is already
    #: waiting (trio-websocket's does; ``websockets`` returns a queued frame at once, so
    #: the socket's reader yields by itself: see ``_socket._Socket._read_forever``).
    receive_checkpoints: ClassVar[bool] = False

    def __init__(self, ws: _Ws, url: str, close_timeout: float) -> None:
        self._ws = ws
        self._url = url
        self._close_timeout = close_timeout
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} {self._url} {state}>"

    async def send_text(self, text: str) -> None:
        """Send one text frame; :class:`TransportClosed` once the connection is gone."""
        check_text(text)
        if self._closed:
            raise TransportClosed.closed_locally()
        try:
            await self._send(text)
        except self._connection_closed as exc:
            raise self._closed_error(exc) from None

    async def receive_text(self) -> str:
        """Wait for the next text frame; a binary frame is the server's protocol error."""
        if self._closed:
            raise TransportClosed.closed_locally()
        try:
            message = await self._receive()
        except self._connection_closed as exc:
            raise self._closed_error(exc) from None
        if isinstance(message, bytes):
            raise RemoteProtocolError(
                f"expected a text frame, the server sent a binary frame ({len(message)} bytes)"
            )
        return message

    async def aclose(self) -> None:
        """Close the connection (idempotent, bounded by ``close_timeout``)."""
        if self._closed:
            return
        self._closed = True
        await self._close()

    @abc.abstractmethod
    async def _close(self) -> None:
        """Close the library's connection, once."""

    @abc.abstractmethod
    async def _send(self, text: str) -> None: ...

    @abc.abstractmethod
    async def _receive(self) -> str | bytes: ...

    @abc.abstractmethod
    def _close_code(self, exc: Exception) -> tuple[int | None, str | None]:
        """The close code and reason the library reports on ``exc`` (``None`` if unknown)."""

    def _closed_error(self, exc: Exception) -> TransportClosed:
        if self._closed:
            return TransportClosed.closed_locally()
        return TransportClosed.from_close(*self._close_code(exc))
