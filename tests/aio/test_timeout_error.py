"""``LMStudioTimeoutError`` is also Python's ``TimeoutError``: ``except TimeoutError`` works."""

from __future__ import annotations

from typing import Any

import pytest
from _fake_server import FakeServer, backend, connected, hang

from lmstudio_sdk import LMStudioError, LMStudioTimeoutError


@pytest.fixture(params=["asyncio", "trio", "autojump"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    return backend(request.param)


async def test_an_rpc_timeout_is_caught_by_except_timeout_error(anyio_backend: Any) -> None:
    server = FakeServer()
    server.rpc["system.version"] = hang
    async with connected(server) as client:
        try:
            await client.system.version(timeout=0.5)
        except TimeoutError as exc:
            caught: BaseException = exc
        else:  # pragma: no cover - the assertion below reports it
            caught = AssertionError("no timeout")
    assert isinstance(caught, LMStudioTimeoutError)
    assert isinstance(caught, LMStudioError)
    assert "0.5" in str(caught)
