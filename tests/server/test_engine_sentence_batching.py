"""Dynamic batching of embedding requests (``engines._batching``), without the model.

A recording ``run_batch`` stands for the forward pass. Timing runs on Trio's autojump
clock (no sockets here): virtual time shows how long a request waited for company, with
no real-time assertion.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import anyio
import anyio.lowlevel
import pytest

from lmstudio_sdk.server.engines._batching import DEFAULT_MAX_WAIT, DynamicBatcher


@pytest.fixture
def anyio_backend(autojump_backend: tuple[str, dict[str, object]]) -> tuple[str, dict[str, object]]:
    return autojump_backend


class Recorder:
    """Doubles each number; fails the item ``-1`` alone, and a whole batch holding ``-2``."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        if -2 in items:
            raise RuntimeError("the batch holding -2 fails as a whole")
        return [ValueError(f"cannot double {i}") if i == -1 else i * 2 for i in items]


async def _submit_all(batcher: DynamicBatcher[int, int], items: list[int]) -> list[object]:
    results: list[object] = [None] * len(items)

    async def one(index: int, item: int) -> None:
        try:
            results[index] = await batcher.submit(item)
        except Exception as exc:
            results[index] = exc

    async with anyio.create_task_group() as tg:
        for index, item in enumerate(items):
            tg.start_soon(one, index, item)
    return results


async def test_concurrent_requests_share_one_batch_and_keep_their_order() -> None:
    recorder = Recorder()
    batcher = DynamicBatcher(recorder, max_wait=0.01)
    results = await _submit_all(batcher, list(range(10)))
    assert results == [i * 2 for i in range(10)]
    assert [sorted(batch) for batch in recorder.batches] == [list(range(10))]


async def test_batches_are_capped_and_queued_requests_form_the_next_batch() -> None:
    recorder = Recorder()
    batcher = DynamicBatcher(recorder, max_wait=0.01, max_batch=4)
    results = await _submit_all(batcher, list(range(10)))
    assert results == [i * 2 for i in range(10)]
    # Trio starts the tasks in no set order: the batch sizes and their union are fixed.
    assert [len(batch) for batch in recorder.batches] == [4, 4, 2]
    assert sorted(x for batch in recorder.batches for x in batch) == list(range(10))


async def test_one_items_error_is_its_own() -> None:
    batcher = DynamicBatcher(Recorder(), max_wait=0.01)
    results = await _submit_all(batcher, [1, -1, 3])
    assert results[0] == 2
    assert results[2] == 6
    assert isinstance(results[1], ValueError)
    assert "cannot double -1" in str(results[1])


async def test_a_failing_batch_is_retried_item_by_item() -> None:
    recorder = Recorder()
    batcher = DynamicBatcher(recorder, max_wait=0.01)
    results = await _submit_all(batcher, [1, -2, 3])
    assert results[0] == 2
    assert results[2] == 6
    assert isinstance(results[1], RuntimeError)
    first, *retries = recorder.batches
    assert sorted(first) == [-2, 1, 3]
    assert retries == [[x] for x in first]


async def test_a_lone_request_waits_no_longer_than_max_wait() -> None:
    batcher = DynamicBatcher(Recorder(), max_wait=0.25)
    start = anyio.current_time()
    assert await batcher.submit(21) == 42
    assert anyio.current_time() - start <= 0.25


async def test_the_default_wait_is_a_few_milliseconds() -> None:
    batcher = DynamicBatcher(Recorder())
    start = anyio.current_time()
    assert await batcher.submit(1) == 2
    assert anyio.current_time() - start <= DEFAULT_MAX_WAIT <= 0.005


async def test_a_full_batch_does_not_wait() -> None:
    recorder = Recorder()
    batcher = DynamicBatcher(recorder, max_wait=3600, max_batch=3)
    start = anyio.current_time()
    assert await _submit_all(batcher, [1, 2, 3]) == [2, 4, 6]
    assert anyio.current_time() - start < 1
    assert [sorted(batch) for batch in recorder.batches] == [[1, 2, 3]]


async def test_a_cancelled_queued_request_is_not_computed() -> None:
    recorder = Recorder()
    batcher = DynamicBatcher(recorder, max_wait=1.0)
    results: dict[int, int] = {}

    async def one(item: int, give_up_after: float) -> None:
        with anyio.move_on_after(give_up_after):
            results[item] = await batcher.submit(item)

    async with anyio.create_task_group() as tg:
        tg.start_soon(one, 1, math.inf)
        await anyio.lowlevel.checkpoint()
        tg.start_soon(one, 2, 0.5)  # gives up while the batch is still gathering
        tg.start_soon(one, 3, math.inf)
    assert results == {1: 2, 3: 6}
    assert [sorted(batch) for batch in recorder.batches] == [[1, 3]]


async def test_a_cancelled_driver_does_not_strand_the_others() -> None:
    recorder = Recorder()
    batcher = DynamicBatcher(recorder, max_wait=1.0, max_batch=2)
    results: dict[int, int] = {}
    cancelled: list[int] = []

    async def one(item: int, give_up_after: float) -> None:
        with anyio.move_on_after(give_up_after) as scope:
            results[item] = await batcher.submit(item)
        if scope.cancelled_caught:
            cancelled.append(item)

    async with anyio.create_task_group() as tg:
        tg.start_soon(one, 1, 0)  # drives the first batch, cancelled all along
        await anyio.lowlevel.checkpoint()
        for item in (2, 3, 4):
            tg.start_soon(one, item, math.inf)
    # The driver's batch ran (a worker thread is not interrupted), its caller saw the
    # cancellation, and the queued requests were served by the next drivers.
    assert cancelled == [1]
    assert results == {2: 4, 3: 6, 4: 8}
    assert sorted(x for batch in recorder.batches for x in batch) == [1, 2, 3, 4]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        DynamicBatcher(Recorder(), max_batch=0)
