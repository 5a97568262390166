"""The bridge between blocking code and the async core: one event loop thread per client.

A sync :class:`~lmstudio_sdk.Client` owns one :class:`Portal`: an anyio blocking portal
running asyncio in a daemon thread (so the sync facade always uses the ``websockets``
transport). Everything the sync API does goes through it, and it handles the pitfalls of
calling async code from threads (STYLE-STUDY 5.2):

* **No async generator is driven across the portal.** Async context managers are entered
  and exited in one task (:class:`Held`); streams are read by tasks that each take whole
  items (``_feed.Feed``), several per hop.
* **Calls from inside an event loop** raise :class:`SyncInAsyncContextError` at once (a
  blocking call there would freeze the loop) and point to ``AsyncClient``; Jupyter cells
  are the exception (see :mod:`._notebook` for the rule).
* **Ctrl-C**: a ``KeyboardInterrupt`` (any ``BaseException``) in the waiting thread cancels
  the task in the loop, so the work is cancelled *on the server*, then waits (bounded) for
  that cancellation to be sent before the interrupt goes on.
* **Timeouts** are the async core's (``timeout=``), so a timeout also cancels on the server.
* ``concurrent.futures.CancelledError``, exception groups and internal frames of
  ``LMStudioError`` tracebacks (:mod:`.._boundary`) never reach the user.
* **User callbacks run in the calling thread** (:class:`Relay`): the loop asks the waiting
  thread to run them, so a slow callback cannot stall other work of the client.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import queue
import threading
import weakref
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

import anyio
import sniffio
from anyio.from_thread import start_blocking_portal

from .._async._exceptions import pick_exception
from .._boundary import for_caller
from ..errors import LMStudioConnectionError, LMStudioError
from ._notebook import in_kernel_cell

if TYPE_CHECKING:
    from anyio.from_thread import BlockingPortal

__all__ = [
    "CANCEL_WAIT",
    "Held",
    "Portal",
    "Relay",
    "SyncInAsyncContextError",
    "check_not_in_event_loop",
]

T = TypeVar("T")
R = TypeVar("R")

CANCEL_WAIT: Final = 10.0
"""Seconds an interrupted call waits for its task to wind down (the cancel to be sent)."""

# The interpreter runs atexit hooks last-registered first. weakref.finalize registers its
# own hook (which runs finalizers marked atexit) when the first finalize object is made;
# make one now, at import, so the hook runs *after* atexit hooks the application registers
# later, which may still use a client (the trick lmstudio-python uses too).
weakref.finalize(lambda: None, lambda: None)


class SyncInAsyncContextError(RuntimeError):
    """The blocking API was called from a thread that runs an event loop."""


def check_not_in_event_loop() -> None:
    """Raise :class:`SyncInAsyncContextError` if an event loop runs in this thread.

    Except in a Jupyter cell: there the loop is the kernel's, idle until the cell is done.
    """
    try:
        library = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return
    if library == "asyncio" and in_kernel_cell():
        return
    raise SyncInAsyncContextError(
        f"the blocking lmstudio_sdk API (Client, lmstudio_sdk.llm(), ...) was called from "
        f"inside a running {library} event loop, where it would block the loop. In async "
        "code use `async with lmstudio_sdk.AsyncClient() as client:` and await its methods "
        "(or run blocking code in a worker thread: anyio.to_thread.run_sync)"
    )


class _Cancelled:
    """What the task of a call posts to the caller's inbox when it was cancelled."""

    __slots__ = ()


_CANCELLED: Final = _Cancelled()


class _Outcome(Generic[T]):
    """A value or an exception, carried from the loop thread to the caller."""

    __slots__ = ("error", "value")

    def __init__(self, value: T | None = None, error: BaseException | None = None) -> None:
        self.value = value
        self.error = error

    def unwrap(self) -> T:
        if self.error is not None:
            _reraise(self.error)
        return self.value  # type: ignore[return-value]


def _reraise(exc: BaseException) -> Any:
    """Raise ``exc`` (a group as its chosen member; cut: ``for_caller``), without chaining."""
    chosen = for_caller(pick_exception(exc))
    context = chosen.__context__
    try:
        raise chosen
    finally:
        chosen.__context__ = context
        del chosen, context


def _closed_error() -> LMStudioConnectionError:
    return LMStudioConnectionError(
        "the client is closed; create a new lmstudio_sdk.Client (or use it inside `with`)"
    )


