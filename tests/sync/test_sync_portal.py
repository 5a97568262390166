"""The portal machinery under the sync facade, without a server.

Each test drives async code of its own through a :class:`Portal` and checks one of the
pitfalls of STYLE-STUDY 5.2: interrupts cancel the task in the loop, exception groups and
``BaseException`` never leak or kill the loop, async context managers are entered and
exited by one task, streams are read several items per trip, async generators are not
broken by that, callbacks run in the calling thread.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from lmstudio_sdk import LMStudioConnectionError, SyncInAsyncContextError
from lmstudio_sdk.sync._feed import FEED_BATCH, Feed
from lmstudio_sdk.sync._portal import Held, Portal

if sys.version_info < (3, 11):
    from exceptiongroup import ExceptionGroup


@pytest.fixture
def portal() -> Iterator[Portal]:
    opened = Portal()
    try:
        yield opened
    finally:
        opened.close()


def interrupt_main_when(event: threading.Event) -> threading.Thread:
    if not hasattr(signal, "pthread_kill"):
        pytest.skip("needs signal.pthread_kill (POSIX)")
    main = threading.main_thread().ident
    assert main == threading.get_ident()
    assert main is not None

    def send() -> None:
        if event.wait(10):
            signal.pthread_kill(main, signal.SIGINT)

    helper = threading.Thread(target=send)
    helper.start()
    return helper


class Counting:
    """An async iterator over ``n`` ready items that counts how it is read."""

    def __init__(self, n: int) -> None:
        self.items = list(range(n))
        self.more = anyio.Event()

    def __aiter__(self) -> Counting:
        return self

    async def __anext__(self) -> int:
        while not self.items:
            if self.more.is_set():
                raise StopAsyncIteration
            await self.more.wait()
        return self.items.pop(0)


def test_results_and_errors_come_back(portal: Portal) -> None:
    async def add(a: int, b: int) -> int:
        await anyio.lowlevel.checkpoint()
        return a + b

    async def fail() -> None:
        raise ExceptionGroup("group", [KeyError("inner")])

    assert portal.run(add, 1, 2) == 3
    with pytest.raises(KeyError, match="inner"):
        portal.run(fail)
    assert portal.run_sync(threading.get_ident) != threading.get_ident()


def test_a_base_exception_in_the_loop_is_delivered_and_the_loop_survives(portal: Portal) -> None:
    async def leave() -> None:
        raise SystemExit(3)

    with pytest.raises(SystemExit):
        portal.run(leave)
    assert portal.run(anyio.sleep, 0) is None  # the loop still runs


def test_interrupt_cancels_the_task_in_the_loop(portal: Portal) -> None:
    started = threading.Event()
    seen: list[str] = []

    async def wait_forever() -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            seen.append("cancelled")
            raise

    helper = interrupt_main_when(started)
    try:
        with pytest.raises(KeyboardInterrupt):
            portal.run(wait_forever)
    finally:
        helper.join()
    assert seen == ["cancelled"]  # already, when the interrupt reached the caller
    assert portal.run(anyio.sleep, 0) is None


def test_callbacks_run_in_the_caller_and_an_interrupt_there_cancels(portal: Portal) -> None:
    me = threading.get_ident()
    calls: list[int] = []
    seen: list[str] = []

    def callback(value: int) -> int:
        calls.append(threading.get_ident())
        if value == 3:
            raise KeyboardInterrupt
        return value * 10

    async def use(relay: Any) -> list[int]:
        relayed = relay(callback)
        try:
            return [await relayed(i) for i in range(5)]
        except anyio.get_cancelled_exc_class():
            seen.append("cancelled")
            raise

    with pytest.raises(KeyboardInterrupt):
        portal.run_relayed(use)
    assert calls == [me] * 4
    assert seen == ["cancelled"]

    async def fine(relay: Any) -> list[int]:
        relayed = relay(callback)
        return [await relayed(i) for i in range(3)]

    assert portal.run_relayed(fine) == [0, 10, 20]


def test_a_context_manager_is_entered_and_left_by_one_task(portal: Portal) -> None:
    tasks: list[int] = []
    exits: list[Any] = []

    @asynccontextmanager
    async def scope() -> AsyncIterator[str]:
        tasks.append(anyio.get_current_task().id)
        async with anyio.create_task_group():  # a scope that must exit in its task
            try:
                yield "value"
            except BaseException as exc:
                exits.append(type(exc))
                raise
        tasks.append(anyio.get_current_task().id)

    held = Held(portal, scope)
    assert held.enter() == "value"
    assert not held.exit(None)
    assert tasks[0] == tasks[1]

    held = Held(portal, scope)
    held.enter()
    error = ValueError("from the block")
    assert not held.exit(error)  # the block's own exception is passed in, not raised here
    assert exits == [ValueError]
    assert portal.run(anyio.sleep, 0) is None


def test_streams_are_read_many_items_per_trip(
    portal: Portal, monkeypatch: pytest.MonkeyPatch
) -> None:
    trips = 0
    run = portal.run

    def counting_run(*args: Any, **kwargs: Any) -> Any:
        nonlocal trips
        trips += 1
        return run(*args, **kwargs)

    iterator = portal.run_sync(Counting, 1000)
    portal.run_sync(iterator.more.set)
    monkeypatch.setattr(portal, "run", counting_run)
    assert list(Feed(portal, iterator)) == list(range(1000))
    assert trips <= 1000 // FEED_BATCH + 2


def test_breaking_out_of_a_feed_loses_nothing(portal: Portal) -> None:
    iterator = portal.run_sync(Counting, 10)
    portal.run_sync(iterator.more.set)
    feed = Feed(portal, iterator)
    first = [item for _, item in zip(range(3), feed, strict=False)]
    assert first == [0, 1, 2]
    assert list(feed) == list(range(3, 10))


def test_an_async_generator_is_read_one_item_per_trip(portal: Portal) -> None:
    async def generate() -> AsyncIterator[int]:
        for i in range(5):
            await anyio.lowlevel.checkpoint()
            yield i

    agen = portal.run_sync(generate)
    feed = Feed(portal, agen)
    assert next(feed) == 0
    assert next(feed) == 1
    assert portal.run(anyio.sleep, 0) is None  # the portal is intact
    assert list(feed) == [2, 3, 4]


def test_a_feed_delivers_ready_items_before_a_later_error(portal: Portal) -> None:
    class FailsAfterTwo:
        def __init__(self) -> None:
            self.n = 0

        def __aiter__(self) -> FailsAfterTwo:
            return self

        async def __anext__(self) -> int:
            self.n += 1
            if self.n > 2:
                raise LookupError("broken")
            return self.n

    feed = Feed(portal, portal.run_sync(FailsAfterTwo))
    assert next(feed) == 1
    assert next(feed) == 2
    with pytest.raises(LookupError, match="broken"):
        next(feed)


def test_closing_stops_the_thread_and_later_calls_fail() -> None:
    before = threading.active_count()
    portal = Portal()
    assert threading.active_count() == before + 1
    portal.close()
    portal.close()
    assert threading.active_count() == before
    with pytest.raises(LMStudioConnectionError, match="closed"):
        portal.run(anyio.sleep, 0)


def test_the_loop_thread_cannot_block_on_itself(portal: Portal) -> None:
    async def nested() -> None:
        portal.run(anyio.sleep, 0)

    with pytest.raises(SyncInAsyncContextError, match="AsyncClient"):
        portal.run(nested)
