"""The websocket seam: one small ``Transport`` protocol, two real implementations.

Which implementation runs is decided by the async library in charge, found with
``sniffio.current_async_library()``:

* under Trio: trio-websocket (``_transport_trio.py``);
* under asyncio: the ``websockets`` asyncio client (``_transport_asyncio.py``).

Both are imported lazily, so importing this module loads neither trio, trio_websocket nor
websockets. ``_memory.py`` holds a third, in-memory implementation for tests.

Lifetime (structured concurrency). trio-websocket runs a reader task in a nursery, so a
transport cannot outlive the scope that opened it. The primary API is therefore an async
context manager::

    async with open_transport("ws://127.0.0.1:1234/llm") as transport:
        await transport.send_text(...)

A client whose connection must outlive the task that first needs it (one socket per
namespace, opened lazily on first use) passes its own task group to :func:`connect`: the
transport then lives in a task of that group until :meth:`Transport.aclose` is called or
the group is cancelled. This mirrors trio-websocket's ``open_websocket`` /
``connect_websocket(nursery, ...)`` pair.

Closing is bounded: ``aclose()`` tries the websocket close handshake for at most
``close_timeout`` seconds, then drops the TCP connection. When the closing task is already
cancelled (say the owning task group was), it drops the connection at once, without the
handshake: under Trio the reader task that would read the peer's answer is cancelled too,
and both backends behave the same.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Final, Protocol
from urllib.parse import urlsplit

import anyio
import sniffio

from ..errors import LMStudioConnectionError, LocalProtocolError

if TYPE_CHECKING:
    from anyio.abc import TaskGroup, TaskStatus

__all__ = [
    "DEFAULT_CLOSE_TIMEOUT",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "Transport",
    "TransportClosed",
    "connect",
    "open_transport",
]

DEFAULT_CONNECT_TIMEOUT: Final = 10.0
DEFAULT_MAX_MESSAGE_SIZE: Final = 64 * 2**20
DEFAULT_CLOSE_TIMEOUT: Final = 2.0

#: Close code for "the connection went away without a close frame" (RFC 6455, 7.1.5).
ABNORMAL_CLOSURE: Final = 1006


class Transport(Protocol):
    """A message-oriented, text-only, bidirectional connection (one websocket)."""

    async def send_text(self, text: str) -> None:
        """Send one text frame. Raises :class:`TransportClosed` once the connection is gone."""
        ...

    async def receive_text(self) -> str:
        """Wait for the next text frame. Raises :class:`TransportClosed` once it is gone.

        Cancelling a receive loses nothing: the transport stays usable.
        """
        ...

    async def aclose(self) -> None:
        """Close the connection. Idempotent and bounded in time."""
        ...


class TransportClosed(LMStudioConnectionError):
    """The connection is closed: by the peer, by us, or dropped.

    ``code`` and ``reason`` are the websocket close code and reason when known
    (1006 when the connection went away without a close frame).
    """

    def __init__(self, message: str, *, code: int | None = None, reason: str | None = None) -> None:
        self.code = code
        self.reason = reason
        super().__init__(message)

    @classmethod
    def from_close(cls, code: int | None, reason: str | None) -> TransportClosed:
        """Build the error for a close code/reason as reported by a websocket library."""
        if code is None or code == ABNORMAL_CLOSURE:
            return cls(
                "the connection was lost (closed without a close frame, code 1006)",
                code=ABNORMAL_CLOSURE,
                reason=reason or None,
            )
        detail = f"code {code}: {reason}" if reason else f"code {code}"
        return cls(f"the connection was closed ({detail})", code=code, reason=reason or None)

    @classmethod
    def closed_locally(cls) -> TransportClosed:
        """Build the error for I/O on a transport this side has already closed."""
        return cls("the connection was already closed by this side (aclose() was called)")


def check_text(text: object) -> str:
    """Make sure an outbound frame is a ``str`` (bytes would become a binary frame)."""
    if not isinstance(text, str):
        raise LocalProtocolError(
            f"send_text() takes a str (one JSON text frame), got {type(text).__name__}"
        )
    return text


def check_url(url: str) -> str:
    """Validate a websocket URL; raise :class:`LMStudioConnectionError` saying what is wrong."""
    if not isinstance(url, str):
        raise LMStudioConnectionError(f"the websocket URL must be a str, got {type(url).__name__}")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise LMStudioConnectionError(f"invalid websocket URL {url!r}: {exc}") from None
    if parts.scheme not in ("ws", "wss"):
        raise LMStudioConnectionError(
            f"invalid websocket URL {url!r}: the scheme must be ws:// or wss://"
        )
    if parts.username is not None or parts.password is not None:
        # Refused rather than masked: credentials in a URL end up in logs and errors.
        raise LMStudioConnectionError(
            "invalid websocket URL: user:password@ is not supported; pass api_token= instead"
        )
    if not parts.hostname:
        raise LMStudioConnectionError(f"invalid websocket URL {url!r}: it names no host")
    return url


NOT_RUNNING_HINT: Final = "Is LM Studio running? Start it (or `lmsdk serve`)"
"""What to check when no server answers, for discovery and an explicit host alike."""


def connect_failed(url: str, reason: str) -> LMStudioConnectionError:
    """The error for a failed connection attempt to ``url``; ``attempts`` holds the reason."""
    return LMStudioConnectionError(
        f"could not open a websocket. {NOT_RUNNING_HINT}, or check the address given",
        attempts=[(url, reason)],
    )


def describe_os_error(exc: BaseException) -> str:
    """A short, library-neutral reason for a failed TCP connection.

    Libraries wrap the real error (``OSError("All connection attempts failed")`` caused by a
    group of per-address errors), so this walks causes, contexts and groups.
    """
    found = _find_cause(exc)
    if isinstance(found, socket.gaierror):
        return f"host not found ({found.strerror or found})"
    if isinstance(found, ConnectionRefusedError) or (
        isinstance(found, OSError) and found.errno == errno.ECONNREFUSED
    ):
        return "connection refused"
    if isinstance(found, TimeoutError):
        return "timed out"
    # asyncio reports several failed addresses as one errno-less "Multiple exceptions" error.
    if f"[Errno {errno.ECONNREFUSED}]" in str(found):
        return "connection refused"
    if isinstance(found, OSError) and found.strerror:
        return f"network error: {found.strerror.lower()}"
    return f"network error: {found}"


def _find_cause(exc: BaseException) -> BaseException:
    """The most specific OS error in ``exc``'s chain (itself if none is more specific)."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    best: BaseException = exc
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, (socket.gaierror, ConnectionRefusedError, TimeoutError)):
            return current
        if isinstance(current, OSError) and current.errno is not None:
            best = current
        # Exception groups, found by duck typing (BaseExceptionGroup is 3.11+).
        members = getattr(current, "exceptions", None)
        if isinstance(members, tuple):
            stack.extend(m for m in members if isinstance(m, BaseException))
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                stack.append(linked)
    return best


