"""``act()`` at the edges: cancellation while a tool runs, per-tool timeouts, the handler rule.

Against the in-memory fake LM Studio (so the server's view is recorded: which predictions
were opened, which were cancelled, what history the model was sent). Tests with blocking
sync tools run on asyncio and Trio with real clocks (a worker thread and Trio's mock clock
do not mix); the others also on Trio's autojump clock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from _fake_server import (
    FakeServer,
    ServerChannel,
    backend,
    connected,
    fragment,
    llm_instance,
    success,
)

from lmstudio_sdk import Tool
from lmstudio_sdk.protocol.endpoints import llm, shared

MODEL = "smollm2-135m-instruct"
TIMING = pytest.mark.parametrize("anyio_backend", ["asyncio", "trio", "autojump"], indirect=True)
STALL = 5.0  # seconds: far more than any of these needs; reaching it means a hang


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    return backend(request.param)


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at the end of the test: lets abandoned tool threads finish."""
    event = threading.Event()
    yield event
    event.set()


def fake_server() -> FakeServer:
    server = FakeServer()

    async def already_loaded(ch: ServerChannel) -> None:
        await ch.send(llm.GetOrLoadAlreadyLoaded(llm_instance(MODEL)))

    server.channels["llm.getOrLoad"] = already_loaded
    return server


def tool_call(name: str, call_id: str) -> llm.PredictToolCallGenerationEnd:
    return llm.PredictToolCallGenerationEnd(shared.ToolCallRequest(name, call_id, {}))


class Model:
    """A fake model: calls ``tools`` in its first round, answers plainly after; records."""

    def __init__(self, *tools: str, fragments: int = 50) -> None:
        self.tools = tools
        self.fragments = fragments
        self.histories: list[list[Any]] = []

    async def __call__(self, ch: ServerChannel) -> None:
        self.histories.append(list(ch.parameter.history.messages))
        if len(self.histories) == 1:
            for index, name in enumerate(self.tools):
                await ch.send(tool_call(name, f"c{index}"))
            # Streams until the client cancels (or the tools are done and it stops reading):
            # a cancelled prediction ends cleanly, with stopReason userStopped.
            for _ in range(self.fragments):
                if ch.cancelled.is_set():
                    await ch.send(success("userStopped"))
                    return
                await ch.send(fragment("."))
                with anyio.move_on_after(0.01):
                    await ch.cancelled.wait()
            await ch.send(success("toolCalls"))
        else:
            await ch.send(fragment("done"))
            await ch.send(success("eosFound"))

    def tool_results(self) -> list[str]:
        """What the model was told about the tools in round 2, one text per result."""
        [_, second] = self.histories
        return [part.content for part in second[-1].content]


async def test_cancelling_act_abandons_a_blocked_sync_tool_and_starts_nothing_new(
    anyio_backend: Any, release: threading.Event
) -> None:
    server = fake_server()
    model_script = Model("block", fragments=1000)
    server.channels["llm.predict"] = model_script
    started = threading.Event()
    finished = threading.Event()

    def block() -> str:
        started.set()
        release.wait()
        finished.set()
        return "late"

    reported: list[str] = []
    async with connected(server) as client:
        model = await client.llm.model(MODEL)
        with anyio.fail_after(STALL):  # joining the blocked thread would hang here
            async with anyio.create_task_group() as tg:

                async def run() -> None:
                    await model.act(
                        "Go",
                        [block],
                        on_message=lambda m: reported.append(m.role),
                        on_prediction_completed=lambda r: reported.append("completed"),
                        on_round_end=lambda i: reported.append(f"end {i}"),
                        on_round_start=lambda i: reported.append(f"start {i}"),
                    )

                tg.start_soon(run)
                await anyio.to_thread.run_sync(started.wait, STALL)
                tg.cancel_scope.cancel()
        # act() is over while the tool's thread is still blocked: abandoned, not joined.
        assert not finished.is_set()
        # The client is still usable afterwards.
        assert (await client.llm.model(MODEL)).identifier == MODEL
    assert reported == ["start 0"]  # nothing of the cancelled round, no round 2
    assert len(model_script.histories) == 1
    assert server.cancels == ["llm.predict"]


async def test_a_sync_tool_over_its_timeout_becomes_an_error_for_the_model(
    anyio_backend: Any, release: threading.Event
) -> None:
    server = fake_server()
    model_script = Model("block", "quick")
    server.channels["llm.predict"] = model_script

    def block() -> str:
        release.wait()
        return "late"

    def quick() -> str:
        return "fine"

    async with connected(server) as client:
        model = await client.llm.model(MODEL)
        with anyio.fail_after(STALL):
            result = await model.act(
                "Go", [Tool.from_function(block, timeout=0.2), quick], tool_timeout=60
            )
    assert result.rounds == 2
    timed_out, fine = model_script.tool_results()
    assert "'block' did not finish within its timeout of 0.2 s" in timed_out
    assert fine == '"fine"'
    assert server.cancels == []


@TIMING
async def test_tool_timeout_is_the_default_and_a_tool_s_own_timeout_wins(
    anyio_backend: Any,
) -> None:
    server = fake_server()
    model_script = Model("slow", "patient")
    server.channels["llm.predict"] = model_script

    async def slow() -> str:
        await anyio.sleep(3600)
        return "never"

    async def patient() -> str:
        await anyio.sleep(0.5)
        return "waited"

    seen: list[type[Exception]] = []
    async with connected(server) as client:
        model = await client.llm.model(MODEL)
        with anyio.fail_after(STALL):
            await model.act(
                "Go",
                [slow, {"name": "patient", "implementation": patient, "timeout": 30}],
                tool_timeout=0.2,
                handle_invalid_tool_request=lambda exc, request: seen.append(type(exc)),
            )
    slow_text, patient_text = model_script.tool_results()
    assert "'slow' did not finish within its timeout of 0.2 s" in slow_text
    assert patient_text == '"waited"'
    [error_type] = seen
    assert issubclass(error_type, TimeoutError)


@TIMING
async def test_a_handler_returning_none_keeps_the_default_error_text(anyio_backend: Any) -> None:
    server = fake_server()
    model_script = Model("broken", "ghost")
    server.channels["llm.predict"] = model_script

    def broken() -> None:
        raise RuntimeError("disk full")

    logged: list[str] = []
    async with connected(server) as client:
        model = await client.llm.model(MODEL)
        await model.act(
            "Go", [broken], handle_invalid_tool_request=lambda exc, req: logged.append(str(exc))
        )
    assert len(logged) == 2
    broken_text, ghost_text = model_script.tool_results()
    assert broken_text == "\"Error: tool 'broken' raised RuntimeError: disk full\""
    assert ghost_text.startswith("\"Error: there is no tool named 'ghost'")


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan"), "5", True])
async def test_bad_tool_timeouts_are_refused_before_anything_is_sent(
    anyio_backend: Any, bad: Any
) -> None:
    def tool() -> None:
        pass

    with pytest.raises(ValueError, match="tool timeout must be a number of seconds > 0"):
        Tool.from_function(tool, timeout=bad)
    server = fake_server()
    model_script = Model()
    server.channels["llm.predict"] = model_script
    async with connected(server) as client:
        model = await client.llm.model(MODEL)
        with pytest.raises(ValueError, match="tool timeout must be a number of seconds > 0"):
            await model.act("Go", [tool], tool_timeout=bad)
    assert model_script.histories == []
