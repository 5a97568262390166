"""One authenticated websocket of a namespace, and its reader task.

A ``_Socket`` is what a :class:`~.connection.Connection` hands its calls and channels
(see the theory of operation in :mod:`.connection`):

* ONE reader task, in the client's task group, feeds every inbound frame to the sans-io
  ``ClientSession`` and routes the events: a reply wakes the waiting call, a packet goes
  into its channel's bounded buffer (:mod:`.channel`). The reader never waits for a
  consumer, so one slow channel cannot stall the others or the replies;
* yet it lets consumers run: when frames are already waiting, the ``websockets``
  transport returns them without a checkpoint, so a reader that never yielded would fill
  a stream's buffer (and merge its packets) before its consumer ran once. It yields every
  :data:`FAIR_EVERY` frames (far below any buffer's bound; transports whose receive
  always yields, trio-websocket's, need not). A consumer that keeps up then gets every
  packet as it was sent, a few at a time; only one that is really slower than the socket
  sees merged packets. (Yielding after every frame a consumer waits for costs a loop
  turn per frame, ~2x the client's CPU per fragment, for no fewer merges.)
* writes go through one lock, each one shielded and bounded (see ``_Socket.send_frame``);
* the socket dropped, or a frame broke the envelope: everything in flight on it fails
  (each with its own exception object) and the socket is closed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import anyio

from ..errors import LMStudioConnectionError, LMStudioError, RemoteProtocolError
from ..protocol import events
from ..protocol.endpoints._spec import RpcSpec
from ..protocol.session import ClientSession, endpoint_label
from ._waiting import backend_checkpoint, backend_clock

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from .channel import Channel
    from .transport import Transport

__all__ = ["FAIR_EVERY", "WRITE_TIMEOUT"]

logger = logging.getLogger("lmstudio_sdk")

#: A write that takes longer than this means the server stopped reading: the socket is dropped.
WRITE_TIMEOUT: Final = 10.0
#: With frames waiting, the reader lets other tasks run at least every this many frames.
FAIR_EVERY: Final = 16


def _chained(
    kind: type[LMStudioError], message: str, cause: BaseException
) -> Callable[[], LMStudioError]:
    """Makes a new ``kind(message)`` caused by ``cause`` per call: each waiter gets its own."""

    def make() -> LMStudioError:
        error = kind(message)
        error.__cause__ = cause
        return error

    return make


class _PendingCall:
    __slots__ = ("done", "error", "result", "spec")

    def __init__(self, spec: RpcSpec) -> None:
        self.spec = spec
        self.done = anyio.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def succeed(self, result: Any) -> None:
        self.result = result
        self.done.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.done.set()


class _Socket:
    """One authenticated websocket of a namespace, and its reader task."""

    def __init__(
        self,
        namespace: str,
        url: str,
        transport: Transport,
        session: ClientSession,
        task_group: TaskGroup,
    ) -> None:
        self.namespace = namespace
        self.url = url
        self.transport = transport
        self.session = session
        self._task_group = task_group
        self._write_lock = anyio.Lock()
        self._reader_scope = anyio.CancelScope()
        self.calls: dict[int, _PendingCall] = {}
        self.channels: dict[int, Channel[Any]] = {}
        self.alive = True
        self._death: Callable[[], LMStudioError] | None = None
        self.warnings = 0
        self.last_warning: str | None = None
        # For keepalive (see _keepalive.py): when the last frame arrived, and its task's scope.
        self.last_received = anyio.current_time()
        self.keepalive_scope = anyio.CancelScope()

    def __repr__(self) -> str:
        state = "open" if self.alive else "dead"
        return (
            f"<socket {self.url} {state}, {len(self.calls)} calls, {len(self.channels)} channels>"
        )

    # ------------------------------------------------------------------ writing

    async def send_frame(
        self, frame: str, *, before_write: Callable[[], None] | None = None
    ) -> None:
        """Send one frame, serialised with every other write on this socket.

        ``before_write`` is called once the write can no longer be cancelled, just before
        the frame goes out: when it was not called, the frame was not sent.
        """
        self._raise_if_dead()
        async with self._write_lock:
            self._raise_if_dead()
            # Shielded: a websocket write cancelled halfway leaves part of a frame on the
            # wire (trio's send_all cannot be resumed), which would corrupt every other call
            # and channel on this socket. Bounded: a server that stops reading for
            # WRITE_TIMEOUT seconds is treated as gone, so a shielded write never hangs.
            with anyio.move_on_after(WRITE_TIMEOUT, shield=True) as scope:
                if before_write is not None:
                    before_write()
                try:
                    await self.transport.send_text(frame)
                except LMStudioConnectionError as exc:
                    await self._die(self._lost_error(exc))
                    self._raise_if_dead()
            if scope.cancelled_caught:
                reason = f"the server did not read a frame for {WRITE_TIMEOUT:g} s"
                await self._die(lambda: LMStudioConnectionError(f"{self._where()}: {reason}"))
                self._raise_if_dead()

    def _raise_if_dead(self) -> None:
        if self._death is not None:
            raise self._death()

    async def send_channel_packet(self, channel_id: int, packet: Any) -> None:
        self._raise_if_dead()
        await self.send_frame(self.session.send_packet(channel_id, packet))

    async def send_cancel(self, channel_id: int) -> bool:
        channel = self.channels.get(channel_id)
        if channel is not None and channel._spec.cancel_packet is None:
            return False
        if not self.alive:
            return True  # the drop already ended the channel on the server
        frame = self.session.cancel_channel(channel_id)
        if frame is not None:
            await self.send_frame(frame)
        return True

    def schedule_cancel(self, channel_id: int) -> None:
        self._task_group.start_soon(self._cancel_in_background, channel_id)

    async def _cancel_in_background(self, channel_id: int) -> None:
        try:
            await self.send_cancel(channel_id)
        except LMStudioError as exc:  # the socket died: that fails the channel anyway
            logger.debug("could not cancel channel %d: %s", channel_id, exc)

    def release_channel(self, channel_id: int, *, listening: bool) -> None:
        self.channels.pop(channel_id, None)
        if listening and self.alive:
            self.session.forget_channel(channel_id)

    def withdraw_channel(self, channel_id: int) -> None:
        self.channels.pop(channel_id, None)
        if self.alive:
            self.session.withdraw_channel(channel_id)

    # ------------------------------------------------------------------ reading

    async def run_reader(self) -> None:
        """Route inbound frames until the socket dies or is closed."""
        with self._reader_scope:
            try:
                await self._read_forever()
            except anyio.get_cancelled_exc_class():
                # The client is closing (its task group was cancelled).
                self._fail_everything(
                    lambda: LMStudioConnectionError(f"{self._where()}: the client was closed")
                )
                raise
            except Exception as exc:  # a bug of ours: fail loudly, but only this socket
                logger.exception("%s: the reader failed", self._where())
                message = f"{self._where()}: internal error in the reader: {exc!r}"
                await self._die(lambda: LMStudioConnectionError(message))

    async def _read_forever(self) -> None:
        # See the module doc ("yet it lets consumers run"); None: the transport yields.
        checkpoint = (
            None if getattr(self.transport, "receive_checkpoints", False) else backend_checkpoint()
        )
        # anyio.current_time() looks the backend up on every call (sniffio): per frame, that
        # was 15 % of the asyncio client's time. The backend's own clock is the same clock.
        clock = backend_clock()
        unfair = 0  # frames routed since the reader last let other tasks run
        while True:
            try:
                text = await self.transport.receive_text()
            except LMStudioConnectionError as exc:
                await self._die(self._lost_error(exc))
                return
            except RemoteProtocolError as exc:  # a binary frame
                await self._die(self._broken_error(exc))
                return
            if not self.alive:
                # Failed meanwhile by a writer or the keepalive (the session is closed); the
                # frame that was already on its way is of no use to anyone.
                return
            self.last_received = clock()
            try:
                received = self.session.receive_text(text)
            except RemoteProtocolError as exc:
                await self._die(self._broken_error(exc))
                return
            for event in received:
                self._route(event)
            if checkpoint is not None:
                unfair += 1
                if unfair >= FAIR_EVERY:
                    unfair = 0
                    await checkpoint()

    def _route(self, event: events.ClientEvent) -> None:
        if isinstance(event, events.ChannelPacketReceived):
            channel = self.channels.get(event.channel_id)
            if channel is not None:
                channel._feed(event.packet)
        elif isinstance(event, events.RpcSucceeded):
            call = self.calls.pop(event.call_id, None)
            if call is not None:
                call.succeed(event.result)
        elif isinstance(event, events.RpcFailed):
            call = self.calls.pop(event.call_id, None)
            if call is not None:
                call.fail(event.error.to_exception(endpoint_label(call.spec)))
        elif isinstance(event, events.ChannelClosed):
            channel = self.channels.get(event.channel_id)
            if channel is not None:
                channel._close_from_server()
        elif isinstance(event, events.ChannelFailed):
            channel = self.channels.get(event.channel_id)
            if channel is not None:
                channel._fail_from_server(event.error.to_exception(channel.endpoint))
        elif isinstance(event, events.PayloadInvalid):
            self._route_payload_invalid(event)
        elif isinstance(event, events.WarningReceived):
            self.warnings += 1
            self.last_warning = event.warning
            # A late cancel that crossed the server's channelClose is expected noise.
            level = logging.DEBUG if event.kind == "channelUnknown" else logging.WARNING
            logger.log(
                level, "%s: the server warned (%s): %s", self._where(), event.kind, event.warning
            )
        elif isinstance(event, events.UnknownMessageReceived):
            logger.warning(
                "%s: skipping a message of unknown type %r (a newer server?)",
                self._where(),
                event.type,
            )
        elif isinstance(event, events.StrayMessageReceived):
            logger.debug("%s: stray message: %s", self._where(), event.reason)
        elif isinstance(event, events.KeepAliveAcknowledged):
            pass
        else:  # Authenticated/AuthenticationFailed cannot happen once open
            logger.warning("%s: unexpected event %r", self._where(), event)

    def _route_payload_invalid(self, event: events.PayloadInvalid) -> None:
        if event.call_id is not None:
            call = self.calls.pop(event.call_id, None)
            if call is not None:
                call.fail(event.error)
        elif event.channel_id is not None:
            channel = self.channels.get(event.channel_id)
            if channel is not None:
                # The session abandoned the channel: its later packets and its end are
                # dropped. Cancel it so the server stops too.
                channel._fail_locally(event.error, cancel=False)
                self.schedule_cancel(event.channel_id)

    # ------------------------------------------------------------------ dying

    def _where(self) -> str:
        return f"{self.namespace} connection to {self.url}"

    def _lost_error(self, exc: BaseException) -> Callable[[], LMStudioError]:
        return _chained(LMStudioConnectionError, f"lost the {self._where()}: {exc}", exc)

    def _broken_error(self, exc: RemoteProtocolError) -> Callable[[], LMStudioError]:
        return _chained(
            RemoteProtocolError, f"{self._where()}: {exc} (the connection was dropped)", exc
        )

    def _fail_everything(self, make_error: Callable[[], LMStudioError]) -> None:
        """Fail every call and channel in flight, each with its own exception object."""
        if self._death is None:
            self._death = make_error
        self.alive = False
        self.session.connection_lost()
        calls, self.calls = self.calls, {}
        for call in calls.values():
            call.fail(make_error())
        for channel in list(self.channels.values()):
            channel._fail_locally(make_error())

    async def _die(self, make_error: Callable[[], LMStudioError]) -> None:
        self._fail_everything(make_error)
        await self.close()

    async def close(self) -> None:
        """Close the websocket; ends the reader. Idempotent."""
        if self._death is None:
            self._fail_everything(
                lambda: LMStudioConnectionError(f"{self._where()}: the client was closed")
            )
        self._reader_scope.cancel()
        self.keepalive_scope.cancel()
        await self.transport.aclose()
