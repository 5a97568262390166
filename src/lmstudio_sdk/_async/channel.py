"""Channels: a bounded receive stream per open channel, and what happens when it ends.

A :class:`Channel` is what ``async with connection.open_channel(spec, param) as channel``
yields: an ``anyio`` object receive stream of the endpoint's typed packets.
``async for packet in channel`` ends at the server's ``channelClose``; a ``channelError``
raises :class:`~lmstudio_sdk.errors.LMStudioServerError`.

Leaving the scope
=================

Leaving the ``async with`` for any reason before the server ended the channel (end of
the block, ``break``, an exception, cancellation of an enclosing scope, ``fail_after``,
``KeyboardInterrupt``) sends the endpoint's cancel packet (``ChannelSpec.cancel_packet``),
then waits, shielded and bounded (``drain_timeout``, 2 s by default), for the server's last
packets and its ``channelClose``, and then lets the exception or cancellation go on
unchanged. Packets that were received but not consumed, including those that arrive
during that wait (a prediction's final ``success`` with ``stopReason: "userStopped"``),
stay readable in :attr:`Channel.final_packets` after the scope was left. The client never
invents a packet: it reports what the server sent. An endpoint without a cancel packet
(``system.alive``) cannot be ended early; leaving it just stops listening.

Ends and errors
===============

What the server sends is delivered in order: the buffered packets first, then the end
(``EndOfStream`` for ``channelClose``, the server's error for ``channelError``). Failures
found on our side are raised by the next ``receive()`` at once, ahead of anything still
buffered (which stays in :attr:`Channel.final_packets`): a dropped socket
(``LMStudioConnectionError``), a broken frame (``RemoteProtocolError``), a packet that
does not fit the endpoint (``RemoteProtocolError``; only this channel fails), inactivity
(``LMStudioTimeoutError``) and overflow (``LMStudioChannelOverflowError``). Inactivity and
overflow also cancel the channel on the server right away.

Timeouts are about inactivity, never total duration: ``receive()`` fails when the server
sent nothing on this channel for ``idle_timeout`` seconds. A long generation that keeps
streaming is healthy however long it takes.

Backpressure policy
===================

The protocol has no flow control, and one socket carries many channels, so a consumer
that falls behind must neither stall the socket's reader (every other call and channel
on the socket would stop) nor make it drop data. Each channel therefore has a bounded
buffer (``buffer_size`` packets) and this policy:

* no packet is ever dropped silently;
* while there is room, every packet is buffered as it came;
* when the buffer is full, it is compacted with the endpoint's merge rule
  (``ChannelSpec.merge``, :mod:`lmstudio_sdk.protocol.merging`): consecutive text
  fragments are joined (text concatenated, token counts summed; prediction fragments
  only when ``reasoningType`` and ``isStructural`` are equal) and consecutive progress
  packets keep only the latest. Until the consumer has caught up with half the buffer,
  each new packet is folded into the last buffered one in O(1); joined packets are
  combined once, when the consumer reads them, so merging stays linear in the packets
  received and the socket's reader never waits for it;
* if a packet can still not be buffered (it cannot be merged: a tool call, a log line),
  the channel is cancelled on the server and fails with
  :class:`~lmstudio_sdk.errors.LMStudioChannelOverflowError`. What was buffered stays in
  :attr:`Channel.final_packets`, and the server's last packets are still collected
  (merged, up to ``OVERFLOW_FACTOR`` times the bound; beyond that they are counted in
  :attr:`Channel.dropped_packets` and logged).

Lifecycle
=========

:class:`ChannelState` says where a channel is: ``UNSENT`` until its ``channelCreate``
frame is being written, ``OPEN``, ``CANCELLING`` once we sent the cancel packet, and
finally ``ENDED`` (the server ended it, the socket died) or ``ABANDONED`` (we stopped
listening first). Every transition is in one table (``_TRANSITIONS``). Leaving the scope
of an ``UNSENT`` channel withdraws it: the server never saw it, so there is nothing to
cancel or wait for.
"""

from __future__ import annotations

import enum
import logging
import math
from collections import deque
from typing import TYPE_CHECKING, Any, Final, Generic, Protocol, TypeVar

