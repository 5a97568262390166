"""An in-memory transport pair, for tests and for Trio's autojump clock.

Built on anyio memory object streams, so it needs no socket and works on every backend,
including Trio with ``MockClock(autojump_threshold=0)`` (which must never meet real I/O).

It behaves like a websocket: frames arrive in order; ``aclose(code, reason)`` on one side
lets the other side read what was already sent, then raises :class:`TransportClosed` with
that code and reason; :meth:`MemoryTransport.drop` simulates the network going away
(both sides get ``TransportClosed`` with code 1006 at once, frames in flight are lost).
"""

from __future__ import annotations

import contextlib
import math
from typing import Final

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .transport import ABNORMAL_CLOSURE, TransportClosed, check_text

__all__ = ["MemoryTransport", "memory_transport_pair"]


class _Wake:
    """Put into a side's own inbox to wake its blocked receiver when it is closed.

    (anyio only wakes a receiver blocked on a stream closed under it from 4.16 on.)
    """


_WAKE: Final = _Wake()


class _Link:
    """State shared by the two ends: who closed, how."""

    def __init__(self) -> None:
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.dropped = False

    def record_close(self, code: int, reason: str | None) -> None:
        if self.close_code is None:  # the first close wins, as in the websocket handshake
            self.close_code = code
            self.close_reason = reason

    def error(self) -> TransportClosed:
        if self.dropped:
            return TransportClosed.from_close(ABNORMAL_CLOSURE, None)
        return TransportClosed.from_close(self.close_code, self.close_reason)


class MemoryTransport:
    """One end of :func:`memory_transport_pair`."""

    def __init__(
        self,
        name: str,
        link: _Link,
        outbox: MemoryObjectSendStream[str | _Wake],
        inbox: MemoryObjectReceiveStream[str | _Wake],
    ) -> None:
        self._name = name
        self._link = link
        self._outbox = outbox
        self._inbox = inbox
        self._peer: MemoryTransport | None = None  # set by memory_transport_pair()
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<MemoryTransport {self._name} {state}>"

    async def send_text(self, text: str) -> None:
        check_text(text)
        if self._closed or self._link.dropped:
            raise self._error()
        try:
            await self._outbox.send(text)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise self._error() from None

    async def receive_text(self) -> str:
        if self._closed or self._link.dropped:
            raise self._error()
        try:
            item = await self._inbox.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            raise self._error() from None
        if isinstance(item, _Wake):
            raise self._error()
        return item

    async def aclose(self, code: int = 1000, reason: str | None = None) -> None:
        """Close this end; the peer reads what was sent, then gets ``code``/``reason``."""
        if not self._closed:
            self._link.record_close(code, reason)
            self._shut()
        await anyio.lowlevel.checkpoint()  # after closing: a cancelled aclose() still closes

    async def __aenter__(self) -> MemoryTransport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def drop(self) -> None:
        """Simulate an abrupt drop: both ends fail with code 1006, queued frames are lost."""
        self._link.dropped = True
        self._shut()
        assert self._peer is not None
        self._peer._shut()

    def _error(self) -> TransportClosed:
        if self._closed and not self._link.dropped:
            return TransportClosed.closed_locally()
        return self._link.error()  # a drop is a lost connection for both ends

    def _shut(self) -> None:
        self._closed = True
        self._outbox.close()  # the peer drains what is queued, then sees the end
        self._shut_inbox()

    def _shut_inbox(self) -> None:
        assert self._peer is not None
        # The peer's outbox feeds our inbox: this hands _WAKE to our blocked receiver. It
        # fails when nobody is blocked (frames are queued) or the peer's end is shut.
        with contextlib.suppress(
            anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError
        ):
            self._peer._outbox.send_nowait(_WAKE)
        self._inbox.close()  # the peer's sends now fail with BrokenResourceError


def memory_transport_pair(
    *, max_buffered: float = math.inf
) -> tuple[MemoryTransport, MemoryTransport]:
    """Two connected in-memory transports: what one sends, the other receives.

    ``max_buffered`` bounds the frames queued in each direction (a full queue makes
    ``send_text`` wait, like a socket whose peer does not read). The default never blocks.
    """
    link = _Link()
    a_to_b_send, a_to_b_receive = anyio.create_memory_object_stream[str | _Wake](max_buffered)
    b_to_a_send, b_to_a_receive = anyio.create_memory_object_stream[str | _Wake](max_buffered)
    a = MemoryTransport("a", link, a_to_b_send, b_to_a_receive)
    b = MemoryTransport("b", link, b_to_a_send, a_to_b_receive)
    a._peer, b._peer = b, a
    return a, b
