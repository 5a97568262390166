"""No log record of a whole session, at any level and on any backend, holds the passkey.

The asyncio transport's websockets library logs the start and end of every frame at DEBUG;
the auth frame ends with the passkey. Every record of a full session (connect, list, load,
predict, embed, upload, close) is searched for every 5-character piece of it.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator

import pytest

from lmstudio_sdk import AsyncClient, Client
from lmstudio_sdk.server import BackgroundServer, ServerOptions, scripted_model

PASSKEY = "Q7xZ9kW2pL4vN8bR3mT6"
TOKEN = f"sk-lm-Ab3dE5gH:{PASSKEY}"
KEY = "scripted-llm"
EMBEDDING = "scripted-embedding"
PIECES = {PASSKEY[i : i + 5] for i in range(len(PASSKEY) - 4)}


@pytest.fixture
def server() -> Iterator[BackgroundServer]:
    models = (scripted_model(KEY), scripted_model(EMBEDDING, domain="embedding"))
    options = ServerOptions(port=0, models=models, api_tokens=[TOKEN])
    with BackgroundServer(options) as running:
        yield running


def _leaks(caplog: pytest.LogCaptureFixture) -> list[str]:
    texts = []
    for record in caplog.records:
        text = f"{record.name} {record.getMessage()}"
        if record.exc_info:
            text += "".join(traceback.format_exception(*record.exc_info))
        texts.append(text)
    assert len(texts) > 10  # DEBUG records were captured (frames, connections...)
    return [t for t in texts if any(piece in t for piece in PIECES)]


async def test_an_async_session_logs_no_part_of_the_passkey(
    server: BackgroundServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with AsyncClient(server.url, api_token=TOKEN) as client:
        assert await client.system.version()
        await client.system.list_downloaded_models()
        model = await client.llm.model(KEY)
        assert (await model.respond("Hi")).content
        embedder = await client.embedding.model(EMBEDDING)
        assert await embedder.embed("hello")
        await client.files.upload("a.txt", b"hi")
    assert _leaks(caplog) == []


def test_a_blocking_session_logs_no_part_of_the_passkey(
    server: BackgroundServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with Client(server.url, api_token=TOKEN) as client:
        assert client.system.version()
        model = client.llm.model(KEY)
        assert model.respond("Hi").content
        assert client.embedding.model(EMBEDDING).embed("hello")
    assert _leaks(caplog) == []