import anyio
import attrs
from anyio.abc import ObjectReceiveStream

from ..errors import LMStudioChannelOverflowError, LMStudioTimeoutError
from ..protocol.merging import Merge, MergeRule
from ..protocol.session import endpoint_label
from ._waiting import backend_waiting

if TYPE_CHECKING:
    from ..protocol.endpoints._spec import ChannelSpec

__all__ = [
    "DEFAULT_BUFFER_SIZE",
    "DEFAULT_DRAIN_TIMEOUT",
    "OVERFLOW_FACTOR",
    "Channel",
    "ChannelOwner",
    "ChannelState",
]

logger = logging.getLogger("lmstudio_sdk")

#: Packets a channel buffers for a consumer that lags, before merging (see module doc).
DEFAULT_BUFFER_SIZE: Final = 1024
#: Seconds to wait for the server's last packets after cancelling, when leaving a scope.
DEFAULT_DRAIN_TIMEOUT: Final = 2.0
#: After a cancel, the buffer may grow to this many times its bound (with merging).
OVERFLOW_FACTOR: Final = 4

T = TypeVar("T")


class _Run:
    """Packets the merge rule joined, kept apart until the consumer reads them (then
    ``rule.join`` combines them once: linear however many pile up)."""

    __slots__ = ("parts",)

    def __init__(self, parts: list[Any]) -> None:
        self.parts = parts


# ---------------------------------------------------------------------------- the channel


class ChannelOwner(Protocol):
    """What a channel needs from the socket that carries it (see ``connection.py``)."""

    async def send_channel_packet(self, channel_id: int, packet: Any) -> None:
        """Send one of the endpoint's client-to-server packets."""
        ...

    async def send_cancel(self, channel_id: int) -> bool:
        """Send the cancel packet unless already sent; ``False`` if the endpoint has none."""
        ...

    def schedule_cancel(self, channel_id: int) -> None:
        """Send the cancel packet soon, from a background task (the reader cannot wait)."""
        ...

    def release_channel(self, channel_id: int, *, listening: bool) -> None:
        """The scope was left: forget the channel (``listening``: the server has not ended it)."""
        ...

    def withdraw_channel(self, channel_id: int) -> None:
        """The scope was left before the create frame was written: forget it entirely."""
        ...


@attrs.define
class _Ended:
    """How the server ended the channel: ``error`` is ``None`` for ``channelClose``."""

    error: BaseException | None


class ChannelState(enum.Enum):
    """Where a channel is in its life, as seen by the client (one value at a time).

    The transitions are all in :data:`_TRANSITIONS`; anything else is a bug of ours
    (``RuntimeError``). Ending events in a final state are no-ops.
    """

    #: The ``channelCreate`` frame has not been written: the server knows nothing of it.
    UNSENT = "unsent"
    #: The create frame may have gone out: packets flow, a cancel may be needed.
    OPEN = "open"
    #: We sent (or scheduled) the cancel packet; the server's last packets still flow.
    CANCELLING = "cancelling"
    #: Over: the server ended it, the socket died, or it failed for good on our side.
    ENDED = "ended"
    #: We stopped listening before the server ended it (its later frames are dropped),
    #: or it was withdrawn before its create frame went out (nothing to wait for).
    ABANDONED = "abandoned"


_FINAL: Final = frozenset({ChannelState.ENDED, ChannelState.ABANDONED})

_TRANSITIONS: Final[dict[tuple[ChannelState, str], ChannelState]] = {
    # The create frame is being written (from here on the server may know the channel).
    (ChannelState.UNSENT, "sent"): ChannelState.OPEN,
    # The scope was left before the create frame was written: nothing to cancel or drain.
    (ChannelState.UNSENT, "withdraw"): ChannelState.ABANDONED,
    (ChannelState.UNSENT, "end"): ChannelState.ENDED,
    (ChannelState.OPEN, "cancel"): ChannelState.CANCELLING,
    (ChannelState.OPEN, "end"): ChannelState.ENDED,
    (ChannelState.OPEN, "abandon"): ChannelState.ABANDONED,
    (ChannelState.CANCELLING, "cancel"): ChannelState.CANCELLING,
    (ChannelState.CANCELLING, "end"): ChannelState.ENDED,
    (ChannelState.CANCELLING, "abandon"): ChannelState.ABANDONED,
}


