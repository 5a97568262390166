"""Starting and stopping: running_server/serve in asyncio, BackgroundServer, ``lmsdk serve``."""

from __future__ import annotations

import json
import signal
import socket
import sys

import anyio
import pytest
from _server_helpers import (
    WAIT,
    SocketClosed,
    chat,
    connect,
    get_or_load,
    open_socket,
    query,
    scripted_test_models,
    stack,
)

from lmstudio_sdk.cli import main
from lmstudio_sdk.protocol.endpoints import llm
from lmstudio_sdk.protocol.endpoints.llm import PredictCreationParameter
from lmstudio_sdk.server import (
    BackgroundServer,
    RunningServer,
    ServerOptions,
    running_server,
    scripted_models,
    serve,
)

TOKEN = "sk-lm-Abcd1234:Zyxw9876Vuts5432Rqpo"


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_leaving_running_server_stops_predictions_and_closes_clients() -> None:
    options = ServerOptions(port=0, models=scripted_test_models())
    predicting = anyio.Event()
    codes: list[int | None] = []

    async def client_side(server: RunningServer) -> None:
        async with connect(server, "llm") as client:  # type: ignore[arg-type]
            await get_or_load(client, "silent-llm")  # never answers: only shutdown ends it
            channel = await client.open(
                llm.PREDICT, PredictCreationParameter(query("silent-llm"), chat("x"), stack())
            )
            predicting.set()
            with pytest.raises(SocketClosed) as info:
                await client.next_on(channel)
            codes.append(info.value.code)

    async with anyio.create_task_group() as group:
        with anyio.fail_after(WAIT):  # shutdown is bounded
            async with running_server(options) as server:
                assert server.url == f"ws://127.0.0.1:{server.port}"
                group.start_soon(client_side, server)
                await predicting.wait()
                assert server.loaded_identifiers() == ["silent-llm"]
    assert codes == [1001]  # going away


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_serve_reports_the_port_and_stops_when_cancelled() -> None:
    started: list[RunningServer] = []
    up = anyio.Event()

    def on_started(server: RunningServer) -> None:
        started.append(server)
        up.set()

    async with anyio.create_task_group() as group:
        group.start_soon(
            lambda: serve(ServerOptions(port=0, models=scripted_models()), started=on_started)
        )
        with anyio.fail_after(WAIT):
            await up.wait()
        async with open_socket(f"{started[0].url}/system") as sock:
            await sock.send(
                json.dumps({"authVersion": 1, "clientIdentifier": "a", "clientPasskey": "b"})
            )
            assert json.loads(await sock.recv()) == {"success": True}
        group.cancel_scope.cancel()
    with pytest.raises(ConnectionRefusedError):  # nothing listens any more
        socket.create_connection(("127.0.0.1", started[0].port), timeout=2).close()


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_running_server_refuses_trio_and_points_to_background_server() -> None:
    with pytest.raises(RuntimeError, match="BackgroundServer"):
        async with running_server(ServerOptions(port=0, models=scripted_models())):
            pass


def test_background_server_reports_a_busy_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = BackgroundServer(ServerOptions(port=port, models=scripted_models()))
        with pytest.raises(OSError, match=str(port)):
            server.start()


def test_background_server_can_be_driven_from_inside_trio() -> None:
    # A Trio test's async fixture calls the server's blocking methods from inside the Trio
    # run: the server's own asyncio loop must still run them (anyio.run sets sniffio's
    # context variable to "trio", which must not leak into the server's task).
    from lmstudio_sdk import AsyncClient

    with BackgroundServer(ServerOptions(port=0, models=scripted_models())) as server:

        async def main() -> None:
            async with AsyncClient(server.url) as client:
                await client.llm.model("scripted-llm")
            assert server.loaded_identifiers() == ["scripted-llm"]
            server.unload_all()

        anyio.run(main, backend="trio")
        assert server.loaded_identifiers() == []


def test_background_server_stop_is_bounded_with_a_prediction_in_flight() -> None:
    server = BackgroundServer(
        ServerOptions(port=0, models=scripted_test_models()), shutdown_timeout=15
    )
    server.start()
    codes: list[int | None] = []

    async def client() -> None:
        async with connect(server, "llm") as c:
            await get_or_load(c, "silent-llm")
            await c.open(
                llm.PREDICT, PredictCreationParameter(query("silent-llm"), chat("x"), stack())
            )
            # The silent model never answers; stop() (another thread) must still end it all.
            await anyio.to_thread.run_sync(server.stop)
            with pytest.raises(SocketClosed) as info:
                await c.recv_frame()
            codes.append(info.value.code)

    anyio.run(client)
    assert codes == [1001]
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url


# --- the command line ----------------------------------------------------------------------


async def test_lmsdk_serve_prints_where_it_listens_and_stops_on_sigterm() -> None:
    if sys.platform == "win32":
        pytest.skip("SIGTERM is not deliverable to a child on Windows")
    command = [
        sys.executable,
        "-m",
        "lmstudio_sdk",
        "serve",
        "--port",
        "0",
        "--scripted",
        "--api-token",
        TOKEN,
    ]
    async with await anyio.open_process(command) as process:
        assert process.stdout is not None
        output = ""
        with anyio.fail_after(30):
            while "Press Ctrl-C" not in output:
                output += (await process.stdout.receive()).decode()
        assert "scripted-llm" in output
        assert "scripted-embedding" in output
        assert "API token required" in output
        assert TOKEN not in output
        url = next(word for word in output.split() if word.startswith("ws://"))
        async with open_socket(f"{url}/llm") as sock:
            await sock.send(
                json.dumps(
                    {
                        "authVersion": 1,
                        "clientIdentifier": "Abcd1234",
                        "clientPasskey": "Zyxw9876Vuts5432Rqpo",
                    }
                )
            )
            assert json.loads(await sock.recv()) == {"success": True}
        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            status = await process.wait()
            async for chunk in process.stdout:
                output += chunk.decode()
    assert status == 0
    assert "Stopping" in output


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--model", "no-equals-sign"], "KEY=PATH"),
        (["serve", "--model", "mine=/nonexistent/model.gguf"], "no model file"),
        (["serve", "--scripted", "--port", "70000"], "port"),
        (["serve", "--scripted", "--api-token", "sk-lm-bad"], "malformed API token"),
    ],
)
def test_lmsdk_serve_rejects_bad_arguments_clearly(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_lmsdk_without_a_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "serve" in capsys.readouterr().out
