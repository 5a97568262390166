"""One namespace of a client: a websocket driven by a sans-io ``ClientSession``.

Theory of operation
===================

A :class:`Connection` stands for one namespace (``/llm``, ``/system``...) of one client.
It opens its websocket lazily, on the first call or channel, and opens a new one on the
next use after the old one died. Each websocket is a ``_Socket``:

* it authenticates *before* it is handed out, so no call is ever sent ahead of the auth
  frame (the server would ignore it);
* ONE reader task, in the client's task group, feeds every inbound frame to the session
  and routes the events: a reply wakes the waiting call, a packet goes into its channel's
  bounded buffer (:mod:`.channel`). The reader never waits for a consumer, so one slow
  channel cannot stall the others or the replies;
* writes go through one lock, each one shielded and bounded (see ``_Socket.send_frame``).

Failures are scoped as tightly as the protocol allows:

* the socket dropped: every call and channel in flight on it fails with
  ``LMStudioConnectionError`` as soon as the reader sees it; the next use reconnects,
  after a backoff if the previous *attempt to connect* failed;
* a frame that breaks the envelope (``RemoteProtocolError`` from the session): nothing on
  that socket can be trusted any more, so everything on it fails with that error and the
  socket is dropped;
* a payload that does not fit its endpoint (``PayloadInvalid``): only that call or channel
  fails (the channel is also cancelled on the server);
* an unknown message type or a message for an id we no longer track: logged, skipped.

RPCs cannot be cancelled on the server, and an unknown endpoint gets only a
``communicationWarning``, never a reply: every call therefore has a timeout (the
client's default, 60 s), and a call that times out forgets its id so that a late reply is
dropped quietly. The timeout error repeats the server's last warning, if any, since it is
usually the reason.
"""

# Per-call ``timeout=`` is part of the API (DESIGN 4): it composes with anyio.fail_after.
# ruff: noqa: ASYNC109

from __future__ import annotations

import copy
import dataclasses
import logging
import math
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Final, Literal, overload

import anyio

from .._sentinel import DEFAULT, DefaultType
from ..errors import (
    LMStudioAuthError,
    LMStudioConnectionError,
    LMStudioTimeoutError,
    RemoteProtocolError,
)
from ..protocol._unset import UNSET, UnsetType
from ..protocol.endpoints._spec import ChannelSpec, P, R, RpcSpec
from ..protocol.events import Authenticated, AuthenticationFailed, ClientEvent
from ..protocol.merging import MergeRule
from ..protocol.session import ClientSession, endpoint_label
from ._exceptions import exceptions_unwrapped
from ._keepalive import KeepAliveSettings, run_keepalive
from ._socket import _PendingCall, _Socket
from .channel import Channel

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from ._discovery import Credentials
    from .transport import Transport

__all__ = [
    "DEFAULT",
    "DEFAULT_TIMEOUT",
    "Connection",
    "ConnectionSettings",
    "TransportFactory",
]

logger = logging.getLogger("lmstudio_sdk")

DEFAULT_TIMEOUT: Final = 60.0
#: Waits between failed attempts to connect: doubles from the first to the last value.
BACKOFF_FIRST: Final = 0.5
BACKOFF_MAX: Final = 10.0

TransportFactory = Callable[[str, "TaskGroup"], Awaitable["Transport"]]
"""``(url, task_group) -> transport``: opens a websocket owned by ``task_group``.

The default is :func:`lmstudio_sdk._async.transport.connect`; tests pass one that returns
an in-memory transport.
"""


