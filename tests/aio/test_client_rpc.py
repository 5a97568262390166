"""RPCs through ``Connection.call``: results, server errors, timeouts.

Over the in-memory transport with a ``ServerSession``-based fake server in the same loop,
on asyncio, Trio, and Trio's autojump clock (timeouts then cost no real time). No test
sleeps to wait for something: a hung server is a handler that never returns.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest
from _fake_server import FakeServer, backend, connected, hang, llm_instance

from lmstudio_sdk import (
    LMStudioModelNotFoundError,
    LMStudioServerError,
    LMStudioTimeoutError,
    LocalProtocolError,
    RemoteProtocolError,
)
from lmstudio_sdk.protocol.endpoints import RpcSpec, llm, shared, system
from lmstudio_sdk.protocol.wire import SerializedError


@pytest.fixture(params=["asyncio", "trio", "autojump"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    return backend(request.param)


AUTOJUMP_ONLY = pytest.mark.parametrize("anyio_backend", ["autojump"], indirect=True)


async def version(_: Any) -> system.VersionResult:
    return system.VersionResult("0.3.30", 2)


async def test_rpc_returns_structured_result() -> None:
    server = FakeServer()
    server.rpc["system.version"] = version
    server.rpc["llm.listLoaded"] = _returning([llm_instance("a"), llm_instance("b")])
    async with connected(server) as client:
        result = await client.system.version()
        assert (result.version, result.build) == ("0.3.30", 2)
        loaded = await client.llm._connection().call(llm.LIST_LOADED)
        assert [info.identifier for info in loaded] == ["a", "b"]
    # The void parameter of both endpoints was left out of the frames.
    calls = [f for f in server.received("system") if f.get("type") == "rpcCall"]
    assert calls == [{"type": "rpcCall", "endpoint": "version", "callId": 1}]


async def test_auth_frame_precedes_every_call_and_sockets_share_one_identity() -> None:
    server = FakeServer()
    server.rpc["system.version"] = version
    server.rpc["llm.listLoaded"] = _returning([])
    # Both sockets are opened concurrently.
    async with connected(server) as client, anyio.create_task_group() as tg:
        tg.start_soon(client.system.version)
        tg.start_soon(client.llm.list_loaded)
    for namespace in ("system", "llm"):
        first = server.received(namespace)[0]
        assert set(first) == {"authVersion", "clientIdentifier", "clientPasskey"}
    assert server.connects == {"system": 1, "llm": 1}
    assert len(set(server.identities)) == 1
    assert server.identities[0].startswith("guest:")


async def test_concurrent_calls_on_one_socket_are_routed_by_id() -> None:
    server = FakeServer()
    release: dict[str, anyio.Event] = {}

    async def tokenize(parameter: shared.TokenizeParameter) -> shared.TokenizeResult:
        event = release.setdefault(parameter.input_string, anyio.Event())
        await event.wait()
        return shared.TokenizeResult([len(parameter.input_string)])

    server.rpc["llm.tokenize"] = tokenize
    results: dict[str, list[int]] = {}
    async with connected(server) as client:
        conn = client.llm._connection()

        async def call(text: str) -> None:
            spec = shared.ModelSpecifierQuery(shared.ModelQuery())
            result = await conn.call(llm.TOKENIZE, shared.TokenizeParameter(spec, text))
            results[text] = result.tokens

        async with anyio.create_task_group() as tg:
            for text in ("a", "bb", "ccc"):
                tg.start_soon(call, text)
            await anyio.wait_all_tasks_blocked()
            for text in ("ccc", "a", "bb"):  # answered out of order
                release[text].set()
                await anyio.wait_all_tasks_blocked()
    assert results == {"a": [1], "bb": [2], "ccc": [3]}
    assert server.connects["llm"] == 1


async def test_rpc_error_becomes_server_error_with_display_fields() -> None:
    server = FakeServer()

    async def fail(_: Any) -> None:
        raise LMStudioServerError(
            "Cannot do that",
            cause="because",
            suggestion="try something else",
            code="generic.engineDoesNotSupportFeature",
            display_data={"code": "generic.engineDoesNotSupportFeature", "feature": "x"},
        )

    server.rpc["system.notify"] = fail
    async with connected(server) as client:
        with pytest.raises(LMStudioServerError) as caught:
            await client.system.notify("hello")
    error = caught.value
    assert type(error) is LMStudioServerError
    assert (error.title, error.cause, error.suggestion) == (
        "Cannot do that",
        "because",
        "try something else",
    )
    assert error.code == "generic.engineDoesNotSupportFeature"
    assert error.endpoint == "system.notify"
    assert "try something else" in str(error)


@pytest.mark.parametrize("code", ["generic.noModelMatchingQuery", "generic.pathNotFound"])
async def test_model_not_found_codes_raise_model_not_found(code: str) -> None:
    server = FakeServer()

    async def missing(_: Any) -> None:
        raise LMStudioServerError("No model found", code=code, display_data={"code": code})

    server.rpc["llm.getModelInfo"] = missing
    async with connected(server) as client:
        with pytest.raises(LMStudioModelNotFoundError) as caught:
            await client.llm.get_model_info("nope")
    assert caught.value.code == code


async def test_bad_parameter_is_a_local_error_and_nothing_is_sent() -> None:
    server = FakeServer()
    server.rpc["system.version"] = version
    async with connected(server) as client:
        conn = client.system._connection()
        await client.system.version()
        with pytest.raises(LocalProtocolError, match=r"parameter of system\.notify"):
            await conn.call(system.NOTIFY, {"title": 5})
        assert (await client.system.version()).build == 2
    assert [f.get("endpoint") for f in server.received("system")[1:]] == ["version", "version"]


async def test_invalid_result_fails_only_that_call() -> None:
    server = FakeServer()
    server.rpc["system.version"] = version

    async def bad_info(_: Any) -> Any:
        return system.SystemInfo(pid=1, is_daemon=False, version="1")

    server.rpc["system.info"] = bad_info

    async with connected(server) as client:
        conn = client.system._connection()
        # The server answers info with a payload that is not a VersionResult.
        bad_spec = RpcSpec("system", "info", None, system.VersionResult)
        with pytest.raises(RemoteProtocolError, match=r"result of system\.info"):
            await conn.call(bad_spec)
        assert (await client.system.version()).version == "0.3.30"
        assert conn.connected
    assert server.connects["system"] == 1


# ---------------------------------------------------------------------------- timeouts


async def test_hung_server_times_out_and_late_reply_is_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = FakeServer()
    answer = anyio.Event()

    async def late(_: Any) -> system.VersionResult:
        await answer.wait()
        return system.VersionResult("late", 0)

    server.rpc["system.version"] = late
    server.rpc["system.info"] = _returning(system.SystemInfo(pid=7, is_daemon=True, version="1"))
    async with connected(server) as client:
        with pytest.raises(LMStudioTimeoutError, match=r"system\.version.*0\.5 s"):
            await client.system.version(timeout=0.5)
        answer.set()  # the late reply arrives now; it must be dropped quietly
        with caplog.at_level(logging.DEBUG, logger="lmstudio_sdk"):
            info = await client.system.info()
        assert info.pid == 7
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_client_default_timeout_applies() -> None:
    server = FakeServer()
    server.rpc["system.version"] = hang
    async with connected(server, timeout=0.5) as client:
        start = anyio.current_time()
        with pytest.raises(LMStudioTimeoutError):
            await client.system.version()
        assert 0.5 <= anyio.current_time() - start < 5


@AUTOJUMP_ONLY
async def test_default_timeout_is_sixty_seconds() -> None:
    server = FakeServer()
    server.rpc["system.version"] = hang
    async with connected(server, timeout=60.0) as client:
        start = anyio.current_time()
        with pytest.raises(LMStudioTimeoutError, match="60 s"):
            await client.system.version()
        assert anyio.current_time() - start == pytest.approx(60.0)


async def test_unknown_endpoint_warning_is_logged_and_the_timeout_names_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = FakeServer()  # no handler for system.info: only a communicationWarning comes back
    with caplog.at_level(logging.WARNING, logger="lmstudio_sdk"):
        async with connected(server) as client:
            with pytest.raises(LMStudioTimeoutError, match="the server warned: no handler"):
                await client.system.info(timeout=0.5)
    assert any("no handler for system.info" in r.getMessage() for r in caplog.records)


async def test_timeout_composes_with_fail_after() -> None:
    server = FakeServer()
    server.rpc["system.version"] = hang
    async with connected(server) as client:
        # The caller's own deadline comes first: it gets the backend's TimeoutError.
        with pytest.raises(TimeoutError), anyio.fail_after(0.5):
            await client.system.version(timeout=30)
        # Ours comes first: LMStudioTimeoutError, and the outer scope is untouched.
        with anyio.fail_after(30):
            with pytest.raises(LMStudioTimeoutError):
                await client.system.version(timeout=0.5)


async def test_timeout_none_waits_until_the_answer() -> None:
    server = FakeServer()
    answer = anyio.Event()

    async def slow(_: Any) -> system.VersionResult:
        await answer.wait()
        return system.VersionResult("1.0.0", 1)

    server.rpc["system.version"] = slow
    async with connected(server, timeout=0.1) as client, anyio.create_task_group() as tg:
        got: list[str] = []

        async def ask() -> None:
            got.append((await client.system.version(timeout=None)).version)

        tg.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        await anyio.sleep(0.3)  # longer than the client's default: still waiting
        assert got == []
        answer.set()
    assert got == ["1.0.0"]


@pytest.mark.parametrize("bad", [0, -1, "5", True])
async def test_bad_timeout_values_are_refused(bad: Any) -> None:
    server = FakeServer()
    async with connected(server) as client:
        with pytest.raises(ValueError, match="timeout must be a number of seconds"):
            await client.system.version(timeout=bad)


def _returning(value: Any) -> Any:
    async def handler(_: Any) -> Any:
        return value

    return handler


def test_serialized_error_without_code_is_plain_server_error() -> None:
    error = SerializedError(title="boom").to_exception("llm.predict")
    assert type(error) is LMStudioServerError
    assert error.code is None