class _Control:
    """How the calling thread cancels one task in the loop, whenever it is interrupted.

    An interrupt may come before the task has started (even while the portal is still
    spawning it), while it runs, or after it has finished. The task attaches its cancel
    scope when it starts; a caller that gave up before that marks the call abandoned and
    the task cancels itself as it starts.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scope: anyio.CancelScope | None = None
        self._abandoned = False
        self.finished = threading.Event()

    def attach(self, scope: anyio.CancelScope) -> None:
        """In the loop, when the task starts."""
        with self._lock:
            self._scope = scope
            if self._abandoned:
                scope.cancel()

    def cancel_here(self) -> None:
        """In the loop thread: cancel the task now (or as it starts)."""
        with self._lock:
            self._abandoned = True
            if self._scope is not None:
                self._scope.cancel()

    def abandon(self, portal: Portal) -> None:
        """In the caller: cancel the task and give it a bounded time to wind down."""
        with self._lock:
            self._abandoned = True
            scope = self._scope
        if scope is None or self.finished.is_set():
            return  # not started yet (it cancels itself when it does), or already over
        try:
            portal.spawn(scope.cancel)
        except LMStudioConnectionError:  # the portal has stopped: the task went with it
            return
        self.finished.wait(CANCEL_WAIT)


class _Request:
    """A callback the loop asks the calling thread to run (see :class:`Relay`)."""

    __slots__ = ("args", "done", "function", "kwargs", "outcome")

    def __init__(
        self, function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self.function = function
        self.args = args
        self.kwargs = kwargs
        self.done = anyio.Event()  # made in the loop thread, set through the portal
        self.outcome: _Outcome[Any] | None = None


class Relay:
    """Turns user callbacks into async functions that run them in the calling thread.

    One relay belongs to one blocking call: while the call waits, its thread serves the
    requests the relay posts, in order, and the loop side awaits each outcome (so an
    exception raised by the callback comes out of the async code, as it would in the async
    API).
    """

    def __init__(self, inbox: queue.SimpleQueue[Any]) -> None:
        self._inbox = inbox

    def __call__(self, function: Callable[..., R]) -> Callable[..., Awaitable[R]]:
        """An async stand-in for ``function`` (same name, docstring and signature)."""

        @functools.wraps(function)
        async def in_caller_thread(*args: Any, **kwargs: Any) -> R:
            request = _Request(function, args, kwargs)
            self._inbox.put(request)
            await request.done.wait()
            assert request.outcome is not None
            result: R = request.outcome.unwrap()
            return result

        return in_caller_thread

    def optional(self, function: Callable[..., R] | None) -> Callable[..., Awaitable[R]] | None:
        """:meth:`__call__`, with ``None`` left as it is."""
        return None if function is None else self(function)


class Portal:
    """One asyncio event loop in a daemon thread, and safe blocking calls into it.

    Create it in the thread that will use it; :meth:`close` stops the loop and joins the
    thread (idempotent).
    """

    def __init__(self, name: str = "lmstudio-sdk") -> None:
        check_not_in_event_loop()
        self._stack = contextlib.ExitStack()
        self._portal: BlockingPortal = self._stack.enter_context(
            start_blocking_portal("asyncio", name=name)
        )
        self._thread_id: int | None = None
        self._portal.call(self._remember_thread)
        self._closed = False
        self._close_lock = threading.Lock()
        self._controls: weakref.WeakSet[_Control] = weakref.WeakSet()  # calls in flight

    def _remember_thread(self) -> None:
        self._thread_id = threading.get_ident()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def in_loop_thread(self) -> bool:
        """Whether the calling thread is this portal's event loop thread."""
        return threading.get_ident() == self._thread_id

    def close(self) -> None:
        """Cancel whatever still runs in the loop, stop it and join its thread."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        if self.in_loop_thread:  # a finalizer run by the loop's own thread: cannot join
            for control in list(self._controls):
                control.cancel_here()
            return
        with contextlib.suppress(RuntimeError):  # already stopped
            self._portal.call(self._portal.stop, True)
        self._stack.close()

    # ------------------------------------------------------------------ blocking calls

    def run(self, function: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """``await function(*args, **kwargs)`` in the loop; block until it is done."""
        try:
            return self.run_relayed(lambda _relay: function(*args, **kwargs))
        except LMStudioError as exc:  # cut here: the frames below are the portal's
            raise for_caller(exc)  # noqa: B904 - the same exception, chained as it was

    def run_sync(self, function: Callable[..., T], /, *args: Any) -> T:
        """``function(*args)`` in the loop thread (to read objects that live there)."""

        async def call() -> T:
            return function(*args)

        return self.run_relayed(lambda _relay: call())

    def run_relayed(self, make: Callable[[Relay], Awaitable[T]]) -> T:
        """Run ``await make(relay)`` in the loop, serving the relay's callbacks meanwhile.

        If the waiting thread is interrupted (``KeyboardInterrupt``, or a callback raising
        a ``BaseException``), the task is cancelled and given up to :data:`CANCEL_WAIT`
        seconds to wind down (a stream sends its cancel to the server) before the
        interrupt is re-raised.
        """
        check_not_in_event_loop()
        if self._closed:
            raise _closed_error()
        inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        relay = Relay(inbox)
        control = _Control()
        self._controls.add(control)

        async def task() -> None:
            outcome: _Outcome[T] | _Cancelled = _CANCELLED
            try:
                with anyio.CancelScope() as scope:
                    control.attach(scope)
                    try:
                        outcome = _Outcome(await make(relay))
                    except anyio.get_cancelled_exc_class():
                        raise
                    except BaseException as exc:  # delivered to the caller
                        # Never let KeyboardInterrupt & co. escape into the portal: that
                        # would stop its event loop for every other call.
                        outcome = _Outcome(error=exc)
            finally:
                control.finished.set()
                inbox.put(outcome)

        try:
            # Inside the try: the task may start, and an interrupt arrive, before spawn returns.
            self.spawn(task)
            while True:
                item = inbox.get()
                if isinstance(item, (_Outcome, _Cancelled)):
                    break
                self._serve(item)
        except BaseException:
            control.abandon(self)
            raise
        if isinstance(item, _Cancelled):  # not by us: the client is being closed
            raise _closed_error()
        if item.error is not None:
            _reraise(item.error)
        return item.value  # type: ignore[return-value]

    def spawn(self, function: Callable[..., Any], *args: Any) -> None:
        """Start ``function(*args)`` in the loop; ``LMStudioConnectionError`` once closed."""
        # Our flag is set before the portal stops: it tells its RuntimeError from others.
        try:
            self._portal.start_task_soon(function, *args)
        except RuntimeError:
            if self._closed:
                raise _closed_error() from None
            raise

    def _serve(self, request: _Request) -> None:
        """Run a relayed callback here; hand its outcome (an ``Exception``) to the loop."""
        try:
            request.outcome = _Outcome(request.function(*request.args, **request.kwargs))
        except Exception as exc:  # the async code raises it, as in the async API
            request.outcome = _Outcome(error=exc)
        # A BaseException (KeyboardInterrupt) goes on: run_relayed cancels the call.
        with contextlib.suppress(LMStudioConnectionError):  # the portal stopped meanwhile
            self.spawn(request.done.set)


class Held(Generic[T]):
    """An async context manager entered and exited by one task of the portal.

    ``enter()`` starts a task that enters the context manager ``make()`` returns (made in
    the loop thread) and keeps it open; ``exit()`` hands it the exception the ``with``
    block ended with and waits for ``__aexit__``. Structured concurrency is kept: the
    same task enters and exits it. An interrupt while entering or exiting cancels the task,
    which still leaves the context manager properly (a stream sends its cancel).
    """

    def __init__(self, portal: Portal, make: Callable[[], AbstractAsyncContextManager[T]]) -> None:
        self._portal = portal
        self._make = make
        self._control = _Control()
        self._entered: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._exit_info: BaseException | None = None
        self._exit_requested: anyio.Event | None = None
        self._outcome: _Outcome[bool] | None = None  # set when the task ends
        self.state = "new"

    async def _hold(self) -> None:
        try:
            with anyio.CancelScope() as scope:
                self._control.attach(scope)
                self._outcome = await self._enter_and_exit()
        finally:
            if not self._entered.done():
                self._entered.cancel()  # cancelled before it entered
            self._control.finished.set()

    async def _enter_and_exit(self) -> _Outcome[bool]:
        cancelled = anyio.get_cancelled_exc_class()
        self._exit_requested = anyio.Event()
        try:
            cm = self._make()
            value = await cm.__aenter__()
        except cancelled:
            raise
        except BaseException as exc:  # delivered to the caller
            self._entered.set_exception(exc)
            return _Outcome(False)
        self._entered.set_result(value)
        try:
            await self._exit_requested.wait()
        except cancelled as exc:  # the caller gave up, or the client is closing
            await cm.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        passed = self._exit_info
        try:
            suppress = await cm.__aexit__(
                None if passed is None else type(passed),
                passed,
                None if passed is None else passed.__traceback__,
            )
        except BaseException as raised:  # delivered to the caller
            if passed is not None and pick_exception(raised) is passed:
                return _Outcome(False)  # the block's own exception, passed through
            if isinstance(raised, cancelled):
                raise
            return _Outcome(error=raised)
        return _Outcome(bool(suppress))

    def enter(self) -> T:
        """Enter the async context manager; return what its ``__aenter__`` returned."""
        check_not_in_event_loop()
        if self.state != "new":
            raise RuntimeError("this context manager can be entered only once")
        if self._portal.closed:
            raise _closed_error()
        self.state = "entering"
        try:
            self._portal.spawn(self._hold)
        except BaseException:
            self.state = "exited"
            raise
        self._portal._controls.add(self._control)
        try:
            value = self._entered.result()
        except concurrent.futures.CancelledError:
            self.state = "exited"
            raise _closed_error() from None
        except BaseException as exc:
            self.state = "exited"
            if self._entered.done() and self._entered.exception() is exc:
                _reraise(exc)  # __aenter__ failed
            self._control.abandon(self._portal)  # interrupted while entering
            raise
        self.state = "open"
        return value

    def exit(self, exc: BaseException | None) -> bool:
        """Leave it with the ``with`` block's exception (or ``None``); ``True`` suppresses."""
        if self.state != "open":
            return False
        self.state = "exited"
        assert self._exit_requested is not None
        self._exit_info = exc
        try:
            self._portal.spawn(self._exit_requested.set)
        except LMStudioConnectionError:
            return False  # the client was closed: the stream was left then
        try:
            self._control.finished.wait()
        except BaseException:
            self._control.abandon(self._portal)
            raise
        outcome = self._outcome
        if outcome is None:
            return False  # cancelled: the client was closed meanwhile
        return outcome.unwrap()
