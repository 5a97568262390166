"""How a waiting ``Channel.receive()`` sleeps: the backend's own primitives.

A waiting ``receive()`` sleeps until the reader feeds or ends the channel (``_wake``) or
until the inactivity deadline. This is on the path of every streamed packet, so the
backend's primitives are used directly where we know them (the generic anyio path
resolves the backend on each ``current_time()``/``Event()`` and opens a cancel scope
per wait). ``_wait(channel, deadline)`` returns whether the channel woke it; it sets
``channel._waiter`` to an object with ``set()`` and is cancellable like any checkpoint.
"""

from __future__ import annotations

import functools
import heapq
import math
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import sniffio

__all__ = ["backend_checkpoint", "backend_clock", "backend_waiting"]

Wait = Callable[[Any, float], Any]


class _AsyncioWaiter:
    """A future the reader resolves; a loop timer stands in for the deadline's scope."""

    __slots__ = ("future",)

    def __init__(self, future: Any) -> None:
        self.future = future

    def set(self) -> None:
        if not self.future.done():
            self.future.set_result(True)


def _asyncio_wait() -> Wait:
    import asyncio

    loop = asyncio.get_running_loop()

    def time_out(future: Any) -> None:
        if not future.done():
            future.set_result(False)

    async def wait(channel: Any, deadline: float) -> bool:
        future = loop.create_future()
        waiter = channel._waiter = _AsyncioWaiter(future)
        timer = None if deadline == math.inf else loop.call_at(deadline, time_out, future)
        try:
            return bool(await future)
        finally:
            if timer is not None:
                timer.cancel()
            if channel._waiter is waiter:
                channel._waiter = None

    return wait


class _TrioWaiter:
    """An event the reader sets, or the idle watch (then ``timed_out``)."""

    __slots__ = ("deadline", "event", "timed_out")

    def __init__(self, event: Any, deadline: float) -> None:
        self.event = event
        self.deadline = deadline
        self.timed_out = False

    def set(self) -> None:
        self.event.set()


class _IdleWatch:
    """One system task per Trio run that times out waiting channels.

    A ``move_on_at`` per wait costs a cancel scope per streamed packet (with 1,000
    channels streaming at once, ~15 % of the client's CPU: scope enter/exit and trio's
    deadline heap). Instead each waiting channel is in this heap at most once, under the
    deadline it had when it entered; when that comes, an entry whose channel has moved its
    deadline on (it received something) goes back in under the new one, and a channel
    still waiting past its deadline is woken as timed out. So the heap holds at most one
    entry per channel, and the watch sleeps in one scope whose deadline only moves when a
    sooner deadline arrives. Entries hold weak references: a channel that is done (its
    scope left, its packets with it) is freed at once, not kept until its deadline.
    """

    def __init__(self) -> None:
        import trio

        self._heap: list[tuple[float, int, Any]] = []
        self._order = 0
        self._scope: Any = None
        trio.lowlevel.spawn_system_task(self._run, name="lmstudio_sdk idle watch")

    def watch(self, channel: Any, deadline: float) -> None:
        if not channel._watched:
            channel._watched = True
            self._order += 1
            heapq.heappush(self._heap, (deadline, self._order, weakref.ref(channel)))
        scope = self._scope
        if scope is not None and deadline < scope.deadline:
            scope.deadline = deadline

    async def _run(self) -> None:
        import trio

        heap = self._heap
        while True:
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                _, _, ref = heapq.heappop(heap)
                channel = ref()
                if channel is None:
                    continue  # done and freed
                waiter = channel._waiter
                if type(waiter) is not _TrioWaiter:
                    channel._watched = False  # not waiting: its next wait registers it
                elif waiter.deadline > now:
                    self._order += 1
                    heapq.heappush(heap, (waiter.deadline, self._order, ref))
                else:
                    channel._watched = False
                    waiter.timed_out = True
                    waiter.set()
            with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as scope:
                self._scope = scope
                await trio.sleep_forever()
            self._scope = None


_idle_watch: Any = None  # a trio.lowlevel.RunVar: one watch per trio.run


def _trio_wait() -> Wait:
    import trio

    global _idle_watch
    if _idle_watch is None:
        _idle_watch = trio.lowlevel.RunVar("lmstudio_sdk_idle_watch")
    try:
        watch = _idle_watch.get()
    except LookupError:
        watch = _IdleWatch()
        _idle_watch.set(watch)
    event = trio.Event

    async def wait(channel: Any, deadline: float) -> bool:
        waiter = channel._waiter = _TrioWaiter(event(), deadline)
        if deadline != math.inf:
            watch.watch(channel, deadline)
        try:
            await waiter.event.wait()
        finally:
            if channel._waiter is waiter:
                channel._waiter = None
        return not waiter.timed_out

    return wait


async def _anyio_wait(channel: Any, deadline: float) -> bool:
    event = anyio.Event()
    channel._waiter = event
    try:
        with anyio.move_on_at(deadline):
            await event.wait()
    finally:
        if channel._waiter is event:
            channel._waiter = None
    return event.is_set()


def backend_waiting() -> tuple[Callable[[], float], Wait]:
    """The running backend's clock and wait function (see above)."""
    library = _current_library()
    if library == "asyncio":
        return backend_clock(), _asyncio_wait()
    if library == "trio":
        return backend_clock(), _trio_wait()
    return backend_clock(), _anyio_wait


def _current_library() -> str | None:
    try:
        return sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return None


def backend_checkpoint() -> Callable[[], Awaitable[None]]:
    """The running backend's cheapest way to let other tasks run (``asyncio.sleep(0)``)."""
    if _current_library() == "asyncio":
        import asyncio

        return functools.partial(asyncio.sleep, 0)
    return anyio.lowlevel.checkpoint


def backend_clock() -> Callable[[], float]:
    """The running backend's clock (``anyio.current_time()`` without the look-up per call)."""
    library = _current_library()
    if library == "asyncio":
        import asyncio

        return asyncio.get_running_loop().time
    if library == "trio":
        import trio

        return trio.current_time
    return anyio.current_time