def open_transport(
    url: str,
    *,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
) -> AbstractAsyncContextManager[Transport]:
    """Open a websocket to ``url`` for the duration of an ``async with`` block.

    Picks trio-websocket under Trio and ``websockets`` under asyncio. Connection failures
    (refused, unknown host, handshake rejected, timeout) raise
    :class:`~lmstudio_sdk.errors.LMStudioConnectionError` naming the reason. The transport
    is closed (boundedly) when the block exits.
    """
    check_url(url)
    if connect_timeout <= 0 or close_timeout < 0:
        raise ValueError("connect_timeout must be > 0 and close_timeout >= 0")
    if max_message_size <= 0:
        raise ValueError("max_message_size must be > 0")
    library = sniffio.current_async_library()
    opener: Callable[..., AbstractAsyncContextManager[Transport]]
    if library == "trio":
        from ._transport_trio import open_trio_transport as opener
    elif library == "asyncio":
        from ._transport_asyncio import open_asyncio_transport as opener
    else:
        raise RuntimeError(f"lmstudio-sdk runs under Trio or asyncio, not {library!r}")
    return opener(
        url,
        connect_timeout=connect_timeout,
        max_message_size=max_message_size,
        close_timeout=close_timeout,
    )


async def connect(
    url: str,
    *,
    task_group: TaskGroup,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
) -> Transport:
    """Open a websocket whose lifetime belongs to ``task_group``.

    The connection is held open by a task in ``task_group``; it ends when the returned
    transport's ``aclose()`` is called or when the group is cancelled. Connection failures
    are raised here, to the caller, not into the task group.
    """
    transport: Transport = await task_group.start(
        _hold_open, url, connect_timeout, max_message_size, close_timeout
    )
    return transport


class _GroupOwnedTransport:
    """Wraps a transport held open by a task in someone else's task group."""

    def __init__(self, inner: Transport) -> None:
        self._inner = inner
        self._released = anyio.Event()

    def __repr__(self) -> str:
        return f"<task-group-owned {self._inner!r}>"

    async def send_text(self, text: str) -> None:
        await self._inner.send_text(text)

    async def receive_text(self) -> str:
        return await self._inner.receive_text()

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._released.set()  # lets the holding task leave open_transport()

    async def wait_released(self) -> None:
        await self._released.wait()


async def _hold_open(
    url: str,
    connect_timeout: float,
    max_message_size: int,
    close_timeout: float,
    *,
    task_status: TaskStatus[Transport],
) -> None:
    async with open_transport(
        url,
        connect_timeout=connect_timeout,
        max_message_size=max_message_size,
        close_timeout=close_timeout,
    ) as inner:
        owned = _GroupOwnedTransport(inner)
        task_status.started(owned)
        await owned.wait_released()
