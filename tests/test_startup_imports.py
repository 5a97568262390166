"""Start-up cost: what a fresh interpreter imports to create a client and list models.

Every module the client imports is paid for by every program before its first result
(``benchmarks/analysis.md`` item 11). The server, the server's protocol session, the other
namespaces' endpoint modules (each creates dozens of attrs classes), chats, configs and
the prediction machinery are imported on first use instead; these tests keep it so.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

import lmstudio_sdk
from lmstudio_sdk.server import BackgroundServer, ServerOptions, scripted_model

#: Imported only when something needs them, never to create a client or list models.
NOT_FOR_A_CLIENT = frozenset(
    {
        "lmstudio_sdk.server",
        "lmstudio_sdk.protocol.server_session",
        "lmstudio_sdk.chat",
        "lmstudio_sdk.config",
        "lmstudio_sdk._async.act",
        "lmstudio_sdk._async.prediction",
        "lmstudio_sdk._async.tools",
        "lmstudio_sdk.protocol.endpoints.diagnostics",
        "lmstudio_sdk.protocol.endpoints.embedding",
        "lmstudio_sdk.protocol.endpoints.files",
        "lmstudio_sdk.protocol.endpoints.repository",
        "lmstudio_sdk.protocol.endpoints.system",
    }
)


def loaded_after(body: str) -> set[str]:
    """The ``lmstudio_sdk`` modules a fresh interpreter has loaded after running ``body``."""
    script = textwrap.dedent(body) + textwrap.dedent(
        """
        import json, sys
        print(json.dumps([m for m in sys.modules if m.startswith("lmstudio_sdk")]))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_creating_a_client_imports_only_what_a_client_needs() -> None:
    loaded = loaded_after(
        """
        import lmstudio_sdk
        client = lmstudio_sdk.AsyncClient("http://127.0.0.1:1")
        """
    )
    assert "lmstudio_sdk._async.client" in loaded  # the script did create a client
    assert sorted(loaded & NOT_FOR_A_CLIENT) == []


@pytest.fixture
def server_with_a_loaded_model() -> Iterator[BackgroundServer]:
    with BackgroundServer(
        ServerOptions(port=0, models=(scripted_model("scripted-llm"),))
    ) as server:
        with lmstudio_sdk.Client(server.url) as client:
            client.llm.model("scripted-llm")
        yield server


def test_the_first_list_of_loaded_models_imports_only_what_it_needs(
    server_with_a_loaded_model: BackgroundServer,
) -> None:
    loaded = loaded_after(
        f"""
        import asyncio
        import lmstudio_sdk

        async def main():
            async with lmstudio_sdk.AsyncClient({server_with_a_loaded_model.url!r}) as client:
                [model] = await client.llm.list_loaded()
                assert model.info.model_key == "scripted-llm", model.info

        asyncio.run(main())
        """
    )
    assert "lmstudio_sdk.protocol.endpoints.llm" in loaded
    assert sorted(loaded & NOT_FOR_A_CLIENT) == []


def test_the_protocol_package_imports_the_server_session_on_first_use() -> None:
    loaded = loaded_after(
        """
        import lmstudio_sdk.protocol as protocol
        from lmstudio_sdk.protocol.endpoints import ENDPOINTS
        assert "lmstudio_sdk.protocol.server_session" not in __import__("sys").modules
        assert protocol.ServerSession.__name__ == "ServerSession"
        assert ENDPOINTS["system"]["version"].name == "version"
        """
    )
    assert "lmstudio_sdk.protocol.server_session" in loaded
    assert "lmstudio_sdk.protocol.endpoints.system" in loaded
    assert "lmstudio_sdk.protocol.endpoints.repository" not in loaded
