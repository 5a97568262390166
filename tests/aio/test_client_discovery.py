"""Where the server is and who we are: host forms, ``LMSTUDIO_HOST``, concurrent port
discovery, API tokens and authentication, and secrets kept out of reprs and logs.

Discovery probes run against real loopback listeners in the test's own loop (an LM Studio
server, one that never answers, one that is not LM Studio, one that refuses), on asyncio
and Trio with real clocks.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from anyio.abc import SocketStream

from lmstudio_sdk import AsyncClient, LMStudioAuthError, LMStudioConnectionError
from lmstudio_sdk._async._discovery import (
    discover,
    normalize_host,
    resolve_credentials,
    resolve_host,
)
from lmstudio_sdk.server import BackgroundServer, ServerOptions, scripted_model

TOKEN_ID = "Ab3dE5g7"
TOKEN_KEY = "Zy9xW8vU7tS6rQ5pO4nM"
TOKEN = f"sk-lm-{TOKEN_ID}:{TOKEN_KEY}"
OTHER = f"sk-lm-{TOKEN_ID}:{'x' * 20}"  # right identifier, wrong passkey


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LMSTUDIO_HOST", "LM_API_TOKEN", "LMSTUDIO_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def lmstudio() -> Iterator[BackgroundServer]:
    with BackgroundServer(ServerOptions(port=0, models=(scripted_model(),))) as running:
        yield running


@pytest.fixture(scope="module")
def secured() -> Iterator[BackgroundServer]:
    options = ServerOptions(port=0, models=(scripted_model(),), api_tokens=(TOKEN,))
    with BackgroundServer(options) as running:
        yield running


# ---------------------------------------------------------------------------- host forms


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("ws://127.0.0.1:1234", "ws://127.0.0.1:1234"),
        ("wss://lms.example:443/", "wss://lms.example:443"),
        ("http://localhost:1234", "ws://localhost:1234"),
        ("https://lms.example", "wss://lms.example"),
        ("localhost:1234", "ws://localhost:1234"),
        ("  127.0.0.1:41343 ", "ws://127.0.0.1:41343"),
        ("[::1]:1234", "ws://[::1]:1234"),
        ("http://proxy:80/lmstudio/", "ws://proxy:80/lmstudio"),
    ],
)
def test_host_forms(given: str, expected: str) -> None:
    assert normalize_host(given) == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("", "empty"),
        ("ftp://host:21", "unsupported scheme"),
        ("localhost", "names no port"),
        ("ws://host:1234?x=1", "query"),
        ("host:notaport", "not a valid address"),
    ],
)
def test_bad_hosts_say_what_is_accepted(given: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AsyncClient(given)


def test_credentials_in_a_host_are_refused_without_repeating_them() -> None:
    with pytest.raises(ValueError, match="api_token") as caught:
        AsyncClient("ws://me:hunter2@localhost:1234")
    assert "hunter2" not in str(caught.value)


def test_lmstudio_host_env_is_used_and_an_explicit_host_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert resolve_host(None) is None
    monkeypatch.setenv("LMSTUDIO_HOST", "http://10.0.0.5:1234")
    assert AsyncClient().base_url == "ws://10.0.0.5:1234"
    assert AsyncClient("localhost:9").base_url == "ws://localhost:9"
    monkeypatch.setenv("LMSTUDIO_HOST", "nonsense")
    with pytest.raises(ValueError, match="LMSTUDIO_HOST"):
        AsyncClient()


async def test_lmstudio_host_env_reaches_the_server(
    lmstudio: BackgroundServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LMSTUDIO_HOST", f"127.0.0.1:{lmstudio.port}")
    async with AsyncClient() as client:
        assert (await client.system.version()).version


# ---------------------------------------------------------------------------- discovery


@asynccontextmanager
async def listener(handler: Any) -> AsyncIterator[int]:
    """A loopback TCP listener in this loop, serving ``handler``; yields its port."""
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = tcp.extra(anyio.abc.SocketAttribute.local_port)
    async with tcp, anyio.create_task_group() as tg:
        tg.start_soon(tcp.serve, handler)
        yield port
        tg.cancel_scope.cancel()


async def never_answers(stream: SocketStream) -> None:
    async with stream:
        await anyio.sleep_forever()


async def not_lmstudio(stream: SocketStream) -> None:
    async with stream:
        await stream.receive()
        await stream.send(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot here\n")


async def test_discovery_probes_concurrently_and_the_first_answer_wins(
    lmstudio: BackgroundServer, refused_port: int
) -> None:
    async with listener(never_answers) as silent, listener(not_lmstudio) as other:
        start = anyio.current_time()
        found = await discover([silent, refused_port, other, lmstudio.port], probe_timeout=10)
        # In turn, the silent port alone would have taken 10 s.
        assert anyio.current_time() - start < 5
    assert found == f"ws://127.0.0.1:{lmstudio.port}"


async def test_discovery_error_names_every_place_and_why(refused_port: int) -> None:
    async with listener(never_answers) as silent, listener(not_lmstudio) as other:
        with pytest.raises(LMStudioConnectionError) as caught:
            await discover([silent, refused_port, other], probe_timeout=0.5)
    reasons = dict(caught.value.attempts)
    assert reasons[f"127.0.0.1:{silent}"] == "no answer within 0.5 s"
    assert reasons[f"127.0.0.1:{refused_port}"] == "connection refused"
    assert reasons[f"127.0.0.1:{other}"].startswith("not LM Studio (HTTP 404")
    message = str(caught.value)
    assert "LMSTUDIO_HOST" in message
    assert all(f"127.0.0.1:{port}" in message for port in (silent, refused_port, other))


async def test_client_discovers_on_first_use(lmstudio: BackgroundServer, refused_port: int) -> None:
    client = AsyncClient()
    client._discovery_ports = (refused_port, lmstudio.port)
    assert client.base_url is None
    async with client:
        assert (await client.system.version()).version
        assert client.base_url == f"ws://127.0.0.1:{lmstudio.port}"


async def test_client_without_server_names_the_ports_it_tried(refused_port: int) -> None:
    client = AsyncClient()
    client._discovery_ports = (refused_port,)
    async with client:
        with pytest.raises(LMStudioConnectionError, match="LM Studio was not found") as caught:
            await client.system.version()
    assert caught.value.attempts == ((f"127.0.0.1:{refused_port}", "connection refused"),)


# ---------------------------------------------------------------------------- tokens


def test_token_is_split_into_identifier_and_passkey() -> None:
    creds = resolve_credentials(f"  {TOKEN}\n")
    assert (creds.client_identifier, creds.client_passkey) == (TOKEN_ID, TOKEN_KEY)
    assert creds.source == "api_token"
    assert not creds.is_guest


def test_token_environment_variables_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMSTUDIO_API_TOKEN", OTHER)
    assert resolve_credentials().client_passkey == "x" * 20
    monkeypatch.setenv("LM_API_TOKEN", TOKEN)
    creds = resolve_credentials()
    assert (creds.client_passkey, creds.source) == (TOKEN_KEY, "LM_API_TOKEN")
    assert resolve_credentials(OTHER).source == "api_token"  # the argument wins
    monkeypatch.setenv("LM_API_TOKEN", "   ")
    assert resolve_credentials().source == "LMSTUDIO_API_TOKEN"  # blank counts as unset


def test_guests_get_distinct_random_identities() -> None:
    a, b = resolve_credentials(), resolve_credentials()
    assert a.is_guest
    assert a.client_identifier.startswith("guest:")
    assert a.client_identifier != b.client_identifier
    assert a.client_passkey != b.client_passkey


@pytest.mark.parametrize("bad", ["sk-lm-short:abc", f"{TOKEN}extra", "Bearer abc", TOKEN_KEY])
def test_malformed_token_is_a_value_error_that_does_not_echo_it(
    bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="api_token is not a valid LM Studio API token") as caught:
        AsyncClient("localhost:1", api_token=bad)
    assert bad.strip() not in str(caught.value)
    monkeypatch.setenv("LM_API_TOKEN", bad)
    with pytest.raises(ValueError, match="LM_API_TOKEN environment variable") as caught:
        AsyncClient("localhost:1")
    assert bad.strip() not in str(caught.value)


def test_secrets_stay_out_of_reprs() -> None:
    client = AsyncClient("localhost:1", api_token=TOKEN)
    assert TOKEN_KEY not in repr(client)
    assert TOKEN_KEY not in repr(client._credentials)
    assert "token from api_token" in repr(client)


async def test_token_is_accepted_and_never_logged(
    secured: BackgroundServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        async with AsyncClient(secured.url, api_token=TOKEN) as client:
            assert (await client.system.version()).version
            await client.llm.list_loaded()
    assert caplog.records  # something was logged
    assert not [r for r in caplog.records if TOKEN_KEY in r.getMessage()]


async def test_token_from_environment(
    secured: BackgroundServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LM_API_TOKEN", TOKEN)
    async with AsyncClient(secured.url) as client:
        assert not client.is_guest
        assert (await client.system.version()).version


@pytest.mark.parametrize("token", [None, OTHER], ids=["guest", "wrong-passkey"])
async def test_rejected_credentials_raise_auth_error_naming_the_place(
    secured: BackgroundServer, token: str | None
) -> None:
    async with AsyncClient(secured.url, api_token=token) as client:
        with pytest.raises(LMStudioAuthError) as caught:
            await client.system.version()
    ((place, reason),) = caught.value.attempts
    assert place == f"{secured.url}/system"
    assert reason.startswith("authentication rejected")
    assert "x" * 20 not in str(caught.value)
