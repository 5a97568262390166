"""Streams across the portal: a blocking iterator over an async one (:class:`Feed`), and
the base of the sync stream context managers (:class:`HeldStream`).

No async generator is driven across the portal: each trip through it waits for one item,
then takes what is already buffered (:func:`_drain`), so streams cost few trips.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

import anyio

from .._boundary import for_caller
from ..errors import LMStudioError
from ._portal import Held, Portal, _reraise

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["FEED_BATCH", "Feed", "HeldStream"]

T = TypeVar("T")
R = TypeVar("R")

FEED_BATCH: Final = 4096
"""Most items a stream hands over per trip through the portal: at least a stream's whole
default buffer (with what it may hold after a cancel), so that one trip empties it. Each
trip waits for a GIL hand-off (up to the 5 ms switch interval, in which the loop thread
reads hundreds of frames of a burst): taking 256 per trip let a burst fill the buffer and
merge fragments for a consumer that keeps up."""


async def _drain(
    iterator: AsyncIterator[T], limit: int
) -> tuple[list[T], bool, BaseException | None]:
    """The next items of ``iterator``: wait for one, then take what is ready (``<= limit``).

    Returns ``(items, ended, error)``: ``error`` is what the iterator raised after it had
    given items (it is raised once those are used). Items already buffered are taken
    without waiting: while the stream's ``_ready()`` says so if it has one (ours do), else
    by asking for the next one inside an already-cancelled scope: a
    receive that does not have to wait never reaches a checkpoint, and one that would wait
    is cancelled before it has consumed anything (the async streams are
    cancellation-safe). An async generator cannot be used that way (the cancellation
    would finish it), so it gives one item per trip.
    """
    try:
        items = [await iterator.__anext__()]
    except StopAsyncIteration:
        return [], True, None
    if inspect.isasyncgen(iterator):
        return items, False, None
    ready = getattr(iterator, "_ready", None)
    if ready is not None:
        # The stream says whether its next packet is here: no cancelled scope needed (anyio
        # formats the task's repr on every cancel, ~20 % of the facade's CPU per fragment).
        # A packet that gives no event (a prediction's final one) may make one __anext__
        # wait for the next packet; that comes right behind it.
        while len(items) < limit and ready():
            try:
                items.append(await iterator.__anext__())
            except StopAsyncIteration:
                return items, True, None
            except Exception as exc:  # after items: deliver those first
                return items, True, exc
        return items, False, None
    while len(items) < limit:
        with anyio.CancelScope() as scope:
            scope.cancel()
            try:
                item = await iterator.__anext__()
            except StopAsyncIteration:
                return items, True, None
            except anyio.get_cancelled_exc_class():
                raise  # caught by the scope: nothing more is ready
            except Exception as exc:  # after items: deliver those first
                return items, True, exc
        if scope.cancelled_caught:
            break
        items.append(item)
    return items, False, None


class Feed(Iterator[R], Generic[T, R]):
    """A blocking iterator over an async iterator living in the loop.

    Items are fetched several per trip through the portal (see :func:`_drain`) and kept
    here until used, so breaking out of a ``for`` loop loses nothing: iterating again goes
    on where it stopped. ``convert`` turns each item into what the user sees (it runs in
    the calling thread). ``usable()`` says whether the stream may still be read (``False``
    once its ``with`` block has been left).
    """

    def __init__(
        self,
        portal: Portal,
        iterator: AsyncIterator[T],
        convert: Callable[[T], R] | None = None,
        *,
        usable: Callable[[], bool] | None = None,
    ) -> None:
        self._portal = portal
        self._iterator = iterator
        self._convert = convert
        self._usable = usable
        self._pending: deque[T] = deque()
        self._ended = False
        self._error: BaseException | None = None

    def __iter__(self) -> Feed[T, R]:
        return self

    def __next__(self) -> R:
        # Checked first, whatever is already fetched: how many items a trip fetched before
        # the block was left depends on timing, and reading after it must not.
        if self._usable is not None and not self._usable():
            raise RuntimeError("the stream's `with` block has been left: read it inside the block")
        if not self._pending:
            if self._error is not None:
                error, self._error = self._error, None
                _reraise(error)
            if self._ended:
                raise StopIteration
            try:
                drained = self._portal.run(_drain, self._iterator, FEED_BATCH)
            except LMStudioError as exc:  # cut here: the frames below are the portal's
                raise for_caller(exc)  # noqa: B904 - the same exception, chained as it was
            items, self._ended, self._error = drained
            self._pending.extend(items)
            if not self._pending:
                raise StopIteration  # pragma: no cover (a drain gives an item or ends)
        item = self._pending.popleft()
        return item if self._convert is None else self._convert(item)  # type: ignore[return-value]


class HeldStream(Generic[T]):
    """Base of the sync stream context managers: holds the async one open in the loop.

    ``make`` builds the async context manager; it is called in the loop thread when the
    ``with`` block is entered (so its argument errors come out of ``with``).
    """

    def __init__(
        self, get_portal: Callable[[], Portal], make: Callable[[], AbstractAsyncContextManager[T]]
    ) -> None:
        self._get_portal = get_portal
        self._make = make
        self._held: Held[T] | None = None
        self._async_stream: T | None = None

    def _portal(self) -> Portal:
        return self._get_portal()

    @property
    def _state(self) -> str:
        return "new" if self._held is None else self._held.state

    def _enter_async(self) -> T:
        if self._held is not None:
            raise RuntimeError("a stream can be used in `with` only once")
        self._held = Held(self._get_portal(), self._make)
        self._async_stream = self._held.enter()
        return self._async_stream

    def _stream(self) -> T:
        if self._async_stream is None:
            raise RuntimeError("use the stream in a `with` block first")
        return self._async_stream

    def _is_open(self) -> bool:
        return self._held is not None and self._held.state == "open"

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return False if self._held is None else self._held.exit(exc)


S = TypeVar("S", bound=AsyncIterator[Any])


class FedStream(HeldStream[S], Generic[S, R]):
    """A held stream whose ``R`` items are read through a :class:`Feed` once entered."""

    def __init__(
        self, get_portal: Callable[[], Portal], make: Callable[[], AbstractAsyncContextManager[S]]
    ) -> None:
        super().__init__(get_portal, make)
        self._feed: Feed[R, R] | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._state}>"

    def __enter__(self) -> Self:
        stream = self._enter_async()
        self._feed = Feed(self._portal(), stream, usable=self._is_open)
        return self

    def _entered_feed(self) -> Feed[R, R]:
        if self._feed is None:
            raise RuntimeError("use the stream in a `with` block first")
        return self._feed
