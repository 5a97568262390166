"""Dropped sockets, broken frames, reconnection with backoff, closing, exception groups.

In memory with the fake server (asyncio, Trio, and Trio's autojump clock where time
matters). A dropped socket is the memory transport's ``drop()``: both ends fail at once,
as when the network goes away.
"""

# pytest.raises() wraps whole channel scopes on purpose: the error must come out of the
# scope's exit, after the cancel reached the server.
# ruff: noqa: PT012

from __future__ import annotations

import logging
import sys
from typing import Any

import anyio
import pytest
from _fake_server import (
    FakeServer,
    ServerChannel,
    backend,
    connected,
    fragment,
    hang,
    memory_client,
    predict_parameter,
    serving,
)

from lmstudio_sdk import (
    AsyncClient,
    LMStudioConnectionError,
    LMStudioError,
    RemoteProtocolError,
)
from lmstudio_sdk._async._exceptions import exceptions_unwrapped, pick_exception
from lmstudio_sdk.protocol.endpoints import llm, system

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup, ExceptionGroup


@pytest.fixture(params=["asyncio", "trio", "autojump"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    return backend(request.param)


async def version(_: Any) -> system.VersionResult:
    return system.VersionResult("0.3.30", 1)


def scripted() -> FakeServer:
    server = FakeServer()
    server.rpc["system.version"] = version
    server.rpc["llm.listLoaded"] = hang

    async def stream(ch: ServerChannel) -> None:
        await ch.send(fragment("partial"))
        await anyio.sleep_forever()

    server.channels["llm.predict"] = stream
    return server


# ---------------------------------------------------------------------------- dropped sockets


async def test_dropped_socket_fails_everything_in_flight_then_reconnects() -> None:
    server = scripted()
    errors: dict[str, BaseException] = {}
    async with connected(server) as client:
        conn = client.llm._connection()

        async def call() -> None:
            try:
                await conn.call(llm.LIST_LOADED)
            except LMStudioError as exc:
                errors["call"] = exc

        async def stream() -> None:
            try:
                async with conn.open_channel(llm.PREDICT, predict_parameter()) as channel:
                    async for _ in channel:
                        pass
            except LMStudioError as exc:
                errors["channel"] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            tg.start_soon(stream)
            await anyio.wait_all_tasks_blocked()
            start = anyio.current_time()
            server.drop("llm")
        # No timer was involved: on the autojump clock, no time passed at all.
        assert anyio.current_time() - start < 1
        assert type(errors["call"]) is LMStudioConnectionError
        assert type(errors["channel"]) is LMStudioConnectionError
        assert "lost the llm connection to ws://fake.invalid:1234/llm" in str(errors["call"])
        assert not conn.connected
        # Another namespace was never affected; the next llm call reconnects.
        assert (await client.system.version()).build == 1
        server.rpc["llm.listLoaded"] = _returning([])
        assert await conn.call(llm.LIST_LOADED) == []
    assert server.connects["llm"] == 2


async def test_calls_after_a_drop_reconnect_without_waiting() -> None:
    server = scripted()
    async with connected(server) as client:
        await client.system.version()
        server.drop()
        await anyio.wait_all_tasks_blocked()
        start = anyio.current_time()
        assert (await client.system.version()).version == "0.3.30"
        assert anyio.current_time() - start < 0.1  # a drop is not a failed attempt
    assert server.connects["system"] == 2


async def test_failed_attempts_back_off_and_name_the_place_and_reason() -> None:
    server = scripted()
    async with connected(server) as client:
        server.refuse_connections = True
        for _ in range(3):
            with pytest.raises(LMStudioConnectionError) as caught:
                await client.system.version()
            assert caught.value.attempts == (
                ("ws://fake.invalid:1234/system", "connection refused"),
            )
        server.refuse_connections = False
        assert (await client.system.version()).build == 1
        gaps = [
            b - a
            for a, b in zip(server.connect_attempts, server.connect_attempts[1:], strict=False)
        ]
        # Waits of 0.5 s then 1 s before the 2nd and 3rd attempts, 2 s before the 4th.
        assert gaps[0] >= 0.5
        assert gaps[1] >= 1.0
        assert gaps[2] >= 2.0
        if _autojump():
            assert gaps == pytest.approx([0.5, 1.0, 2.0], abs=0.01)
        # Success resets the backoff: after a drop the next connect is immediate.
        server.drop()
        await anyio.wait_all_tasks_blocked()
        before = anyio.current_time()
        await client.system.version()
        assert anyio.current_time() - before < 0.1


async def test_concurrent_callers_share_one_failed_attempt() -> None:
    server = scripted()
    failures: list[LMStudioConnectionError] = []
    async with connected(server) as client:
        server.refuse_connections = True

        async def call() -> None:
            try:
                await client.system.version()
            except LMStudioConnectionError as exc:
                failures.append(exc)

        start = anyio.current_time()
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(call)
        assert anyio.current_time() - start < 0.5  # nobody waited for a backoff
    assert len(failures) == 5
    assert len(server.connect_attempts) == 1
    assert len({id(f) for f in failures}) == 5
    assert all(f.attempts == failures[0].attempts for f in failures)


async def test_broken_envelope_fails_the_socket_with_remote_protocol_error() -> None:
    server = scripted()
    errors: list[BaseException] = []
    async with connected(server) as client:
        conn = client.llm._connection()

        async def call() -> None:
            try:
                await conn.call(llm.LIST_LOADED)
            except LMStudioError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            tg.start_soon(call)
            await anyio.wait_all_tasks_blocked()
            await server.connections("llm")[0].send_raw('{"type": "rpcResult"}')
        assert [type(e) for e in errors] == [RemoteProtocolError, RemoteProtocolError]
        assert "callId" in str(errors[0])
        assert errors[0] is not errors[1]  # each waiter gets its own exception object
        await anyio.wait_all_tasks_blocked()
        assert server.connections("llm") == []  # we dropped the socket
        server.rpc["llm.listLoaded"] = _returning([])
        assert await conn.call(llm.LIST_LOADED) == []
    assert server.connects["llm"] == 2


async def test_not_json_fails_the_socket_too() -> None:
    server = scripted()
    async with connected(server) as client:
        conn = client.llm._connection()
        with pytest.raises(RemoteProtocolError):
            async with conn.open_channel(llm.PREDICT, predict_parameter()) as channel:
                await channel.receive()
                await server.connections("llm")[0].send_raw("this is not JSON")
                await channel.receive()


async def test_unknown_message_types_are_logged_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = scripted()
    async with connected(server) as client:
        await client.system.version()
        with caplog.at_level(logging.WARNING, logger="lmstudio_sdk"):
            await server.connections("system")[0].send_raw('{"type": "somethingNew", "x": 1}')
            assert (await client.system.version()).build == 1
    assert any("'somethingNew'" in r.getMessage() for r in caplog.records)
    assert server.connects["system"] == 1


# ---------------------------------------------------------------------------- closing


async def test_closing_the_client_fails_outside_work_and_leaves_no_task() -> None:
    server = scripted()
    errors: list[BaseException] = []
    async with serving(server):
        await anyio.wait_all_tasks_blocked()
        tasks_before = len(anyio.get_running_tasks())
        async with anyio.create_task_group() as tg, memory_client(server) as client:
            await client.system.version()

            async def outlive() -> None:  # runs in a task group around the client
                try:
                    await client.llm._connection().call(llm.LIST_LOADED)
                except LMStudioConnectionError as exc:
                    errors.append(exc)

            tg.start_soon(outlive)
            await anyio.wait_all_tasks_blocked()
        await anyio.wait_all_tasks_blocked()
        assert len(anyio.get_running_tasks()) == tasks_before
        assert server.connections("system") == []
        assert server.connections("llm") == []
        with pytest.raises(LMStudioConnectionError, match="closed"):
            await client.system.version()
    assert len(errors) == 1
    assert "the client was closed" in str(errors[0])


async def test_client_must_be_entered_and_only_once() -> None:
    server = scripted()
    client = memory_client(server)
    with pytest.raises(LMStudioConnectionError, match="not open yet"):
        await client.system.version()
    async with serving(server):
        async with client:
            pass
        with pytest.raises(RuntimeError, match="only once"):
            async with client:
                pass


# ---------------------------------------------------------------------------- exception groups


async def test_user_exception_in_client_block_escapes_as_itself() -> None:
    server = scripted()

    class Mine(Exception):
        pass

    async with serving(server):
        with pytest.raises(Mine):
            # The fake never answers the cancel, so keep the bounded drain short.
            async with memory_client(server, drain_timeout=0.2) as client:
                await client.system.version()
                async with client.llm._connection().open_channel(
                    llm.PREDICT, predict_parameter()
                ) as channel:
                    await channel.receive()
                    raise Mine


async def test_outer_cancellation_passes_through_the_client_unchanged() -> None:
    server = scripted()
    server.rpc["system.version"] = hang
    ran_after: list[str] = []
    async with serving(server):
        with anyio.move_on_after(0.2) as scope:
            async with memory_client(server) as client:
                await client.system.version(timeout=None)
            ran_after.append("after the client block")
    assert scope.cancelled_caught
    assert ran_after == []


async def test_background_failure_during_connect_is_not_a_group() -> None:
    async def explode(url: str, task_group: Any) -> Any:
        async def fail_in_group(*, task_status: Any) -> None:
            raise LMStudioConnectionError("refused", attempts=[(url, "boom")])

        return await task_group.start(fail_in_group)

    async with AsyncClient("localhost:1", transport_factory=explode) as client:
        with pytest.raises(LMStudioConnectionError) as caught:
            await client.system.version()
    assert caught.value.attempts == (("ws://localhost:1/system", "boom"),)


async def test_unwrap_prefers_real_errors_over_cancellation() -> None:
    cancelled = anyio.get_cancelled_exc_class()
    with anyio.CancelScope() as scope:
        scope.cancel()
        try:
            await anyio.lowlevel.checkpoint()
        except cancelled as exc:
            cancel_exc: BaseException = exc
            real = ValueError("real")
            assert pick_exception(BaseExceptionGroup("g", [cancel_exc, real])) is real
            assert pick_exception(BaseExceptionGroup("g", [cancel_exc])) is cancel_exc
            raise


def test_unwrap_rules() -> None:
    a, b = ValueError("a"), KeyError("b")
    nested = ExceptionGroup("outer", [ExceptionGroup("inner", [a]), b])
    assert pick_exception(nested) is a
    assert "also raised at the same time: KeyError" in "".join(getattr(a, "__notes__", [""]))
    stop = KeyboardInterrupt()
    assert pick_exception(BaseExceptionGroup("g", [ValueError(), stop])) is stop
    with pytest.raises(ValueError, match="only") as caught, exceptions_unwrapped():
        raise ExceptionGroup("g", [ValueError("only")])
    assert not isinstance(caught.value.__context__, BaseExceptionGroup)
    plain = RuntimeError("plain")
    assert pick_exception(plain) is plain


def _returning(value: Any) -> Any:
    async def handler(_: Any) -> Any:
        return value

    return handler


def _autojump() -> bool:
    try:
        import trio.testing

        return isinstance(trio.lowlevel.current_clock(), trio.testing.MockClock)
    except (ImportError, RuntimeError):
        return False
