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
import math
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


def _trio_wait() -> Wait:
    import trio

    async def wait(channel: Any, deadline: float) -> bool:
        event = trio.Event()
        channel._waiter = event
        try:
            if deadline == math.inf:
                await event.wait()
            else:
                with trio.move_on_at(deadline):
                    await event.wait()
        finally:
            if channel._waiter is event:
                channel._waiter = None
        return event.is_set()

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
