"""Fixtures for the server tests: scripted servers in a background thread.

Helpers (the raw test client, request builders) are in ``_server_helpers.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _server_helpers import scripted_test_models

from lmstudio_sdk.server import BackgroundServer, ServerOptions


@pytest.fixture
def server_factory() -> Iterator[Callable[..., BackgroundServer]]:
    """Start scripted servers with chosen options; all are stopped after the test."""
    started: list[BackgroundServer] = []

    def start(**options: Any) -> BackgroundServer:
        options.setdefault("host", "127.0.0.1")
        options.setdefault("port", 0)
        options.setdefault("models", scripted_test_models())
        # These tests juggle several models at once: LM Studio's auto-evict of just-in-time
        # loaded models is off unless a test turns it on (test_server_catalog.py does).
        options.setdefault("jit_unload_previous", False)
        server = BackgroundServer(ServerOptions(**options), shutdown_timeout=15)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(server_factory: Callable[..., BackgroundServer]) -> BackgroundServer:
    """A scripted server with :func:`scripted_test_models`, reference (non-strict) behaviour."""
    return server_factory()