class Channel(ObjectReceiveStream[T], Generic[T]):
    """The receive side of one open channel. Obtain it from ``Connection.open_channel``.

    Iterate it (``async for packet in channel``) or call :meth:`receive`. See the module
    docstring for ends, errors, timeouts and the backpressure policy.
    """

    def __init__(
        self,
        spec: ChannelSpec,
        channel_id: int,
        owner: ChannelOwner,
        *,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        idle_timeout: float | None = None,
        merge: MergeRule | None = None,
    ) -> None:
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be at least 1, got {buffer_size}")
        self._spec = spec
        self._id = channel_id
        self._owner = owner
        self._bound = buffer_size
        self._idle_timeout = idle_timeout
        self._rule = merge if merge is not None else spec.merge
        # Packets, and runs of joined ones (_Run) once the consumer lags.
        self._buffer: deque[Any] = deque()
        self._lagging = False  # the buffer filled up: fold new packets into the tail
        self._waiter: Any = None  # what the waiting receive() sleeps on (see _wait)
        self._watched = False  # in Trio's idle watch (see _waiting._IdleWatch)
        self._clock, self._wait = backend_waiting()
        self._last_activity = self._clock()
        # What the consumer gets once the buffer is empty (the server's end), or at once
        # (a failure on our side); independent of the lifecycle below.
        self._server_end: _Ended | None = None
        self._local_error: BaseException | None = None
        self._state = ChannelState.UNSENT
        self._final = anyio.Event()  # set on entering ENDED or ABANDONED
        # ``_state in _FINAL``, kept by _transition: the reader asks for every packet, and
        # an enum in a set costs a Python-level __hash__ call.
        self._over = False
        self._cancel_requested = False  # we entered CANCELLING at some point
        self._left = False  # the scope was left: receive() is over
        self._dropped = 0
        self._received = 0

    def __repr__(self) -> str:
        state = self._state.value
        if self._local_error is not None:
            state += f", failed ({type(self._local_error).__name__})"
        elif self._server_end is not None:
            state += ", closed" if self._server_end.error is None else ", failed by the server"
        return (
            f"<Channel {self.endpoint} #{self._id} {state}, {len(self._buffer)} buffered, "
            f"{self._received} received>"
        )

    # ------------------------------------------------------------------ public

    @property
    def endpoint(self) -> str:
        """``"namespace.endpoint"`` of this channel."""
        return endpoint_label(self._spec)

    @property
    def channel_id(self) -> int:
        """The channel's id on its socket (chosen by the client)."""
        return self._id

    @property
    def state(self) -> ChannelState:
        """Where the channel is in its life (see :class:`ChannelState`)."""
        return self._state

    @property
    def ended(self) -> bool:
        """Whether nothing more will arrive (the server ended it, it failed, or we left)."""
        return self._state in _FINAL

    @property
    def cancel_requested(self) -> bool:
        """Whether we asked the server to end the channel early."""
        return self._cancel_requested

    @property
    def final_packets(self) -> tuple[T, ...]:
        """Packets received but not consumed, oldest first.

        After the scope was left this includes what the server sent while we waited for
        it to end the channel, e.g. the final ``success`` of a cancelled prediction.
        """
        return tuple(self._packet(entry) for entry in self._buffer)

    def _packet(self, entry: Any) -> T:
        if type(entry) is _Run:
            packet: T = self._rule.join(entry.parts)
            return packet
        return entry  # type: ignore[no-any-return]

    @property
    def dropped_packets(self) -> int:
        """Packets that arrived after an overflow and beyond the post-cancel bound (logged)."""
        return self._dropped

    async def receive(self) -> T:
        """The next packet. ``anyio.EndOfStream`` after ``channelClose``; see module doc.

        Once the scope was left: ``anyio.ClosedResourceError`` (see :attr:`final_packets`).
        """
        while True:
            if self._left:  # what is left is in final_packets
                raise anyio.ClosedResourceError(
                    "the stream's `async with` block has been left: read it inside the block"
                )
            if self._local_error is not None:
                raise self._local_error
            if self._buffer:
                entry = self._buffer.popleft()
                if self._lagging and len(self._buffer) <= self._bound // 2:
                    self._lagging = False  # caught up: buffer packets as they come again
                if type(entry) is _Run:  # the hot path is a plain packet: no call for it
                    return self._packet(entry)
                return entry  # type: ignore[no-any-return]
            if self._server_end is not None:
                if self._server_end.error is not None:
                    raise self._server_end.error
                raise anyio.EndOfStream
            deadline = (
                math.inf if self._idle_timeout is None else self._last_activity + self._idle_timeout
            )
            woken = await self._wait(self, deadline)
            if (
                not woken
                and self._idle_timeout is not None
                and self._clock() >= self._last_activity + self._idle_timeout
            ):
                self._fail_locally(
                    LMStudioTimeoutError(
                        f"{self.endpoint}: the server sent nothing for "
                        f"{self._idle_timeout:g} s; the channel was cancelled"
                    ),
                    cancel=True,
                )

    def _ready(self) -> bool:
        """Whether :meth:`receive` would return (or raise) without waiting."""
        return (
            bool(self._buffer)
            or self._left
            or self._local_error is not None
            or self._server_end is not None
        )

    async def send(self, packet: Any) -> None:
        """Send one of the endpoint's client-to-server packets on this channel."""
        if self._local_error is not None:
            raise self._local_error
        await self._owner.send_channel_packet(self._id, packet)

    async def aclose(self) -> None:
        """Ask the server to end the channel early (sends the cancel packet now).

        Keep reading to get the server's last packets; leaving the scope does the same.
        """
        if self._state is ChannelState.OPEN and self._spec.cancel_packet is not None:
            self._transition("cancel")
            await self._owner.send_cancel(self._id)

    # ------------------------------------------------------------------ the lifecycle

    def _transition(self, event: str) -> None:
        """Move the lifecycle on (the only place that assigns ``_state``)."""
        if self._state in _FINAL and event in ("cancel", "end", "abandon"):
            return  # a late end or cancel of a channel that is already over
        try:
            state = _TRANSITIONS[(self._state, event)]
        except KeyError:
            raise RuntimeError(
                f"{self.endpoint} #{self._id}: {event!r} cannot happen in state "
                f"{self._state.value!r}"
            ) from None
        self._state = state
        if state is ChannelState.CANCELLING:
            self._cancel_requested = True
        elif state in _FINAL:
            self._over = True
            self._final.set()
            self._wake()

    def _create_sent(self) -> None:
        """The ``channelCreate`` frame is being written (called by the socket)."""
        self._transition("sent")

    # ------------------------------------------------------------------ fed by the reader

    def _feed(self, packet: T) -> None:
        """A packet arrived. Never blocks; applies the backpressure policy."""
        self._received += 1
        self._last_activity = self._clock()
        if self._over:
            return
        if self._try_buffer(packet):
            return
        if not self._left and self._local_error is None:
            self._fail_locally(
                LMStudioChannelOverflowError(
                    f"{self.endpoint}: the consumer fell {self._bound} packets behind and the "
                    f"next packet ({_packet_type(packet)}) could not be merged; the channel "
                    "was cancelled on the server. Read the stream faster, or give the client "
                    "a larger buffer: AsyncClient(channel_buffer_size=...)"
                ),
                cancel=True,
            )
            if self._try_buffer(packet):  # the bound is larger once the channel failed
                return
        self._dropped += 1
        if self._dropped == 1:
            logger.warning(
                "%s: the server kept sending after the channel was cancelled; packets "
                "beyond %d are dropped (counted in channel.dropped_packets)",
                self.endpoint,
                self._limit(),
            )

    def _limit(self) -> int:
        failed = self._left or self._local_error is not None
        return self._bound * OVERFLOW_FACTOR if failed else self._bound

    def _try_buffer(self, packet: T) -> bool:
        """Buffer ``packet`` (folding it into the tail once lagging); ``False`` if full.

        Linear in the packets that arrive: the buffer is compacted once each time it fills
        up (at least half the bound was read since the previous time), and from then on
        each new packet is folded into the tail in O(1) while the consumer lags.
        """
        buffer, limit = self._buffer, self._limit()
        if self._lagging and buffer and self._fold(packet):
            return True
        if len(buffer) >= limit and not self._lagging:
            self._lagging = True
            self._compact()
            if self._fold(packet):
                return True
        if len(buffer) >= limit:
            return False
        buffer.append(packet)
        self._wake()
        return True

    def _fold(self, packet: T) -> bool:
        """Merge ``packet`` into the buffer's last entry if the rule allows it."""
        buffer = self._buffer
        tail = buffer[-1]
        run = tail if type(tail) is _Run else None
        how = self._rule.classify(tail if run is None else run.parts[-1], packet)
        if how is Merge.JOIN:
            if run is None:
                buffer[-1] = _Run([tail, packet])
            else:
                run.parts.append(packet)
            return True
        if how is Merge.REPLACE and run is None:
            buffer[-1] = packet
            return True
        return False

    def _compact(self) -> None:
        """Fold neighbours in the buffer with the endpoint's rule, in one pass."""
        if not self._rule.merges or len(self._buffer) < 2:
            return
        entries = list(self._buffer)
        self._buffer.clear()
        self._buffer.append(entries[0])
        for entry in entries[1:]:
            if type(entry) is _Run:
                first, rest = entry.parts[0], entry.parts[1:]
            else:
                first, rest = entry, []
            if not self._fold(first):
                self._buffer.append(first)
            for part in rest:
                self._fold(part)  # parts of one run always join

    def _close_from_server(self) -> None:
        """``channelClose``: the consumer gets the buffer, then ``EndOfStream``."""
        if self._server_end is None and self._state not in _FINAL:
            self._server_end = _Ended(None)
        self._transition("end")

    def _fail_from_server(self, error: BaseException) -> None:
        """``channelError``: the consumer gets the buffer, then ``error``."""
        if self._server_end is None and self._state not in _FINAL:
            self._server_end = _Ended(error)
        self._transition("end")

    def _fail_locally(self, error: BaseException, *, cancel: bool = False) -> None:
        """A failure on our side: raised by the next ``receive()`` at once.

        With ``cancel``, the channel is still open on the server: cancel it there, and keep
        collecting its last packets. Without, nothing more will arrive.
        """
        if self._local_error is None and self._server_end is None:
            self._local_error = error
        if not cancel:
            self._transition("end")
        elif self._state is ChannelState.OPEN:
            if self._spec.cancel_packet is None:
                self._transition("abandon")  # nothing can end it early: stop listening
            else:
                self._transition("cancel")
                self._owner.schedule_cancel(self._id)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.set()  # every waiter (see _wait) has a ``set()``

    # ------------------------------------------------------------------ leaving the scope

    async def _leave(self, drain_timeout: float) -> None:
        """Leave the scope: cancel on the server if needed and wait for its last packets.

        A channel whose create frame was never written is withdrawn (no cancel, no wait).
        Otherwise the wait is shielded and bounded by ``drain_timeout``. Never raises (the
        scope's own exception or cancellation must go on unchanged).
        """
        self._left = True
        if self._state is ChannelState.UNSENT:
            self._transition("withdraw")
            self._owner.withdraw_channel(self._id)
            return
        if self._state is ChannelState.OPEN and self._spec.cancel_packet is None:
            self._transition("abandon")  # it cannot be ended early: just stop listening
        elif self._state not in _FINAL:
            with anyio.move_on_after(drain_timeout, shield=True):
                try:
                    if self._state is ChannelState.OPEN:
                        self._transition("cancel")
                        await self._owner.send_cancel(self._id)
                    await self._final.wait()
                except Exception as exc:  # the socket failed: it fails the channel too
                    logger.debug("%s: could not cancel: %s", self.endpoint, exc)
            if self._state not in _FINAL:
                logger.warning(
                    "%s: the server did not end the channel within %g s of the cancel; "
                    "no longer listening to it",
                    self.endpoint,
                    drain_timeout,
                )
                self._transition("abandon")
        self._owner.release_channel(self._id, listening=self._state is ChannelState.ABANDONED)


def _packet_type(packet: Any) -> str:
    kind = getattr(packet, "type", None)
    return repr(kind) if isinstance(kind, str) else type(packet).__name__
