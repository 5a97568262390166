"""``load()`` and ``model()`` give a model a default idle TTL (one hour); ``ttl=None`` gives none.

Against the local server with scripted models; the server reports each instance's TTL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lmstudio_sdk import AsyncClient, Client
from lmstudio_sdk._async._ttl import DEFAULT_TTL
from lmstudio_sdk.server import BackgroundServer, ServerOptions, scripted_model

LLM = "scripted-llm"


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(ServerOptions(port=0, models=(scripted_model(LLM),))) as running:
        yield running


async def ttls(client: AsyncClient) -> dict[str, float | None]:
    return {m.identifier: m.info.ttl_ms for m in await client.llm.list_loaded()}


@pytest.fixture
def fresh(server: BackgroundServer) -> BackgroundServer:
    server.unload_all()
    return server


async def test_load_and_model_default_to_one_hour_and_none_means_no_ttl(
    fresh: BackgroundServer,
) -> None:
    assert DEFAULT_TTL == 3600
    server = fresh
    async with AsyncClient(server.url) as client:
        await client.llm.model(LLM)
        await client.llm.load(LLM, identifier="forever", ttl=None)
        await client.llm.load(LLM, identifier="short", ttl=60)
        assert await ttls(client) == {
            LLM: 3_600_000,
            "forever": None,
            "short": 60_000,
        }
        # Without a key model() loads nothing, so a TTL there is refused...
        with pytest.raises(ValueError, match="give a model key"):
            await client.llm.model(ttl=None)
        # ... but leaving the default is fine.
        assert (await client.llm.model()).identifier in {LLM, "forever", "short"}


def test_the_blocking_api_has_the_same_default(server: BackgroundServer) -> None:
    server.unload_all()
    with Client(server.url) as client:
        client.llm.model(LLM)
        client.llm.load(LLM, identifier="forever", ttl=None)
        loaded = {m.identifier: m.info.ttl_ms for m in client.llm.list_loaded()}
    assert loaded == {LLM: 3_600_000, "forever": None}
