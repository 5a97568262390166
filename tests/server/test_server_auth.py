"""The authentication handshake: guests, API tokens, and one passkey per identity."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import anyio
import pytest
from _server_helpers import WAIT, SocketClosed, connect, new_identity, open_socket

from lmstudio_sdk.protocol.endpoints import llm, system
from lmstudio_sdk.server import BackgroundServer, ServerOptions

TOKEN = "sk-lm-Abcd1234:Zyxw9876Vuts5432Rqpo"
TOKEN_ID, TOKEN_KEY = "Abcd1234", "Zyxw9876Vuts5432Rqpo"


def auth(identifier: str, passkey: str) -> str:
    return json.dumps({"authVersion": 1, "clientIdentifier": identifier, "clientPasskey": passkey})


async def handshake(server: BackgroundServer, namespace: str, frame: str) -> dict[str, object]:
    """Send one auth frame; return the reply, after checking a failure closes the socket."""
    async with open_socket(f"{server.url}/{namespace}") as socket:
        await socket.send(frame)
        reply = json.loads(await socket.recv())
        if reply.get("success") is not True:
            with pytest.raises(SocketClosed), anyio.fail_after(WAIT):
                await socket.recv()
        return reply  # type: ignore[no-any-return]


async def test_guest_gets_exactly_success_true(server: BackgroundServer) -> None:
    assert await handshake(server, "llm", auth(*new_identity())) == {"success": True}


async def test_a_second_socket_must_present_the_same_passkey(server: BackgroundServer) -> None:
    identifier, passkey = new_identity()
    async with connect(server, "llm", (identifier, passkey)) as first:
        # The same identity on another namespace: accepted.
        async with connect(server, "system", (identifier, passkey)) as second:
            version = await second.result(system.VERSION)
            assert version.version
        # Another passkey for a known identifier: the reference's exact message.
        reply = await handshake(server, "embedding", auth(identifier, "not-the-passkey"))
        assert reply == {
            "success": False,
            "error": f'Failed to validate client: Invalid client passkey for client "{identifier}"',
        }
        # The first socket is unaffected.
        assert await first.result(llm.LIST_LOADED) == []


async def test_malformed_auth_frames_are_ignored_until_a_valid_one(
    server: BackgroundServer,
) -> None:
    async with open_socket(f"{server.url}/llm") as socket:
        await socket.send("this is not json")
        await socket.send(
            json.dumps({"authVersion": 2, "clientIdentifier": "x", "clientPasskey": "y"})
        )
        await socket.send(json.dumps({"type": "rpcCall", "endpoint": "listLoaded", "callId": 1}))
        await socket.send(auth(*new_identity()))
        with anyio.fail_after(WAIT):
            assert json.loads(await socket.recv()) == {"success": True}


async def test_no_authentication_in_time_gets_a_failure_reply(
    server_factory: Callable[..., BackgroundServer],
) -> None:
    server = server_factory(auth_timeout=0.3)
    async with open_socket(f"{server.url}/llm") as socket:
        with anyio.fail_after(WAIT):
            reply = json.loads(await socket.recv())
        assert reply["success"] is False
        assert "timed out" in reply["error"]
        with pytest.raises(SocketClosed), anyio.fail_after(WAIT):
            await socket.recv()


async def test_token_required_refuses_guests_and_accepts_the_token(
    server_factory: Callable[..., BackgroundServer],
) -> None:
    server = server_factory(api_tokens=[TOKEN])
    reply = await handshake(server, "llm", auth(*new_identity()))
    assert reply["success"] is False
    assert "API token" in str(reply["error"])
    assert await handshake(server, "llm", auth(TOKEN_ID, TOKEN_KEY)) == {"success": True}
    wrong = await handshake(server, "system", auth(TOKEN_ID, "Zyxw9876Vuts5432Rqpx"))
    assert wrong["success"] is False


async def test_tokens_with_guests_allowed(server_factory: Callable[..., BackgroundServer]) -> None:
    server = server_factory(api_tokens=[TOKEN], require_auth=False)
    assert await handshake(server, "llm", auth(*new_identity())) == {"success": True}
    # The token's identifier stays reserved for its passkey, even for guests.
    reply = await handshake(server, "llm", auth(TOKEN_ID, "guessing"))
    assert reply["success"] is False


async def test_an_identity_is_free_again_once_its_sockets_are_gone(
    server: BackgroundServer,
) -> None:
    identifier, passkey = new_identity()
    async with connect(server, "llm", (identifier, passkey)):
        pass
    # The server releases the identity when it sees the close; a new passkey is then fine.
    with anyio.fail_after(WAIT):
        while True:
            reply = await handshake(server, "llm", auth(identifier, "a-new-passkey"))
            if reply["success"] is True:
                break
            # Our close may not have been processed yet; the retry is bounded by WAIT.


def test_secrets_never_reach_reprs_or_logs(
    server_factory: Callable[..., BackgroundServer], caplog: pytest.LogCaptureFixture
) -> None:
    options = ServerOptions(port=0, api_tokens=[TOKEN])
    assert TOKEN_KEY not in repr(options)
    assert TOKEN_KEY not in str(options)
    caplog.set_level(logging.DEBUG)
    server = server_factory(api_tokens=[TOKEN])
    assert TOKEN_KEY not in repr(server)

    async def main() -> None:
        await handshake(server, "llm", auth(TOKEN_ID, TOKEN_KEY))
        await handshake(server, "llm", auth(TOKEN_ID, "Zyxw9876Vuts5432Rqpx"))

    anyio.run(main)
    # What the server side logged: our logger, and the websockets server's.
    server_side = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith(("lmstudio_sdk", "websockets.server"))
    ]
    assert any("authentication rejected" in m for m in server_side), server_side
    assert not [m for m in server_side if TOKEN_KEY in m or "Zyxw9876Vuts5432Rqpx" in m]


def test_malformed_tokens_are_refused_without_being_echoed() -> None:
    with pytest.raises(Exception) as info:  # noqa: PT011 - a LocalProtocolError
        ServerOptions(api_tokens=["sk-lm-short:secretsecret"])
    assert "secretsecret" not in str(info.value)
    with pytest.raises(ValueError, match="require_auth"):
        ServerOptions(require_auth=True)