@overload
def check_timeout(value: float | None, name: str) -> float | None: ...
@overload
def check_timeout(value: float | None, name: str, *, allow_none: Literal[False]) -> float: ...
def check_timeout(value: float | None, name: str, *, allow_none: bool = True) -> float | None:
    """Validate a timeout: a number > 0, or ``None`` (no limit) when ``allow_none``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        also = ", or None" if allow_none else ""
        raise ValueError(f"{name} must be a number of seconds > 0{also}; got {value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class ConnectionSettings:
    """What a client gives each of its connections: where the server is, who the client is,
    how to open a websocket, and the limits (see :class:`~.client.AsyncClient`)."""

    resolve_url: Callable[[], Awaitable[str]]
    credentials: Credentials
    transport_factory: TransportFactory
    timeout: float | None
    connect_timeout: float
    buffer_size: int
    drain_timeout: float
    keepalive: KeepAliveSettings | None


class Connection:
    """One namespace of a client: lazily (re)opens its websocket. See the module doc.

    Obtained from the client; not constructed by users.
    """

    def __init__(self, namespace: str, task_group: TaskGroup, settings: ConnectionSettings) -> None:
        self.namespace = namespace
        self._task_group = task_group
        self._settings = settings
        self._socket: _Socket | None = None
        self._connect_lock = anyio.Lock()
        self._closed = False
        self._failures = 0
        self._attempts = 0
        self._last_error: LMStudioConnectionError | None = None
        self._retry_at = -math.inf
        self.connects = 0  # sockets opened so far (for tests and diagnostics)

    def __repr__(self) -> str:
        return f"<Connection {self.namespace} {self._socket!r}>"

    @property
    def connected(self) -> bool:
        """Whether a websocket is open right now."""
        return self._socket is not None and self._socket.alive

    # ------------------------------------------------------------------ RPCs

    async def call(
        self,
        spec: RpcSpec[P, R],
        parameter: P | UnsetType = UNSET,
        *,
        timeout: float | DefaultType | None = DEFAULT,
    ) -> R:
        """Call an RPC and return its structured result (``None`` for void endpoints).

        :param timeout: seconds (``None``: no limit); the client's default when omitted.
            Connecting, if needed, counts. Composes with ``anyio.fail_after``.
        :raises LMStudioTimeoutError: no answer in time (a late answer is dropped).
        :raises LMStudioServerError: the server answered with an error.
        :raises LMStudioConnectionError: could not connect, or the socket dropped.
        """
        limit = (
            self._settings.timeout
            if isinstance(timeout, DefaultType)
            else check_timeout(timeout, "timeout")
        )
        socket_box: list[_Socket] = []
        warnings_before: list[int] = []
        with anyio.move_on_after(math.inf if limit is None else limit) as scope:
            result: R = await self._call(spec, parameter, socket_box, warnings_before)
            return result
        assert scope.cancelled_caught
        message = f"{endpoint_label(spec)}: no answer from the server within {limit:g} s"
        if socket_box and warnings_before and socket_box[0].warnings > warnings_before[0]:
            message += f" (the server warned: {socket_box[0].last_warning})"
        elif not socket_box:
            message += " (still connecting)"
        raise LMStudioTimeoutError(message)

    async def _call(
        self,
        spec: RpcSpec,
        parameter: Any,
        socket_box: list[_Socket],
        warnings_before: list[int],
    ) -> Any:
        sock = await self._get_socket()
        socket_box.append(sock)
        warnings_before.append(sock.warnings)
        call_id, frame = sock.session.call(spec, parameter)
        pending = _PendingCall(spec)
        sock.calls[call_id] = pending
        try:
            await sock.send_frame(frame)
            await pending.done.wait()
        finally:
            if not pending.done.is_set():
                sock.calls.pop(call_id, None)
                if sock.alive:
                    sock.session.forget_call(call_id)
        if pending.error is not None:
            raise pending.error
        return pending.result

    # ------------------------------------------------------------------ channels

    def open_channel(
        self,
        spec: ChannelSpec,
        creation_parameter: Any = UNSET,
        *,
        idle_timeout: float | DefaultType | None = DEFAULT,
        merge: MergeRule | None = None,
        buffer_size: int | None = None,
        drain_timeout: float | DefaultType = DEFAULT,
    ) -> AbstractAsyncContextManager[Channel[Any]]:
        """Open a channel for the duration of an ``async with`` block (see :mod:`.channel`).

        :param idle_timeout: seconds without a packet before the channel fails with
            ``LMStudioTimeoutError`` (``None``: wait forever); when omitted, the endpoint's
            own (``ChannelSpec.idle_timeout``) or else the client's default. Never a limit on
            the total duration.
        :param merge: the backpressure merge rule; the endpoint's own by default.
        :param buffer_size: packets buffered before merging; the client's default if omitted.
        :param drain_timeout: the longest wait, when the block is left early, for the server
            to end the channel after the cancel; the client's default when omitted.
        """
        if not isinstance(idle_timeout, DefaultType):
            idle = check_timeout(idle_timeout, "idle_timeout")
        elif spec.idle_timeout is UNSET:
            idle = self._settings.timeout
        else:
            idle = spec.idle_timeout
        drain = (
            self._settings.drain_timeout
            if isinstance(drain_timeout, DefaultType)
            else check_timeout(drain_timeout, "drain_timeout", allow_none=False)
        )
        return _ChannelScope(
            self,
            spec,
            creation_parameter,
            idle,
            merge,
            buffer_size or self._settings.buffer_size,
            drain,
        )

    # ------------------------------------------------------------------ connecting

    async def _get_socket(self) -> _Socket:
        sock = self._socket
        if sock is not None and sock.alive:
            return sock
        attempts_seen = self._attempts
        async with self._connect_lock:
            sock = self._socket
            if sock is not None and sock.alive:
                return sock
            if self._closed:
                raise LMStudioConnectionError(
                    "the client is closed; use it inside `async with AsyncClient(...) as client:`"
                )
            if self._attempts != attempts_seen and self._last_error is not None:
                # An attempt failed while we queued for the lock: share its outcome
                # rather than each caller waiting a longer backoff in turn.
                raise _fresh(self._last_error)
            delay = self._retry_at - anyio.current_time()
            if delay > 0:
                logger.debug("%s: waiting %.2f s before reconnecting", self.namespace, delay)
                await anyio.sleep(delay)
            self._attempts += 1
            try:
                with exceptions_unwrapped():
                    sock = await self._open_socket()
            except LMStudioConnectionError as exc:
                self._last_error = exc
                self._failures += 1
                backoff = min(BACKOFF_FIRST * 2 ** (self._failures - 1), BACKOFF_MAX)
                self._retry_at = anyio.current_time() + backoff
                raise
            except BaseException:
                self._last_error = None  # cancelled: the next caller tries for itself
                raise
            self._last_error = None
            self._failures = 0
            self._retry_at = -math.inf
            self._socket = sock
            self.connects += 1
            return sock

    async def _open_socket(self) -> _Socket:
        url = f"{await self._settings.resolve_url()}/{self.namespace}"
        creds = self._settings.credentials
        session = ClientSession(
            creds.client_identifier, creds.client_passkey, namespace=self.namespace
        )
        transport = await self._settings.transport_factory(url, self._task_group)
        try:
            reply: list[ClientEvent] = []
            with anyio.move_on_after(self._settings.connect_timeout):
                await transport.send_text(session.start())
                reply = session.receive_text(await transport.receive_text())
        except LMStudioConnectionError as exc:
            await transport.aclose()
            raise LMStudioConnectionError(
                "the server closed the connection during authentication",
                attempts=[(url, str(exc))],
            ) from exc
        except RemoteProtocolError as exc:
            await transport.aclose()
            raise LMStudioConnectionError(
                "the server did not answer like LM Studio",
                attempts=[(url, f"not LM Studio: bad authentication reply ({exc})")],
            ) from exc
        except BaseException:
            with anyio.CancelScope(shield=True):
                await transport.aclose()
            raise
        if not reply:
            await transport.aclose()
            raise LMStudioConnectionError(
                "the server did not answer the authentication",
                attempts=[
                    (url, f"no authentication reply within {self._settings.connect_timeout:g} s")
                ],
            )
        event = reply[0]
        if isinstance(event, AuthenticationFailed):
            await transport.aclose()
            raise LMStudioAuthError(
                "LM Studio rejected the client's credentials; check the API token "
                "(api_token=, LM_API_TOKEN or LMSTUDIO_API_TOKEN)",
                attempts=[(url, f"authentication rejected: {event.error}")],
            )
        assert isinstance(event, Authenticated)
        sock = _Socket(self.namespace, url, transport, session, self._task_group)
        self._task_group.start_soon(sock.run_reader, name=f"lmstudio_sdk reader {url}")
        if self._settings.keepalive is not None:
            self._task_group.start_soon(
                run_keepalive, sock, self._settings.keepalive, name=f"lmstudio_sdk keepalive {url}"
            )
        logger.debug("connected to %s", url)
        return sock

    async def aclose(self) -> None:
        """Close the websocket (if open); everything in flight fails. Idempotent."""
        self._closed = True
        sock, self._socket = self._socket, None
        if sock is not None:
            await sock.close()


def _fresh(error: LMStudioConnectionError) -> LMStudioConnectionError:
    """A copy of ``error`` to raise in another task (tracebacks are per raise)."""
    try:
        return copy.copy(error)
    except Exception:
        return error


@dataclasses.dataclass(eq=False, repr=False)
class _ChannelScope(AbstractAsyncContextManager[Channel[Any]]):
    """``async with connection.open_channel(...)``: opens, then cancels and drains on exit."""

    connection: Connection
    spec: ChannelSpec
    creation_parameter: Any
    idle_timeout: float | None
    merge: MergeRule | None
    buffer_size: int
    drain_timeout: float
    _channel: Channel[Any] | None = dataclasses.field(default=None, init=False)

    async def __aenter__(self) -> Channel[Any]:
        if self._channel is not None:
            raise RuntimeError("a channel scope can be entered only once")
        connection = self.connection
        limit = connection._settings.timeout
        with anyio.move_on_after(math.inf if limit is None else limit) as scope:
            sock = await connection._get_socket()
        if scope.cancelled_caught:
            raise LMStudioTimeoutError(
                f"{endpoint_label(self.spec)}: could not connect within {limit:g} s"
            )
        channel_id, frame = sock.session.open_channel(self.spec, self.creation_parameter)
        channel: Channel[Any] = Channel(
            self.spec,
            channel_id,
            sock,
            buffer_size=self.buffer_size,
            idle_timeout=self.idle_timeout,
            merge=self.merge,
        )
        sock.channels[channel_id] = channel
        self._channel = channel
        try:
            # Why before_write: a create that was never written (the scope was already
            # cancelled, or cancelled while queued for the write lock) needs neither a
            # cancel nor a drain on the way out (the server would answer channelUnknown).
            await sock.send_frame(frame, before_write=channel._create_sent)
        except BaseException:
            await channel._leave(self.drain_timeout)
            raise
        return channel

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._channel is not None
        await self._channel._leave(self.drain_timeout)
