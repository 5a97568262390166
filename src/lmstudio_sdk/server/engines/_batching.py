"""Dynamic batching: concurrent single-item requests share one worker-thread call.

An engine whose forward pass is cheaper per item in a batch (the sentence engine: one
matrix product for many texts instead of many small ones) hands each request to a
:class:`DynamicBatcher`. Requests that arrive together are run together, as inference
servers do:

* the first request after an idle period waits at most ``max_wait`` seconds for company
  (less if ``max_batch`` requests are already queued), then its batch runs;
* requests that arrive while a batch runs queue up and form the next batch, which starts
  as soon as the running one ends (no extra wait: they have waited already);
* one item's failure is its own request's error, never its neighbours'.

There is no background task: the request that opens a batch drives it (shielded from
cancellation for at most ``max_wait`` plus the batch's run time, which a worker thread
cannot be interrupted in anyway) and, when it is done, hands the driving to the oldest
queued request. A cancelled request that is still queued is dropped from the queue.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

__all__ = ["DEFAULT_MAX_BATCH", "DEFAULT_MAX_WAIT", "DynamicBatcher"]

T = TypeVar("T")
R = TypeVar("R")

# 2 ms: a few per cent of one short text's forward pass (~5-20 ms on a laptop core), long
# enough for the requests of one client burst (sent back to back) to meet.
DEFAULT_MAX_WAIT = 0.002
DEFAULT_MAX_BATCH = 32


class _Pending(Generic[T, R]):
    __slots__ = ("driver", "error", "item", "result", "wake")

    def __init__(self, item: T) -> None:
        self.item = item
        self.result: R | None = None
        self.error: BaseException | None = None
        self.driver = False
        self.wake = anyio.Event()


class DynamicBatcher(Generic[T, R]):
    """Runs ``run_batch(items)`` in a worker thread for requests that arrive together.

    ``run_batch`` returns one entry per item, in order: a result, or the exception that
    item failed with (raised to that item's caller only). If ``run_batch`` itself raises,
    every item of the batch is retried alone, so that a bad item cannot fail the others.
    """

    def __init__(
        self,
        run_batch: Callable[[Sequence[T]], Sequence[R | BaseException]],
        *,
        max_wait: float = DEFAULT_MAX_WAIT,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        if max_wait < 0 or max_batch < 1:
            raise ValueError("max_wait must be >= 0 and max_batch >= 1")
        self._run_batch = run_batch
        self.max_wait = max_wait
        self.max_batch = max_batch
        self._queue: list[_Pending[T, R]] = []
        self._driving = False
        self._full: anyio.Event | None = None
        self.batches = 0
        """How many batches have run (for tests and benchmarks)."""

    async def submit(self, item: T) -> R:
        """The result for ``item``, computed in a batch with its concurrent neighbours."""
        request: _Pending[T, R] = _Pending(item)
        self._queue.append(request)
        if self._full is not None and len(self._queue) >= self.max_batch:
            self._full.set()
        if not self._driving:
            self._driving = True
            request.driver = True
            with anyio.CancelScope(shield=True):
                await self._drive(wait=True)
        else:
            try:
                await request.wake.wait()
            except BaseException:
                if request.driver:
                    # Woken to drive, then cancelled: drive anyway, or the queue stalls.
                    with anyio.CancelScope(shield=True):
                        await self._drive(wait=False)
                elif request in self._queue:
                    self._queue.remove(request)
                raise
            if request.driver:
                with anyio.CancelScope(shield=True):
                    await self._drive(wait=False)
        await anyio.lowlevel.checkpoint_if_cancelled()
        if request.error is not None:
            raise request.error
        return request.result  # type: ignore[return-value]

    async def _drive(self, *, wait: bool) -> None:
        try:
            if wait and self.max_wait > 0 and len(self._queue) < self.max_batch:
                self._full = anyio.Event()
                with anyio.move_on_after(self.max_wait):
                    await self._full.wait()
                self._full = None
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
            outcomes = await anyio.to_thread.run_sync(self._run_safely, [r.item for r in batch])
            self.batches += 1
            for request, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    request.error = outcome
                else:
                    request.result = outcome
                if not request.driver:
                    request.wake.set()
        finally:
            if self._queue:
                successor = self._queue[0]
                successor.driver = True
                successor.wake.set()
            else:
                self._driving = False

    def _run_safely(self, items: list[T]) -> list[R | BaseException]:
        try:
            outcomes = list(self._run_batch(items))
            if len(outcomes) != len(items):
                raise RuntimeError(f"a batch of {len(items)} returned {len(outcomes)} results")
            return outcomes
        except Exception as exc:
            if len(items) == 1:
                return [exc]
        return [self._run_safely([item])[0] for item in items]
