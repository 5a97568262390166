"""What the server answers over plain HTTP, and which websocket paths it accepts."""

from __future__ import annotations

import base64
import json
import os
import socket
import urllib.error
import urllib.request

import pytest
from _server_helpers import open_socket

from lmstudio_sdk.server import BackgroundServer

NAMESPACES = ["llm", "embedding", "system", "diagnostics", "files", "repository"]


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    # Loopback must never go through a proxy from the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


def test_greeting_is_exactly_what_the_clients_probe(server: BackgroundServer) -> None:
    status, headers, body = _get(f"{server.http_url}/lmstudio-greeting")
    assert status == 200
    assert json.loads(body) == {"lmstudio": True}
    assert headers["Content-Type"] == "application/json"


def test_lms_status_names_the_package(server: BackgroundServer) -> None:
    status, _, body = _get(f"{server.http_url}/lms-status")
    assert status == 200
    assert json.loads(body)["package"] == "lmstudio-sdk"


def test_other_paths_are_not_found(server: BackgroundServer) -> None:
    status, _, body = _get(f"{server.http_url}/v1/models")
    assert status == 404
    assert b"/llm" in body  # the reply says where the websockets are


@pytest.mark.parametrize("namespace", NAMESPACES)
async def test_every_namespace_accepts_a_websocket(
    server: BackgroundServer, namespace: str
) -> None:
    async with open_socket(f"{server.url}/{namespace}") as socket:
        await socket.send(
            json.dumps({"authVersion": 1, "clientIdentifier": "guest:a", "clientPasskey": "b"})
        )
        assert json.loads(await socket.recv()) == {"success": True}


def _upgrade_status(server: BackgroundServer, path: str) -> str:
    """The status line the server answers a websocket upgrade request on ``path`` with."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request.encode())
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.split(b"\r\n", 1)[0].decode()


@pytest.mark.parametrize("path", ["/", "/runtime", "/llm/extra", "/LLM", "/plugins"])
def test_websocket_upgrade_on_other_paths_is_refused(server: BackgroundServer, path: str) -> None:
    assert _upgrade_status(server, path).startswith("HTTP/1.1 404")


def test_websocket_upgrade_on_a_namespace_switches_protocols(server: BackgroundServer) -> None:
    assert _upgrade_status(server, "/llm").startswith("HTTP/1.1 101")
