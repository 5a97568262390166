"""The server as a front for OpenAI-compatible upstreams, against a fake upstream.

The SDK client (asyncio and Trio) talks to our server in a background thread, which
forwards to :class:`FakeUpstream` (its own thread): what the client sees, and what the
upstream received, are both checked. The real upstream (llama-cpp-python's server) is in
``test_gateway_llama.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from fake_openai import Behaviour, FakeUpstream

from lmstudio_sdk import AsyncClient, LMStudioServerError
from lmstudio_sdk.server import BackgroundServer, ServerOptions, scripted_models
from lmstudio_sdk.server.upstream import Upstream

pytestmark = pytest.mark.anyio

MODEL = "fake-llm"
EMBED = "fake-embed"


def gateway(*upstreams: FakeUpstream, **options: Any) -> BackgroundServer:
    configs = [Upstream(url=u.url, **options) for u in upstreams]
    return BackgroundServer(
        ServerOptions(port=0, models=scripted_models(), upstreams=configs), shutdown_timeout=15
    )


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream([MODEL, EMBED]) as fake:
        yield fake


@pytest.fixture
def server(upstream: FakeUpstream) -> Iterator[BackgroundServer]:
    with gateway(upstream) as running:
        yield running


async def test_upstream_models_are_listed_and_loaded(server: BackgroundServer) -> None:
    async with AsyncClient(server.url) as client:
        downloaded = {m.model_key: m for m in await client.system.list_downloaded_models()}
        loaded = {m.identifier for m in await client.llm.list_loaded()}
        embedding_loaded = {m.identifier for m in await client.embedding.list_loaded()}
    assert {"scripted-llm", "scripted-embedding", MODEL, EMBED} <= set(downloaded)
    assert downloaded[MODEL].type == "llm"
    assert downloaded[EMBED].type == "embedding"
    assert MODEL in loaded
    assert EMBED in embedding_loaded


async def test_streaming_chat_and_stats(server: BackgroundServer, upstream: FakeUpstream) -> None:
    async with AsyncClient(server.url) as client:
        model = await client.llm.model(MODEL)
        async with model.respond_stream(
            "Hi there",
            temperature=0.25,
            max_tokens=50,
            top_k_sampling=7,
            stop_strings=["STOP"],
            seed=11,
        ) as stream:
            pieces = [fragment.content async for fragment in stream.fragments()]
        result = stream.result()
    assert "".join(pieces) == "Hello, world!"
    assert result.content == "Hello, world!"
    assert result.stats.stop_reason == "eosFound"
    assert result.stats.predicted_tokens_count == 4  # the upstream's usage chunk
    assert result.stats.prompt_tokens_count == 7
    assert result.stats.time_to_first_token_sec is not None
    assert result.stats.tokens_per_second is not None
    assert result.stats.tokens_per_second > 0
    (body,) = upstream.bodies("/v1/chat/completions")
    assert body["stream"] is True
    assert body["messages"][-1] == {"role": "user", "content": "Hi there"}
    assert body["temperature"] == 0.25
    assert body["max_tokens"] == 50
    assert body["top_k"] == 7
    assert body["stop"] == ["STOP"]
    assert body["seed"] == 11


async def test_stop_string_reported_by_the_upstream(upstream: FakeUpstream) -> None:
    upstream.behaviour.stop_reason = "STOP"  # vLLM names the stop string it matched
    with gateway(upstream) as server:
        async with AsyncClient(server.url) as client:
            model = await client.llm.model(MODEL)
            result = await model.respond("Hi", stop_strings=["STOP"])
    assert result.stats.stop_reason == "stopStringFound"
    assert result.stats.stop_string == "STOP"


async def test_stop_string_the_upstream_ignored_is_applied_here(upstream: FakeUpstream) -> None:
    upstream.behaviour.tokens = ["one", " two", " END", " three"]
    with gateway(upstream) as server:
        async with AsyncClient(server.url) as client:
            model = await client.llm.model(MODEL)
            result = await model.respond("Hi", stop_strings=[" END"])
    assert result.content == "one two"
    assert result.stats.stop_reason == "stopStringFound"


async def test_raw_completion_goes_to_completions(
    server: BackgroundServer, upstream: FakeUpstream
) -> None:
    async with AsyncClient(server.url) as client:
        model = await client.llm.model(MODEL)
        result = await model.complete("Once upon a time", max_tokens=5)
    assert result.content == "Hello, world!"
    (body,) = upstream.bodies("/v1/completions")
    assert body["prompt"] == "Once upon a time"
    assert "messages" not in body


async def test_structured_output_falls_back_to_json_object(upstream: FakeUpstream) -> None:
    upstream.behaviour.reject_json_schema = True  # like llama-cpp-python
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}}
    with gateway(upstream) as server:
        async with AsyncClient(server.url) as client:
            model = await client.llm.model(MODEL)
            first = await model.respond("Answer", response_format=schema)
            second = await model.respond("Answer", response_format=schema)
    assert first.parsed == {"answer": 42}
    assert second.parsed == {"answer": 42}
    formats = [b["response_format"] for b in upstream.bodies("/v1/chat/completions")]
    # Tried once the OpenAI way, then the upstream's own way, which is remembered.
    assert [f["type"] for f in formats] == ["json_schema", "json_object", "json_object"]
    assert formats[1]["schema"] == schema


async def test_tool_call_becomes_act_round(upstream: FakeUpstream) -> None:
    upstream.behaviour.tool_call = {"name": "add", "arguments": '{"a": 2, "b": 3}'}
    calls: list[tuple[int, int]] = []

    def add(a: int, b: int) -> int:
        """Add two integers."""
        calls.append((a, b))
        return a + b

    with gateway(upstream) as server:
        async with AsyncClient(server.url) as client:
            model = await client.llm.model(MODEL)
            result = await model.act("What is 2 + 3?", [add], max_prediction_rounds=3)
    assert calls == [(2, 3)]
    assert result.rounds == 2
    first, second = upstream.bodies("/v1/chat/completions")
    assert first["tools"][0]["function"]["name"] == "add"
    # The second round carries the call (arguments as a JSON string) and its result.
    assistant = second["messages"][-2]
    assert assistant["tool_calls"][0]["function"]["name"] == "add"
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"a": 2, "b": 3}
    assert second["messages"][-1]["role"] == "tool"
    assert second["messages"][-1]["content"] == "5"


async def test_reasoning_content_becomes_reasoning_fragments(upstream: FakeUpstream) -> None:
    upstream.behaviour.reasoning = ["Let me", " think."]
    with gateway(upstream) as server:
        async with AsyncClient(server.url) as client:
            model = await client.llm.model(MODEL)
            result = await model.respond("Hi")
    assert result.reasoning_content == "Let me think."
    assert result.non_reasoning_content.strip() == "Hello, world!"


async def test_cancel_closes_the_upstream_stream(upstream: FakeUpstream) -> None:
    upstream.behaviour.endless = True
    with gateway(upstream) as server:
        async with AsyncClient(server.url) as client:
            model = await client.llm.model(MODEL)
            async with model.respond_stream("Go on forever") as stream:
                count = 0
                async for _ in stream.fragments():
                    count += 1
                    if count == 5:
                        break
            result = stream.result()
            # The upstream itself saw its client go away (not the gateway's word for it).
            assert await anyio.to_thread.run_sync(upstream.disconnected.wait, 10)
    assert result.stats.stop_reason == "userStopped"
    assert upstream.disconnects == 1


async def test_dead_upstream_fails_in_flight_and_the_next_goes_elsewhere() -> None:
    with (
        FakeUpstream([MODEL], Behaviour(kill_after=2)) as dying,
        FakeUpstream([MODEL]) as healthy,
        gateway(dying, healthy) as server,
    ):
        async with AsyncClient(server.url) as client:
            model = await client.llm.model(MODEL)
            with pytest.raises(LMStudioServerError) as failure:
                await model.respond("first")
            assert dying.url in str(failure.value)
            second = await model.respond("second")
    assert second.content == "Hello, world!"
    assert len(dying.bodies("/v1/chat/completions")) == 1
    assert len(healthy.bodies("/v1/chat/completions")) == 1


async def test_unreachable_upstream_is_skipped() -> None:
    with (
        FakeUpstream([MODEL]) as gone,
        FakeUpstream([MODEL]) as healthy,
        gateway(gone, healthy) as server,
    ):
        gone.stop()  # listed its models at start, then went away
        async with AsyncClient(server.url) as client:
            model = await client.llm.model(MODEL)
            results = [await model.respond(f"n{n}") for n in range(3)]
    assert [r.content for r in results] == ["Hello, world!"] * 3
    assert len(healthy.bodies("/v1/chat/completions")) == 3


async def test_concurrent_predictions_use_both_upstreams() -> None:
    with (
        FakeUpstream([MODEL], Behaviour(tokens=["x"] * 30)) as a,
        FakeUpstream([MODEL], Behaviour(tokens=["x"] * 30)) as b,
        gateway(a, b) as server,
    ):
        async with AsyncClient(server.url) as client:
            model = await client.llm.model(MODEL)
            contents: list[str] = []

            async def one() -> None:
                contents.append((await model.respond("go")).content)

            async with anyio.create_task_group() as group:
                for _ in range(8):
                    group.start_soon(one)
    assert contents == ["x" * 30] * 8
    served = [len(a.bodies("/v1/chat/completions")), len(b.bodies("/v1/chat/completions"))]
    assert sum(served) == 8
    assert min(served) >= 3


async def test_embeddings(server: BackgroundServer) -> None:
    async with AsyncClient(server.url) as client:
        model = await client.embedding.model(EMBED)
        vector = await model.embed("four")
        vectors = await model.embed(["a", "bb", "ccc"])
    assert vector == [4.0, 0.0, 1.0]
    assert [v[0] for v in vectors] == [1.0, 2.0, 3.0]


async def test_tokenize_and_count(server: BackgroundServer, upstream: FakeUpstream) -> None:
    async with AsyncClient(server.url) as client:
        model = await client.llm.model(MODEL)
        tokens = await model.tokenize("abc")
        count = await model.count_tokens("hello")
    assert tokens == [97, 98, 99]
    assert count == 5
    assert upstream.bodies("/tokenize")[0]["prompt"] == "abc"


async def test_tokenize_without_endpoint_names_the_upstream() -> None:
    with FakeUpstream([MODEL], Behaviour(has_tokenize=False)) as fake, gateway(fake) as server:
        async with AsyncClient(server.url) as client:
            model = await client.llm.model(MODEL)
            with pytest.raises(LMStudioServerError, match="no tokenizer endpoint") as failure:
                await model.tokenize("abc")
    assert fake.url in str(failure.value)


async def test_unload_and_load_again(server: BackgroundServer) -> None:
    async with AsyncClient(server.url) as client:
        await client.llm.unload(MODEL)
        assert MODEL not in {m.identifier for m in await client.llm.list_loaded()}
        model = await client.llm.model(MODEL)  # loads the handle again: no weights move
        result = await model.respond("Hi")
    assert result.content == "Hello, world!"


async def test_api_key_comes_from_the_environment(
    upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "secret-value-123")
    options = ServerOptions(
        port=0, upstreams=[Upstream(url=upstream.url, api_key_env="FAKE_UPSTREAM_KEY")]
    )
    assert "secret-value-123" not in repr(options)
    with BackgroundServer(options, shutdown_timeout=15) as server:
        async with AsyncClient(server.url) as client:
            model = await client.llm.model(MODEL)
            await model.respond("Hi")
    assert upstream.headers[-1]["authorization"] == "Bearer secret-value-123"


async def test_prompt_tokens_counted_when_the_upstream_reports_no_usage(
    upstream: FakeUpstream,
) -> None:
    upstream.behaviour.usage = False  # llama-cpp-python sends no usage when streaming
    with gateway(upstream) as server:
        async with AsyncClient(server.url) as client:
            model = await client.llm.model(MODEL)
            result = await model.respond("Hi")
    (asked,) = upstream.bodies("/tokenize")
    assert "Hi" in asked["prompt"]
    assert result.stats.prompt_tokens_count == len(asked["prompt"])  # one token per char
    assert result.stats.predicted_tokens_count == 4  # counted from the stream


async def test_a_model_that_fails_to_load_is_offered_but_not_loaded() -> None:
    with (
        FakeUpstream([MODEL, EMBED], Behaviour(embeddings_fail=True)) as fake,
        gateway(fake) as server,
    ):
        async with AsyncClient(server.url) as client:
            offered = {m.model_key for m in await client.system.list_downloaded_models()}
            loaded = {m.identifier for m in await client.embedding.list_loaded()}
            result = await (await client.llm.model(MODEL)).respond("Hi")
            with pytest.raises(LMStudioServerError, match="not an embedding model"):
                await client.embedding.model(EMBED)
    assert EMBED in offered
    assert EMBED not in loaded
    assert result.content == "Hello, world!"


async def test_tool_call_when_the_upstream_cannot_stream_tools(upstream: FakeUpstream) -> None:
    upstream.behaviour.tool_call = {"name": "add", "arguments": '{"a": 4, "b": 5}'}
    upstream.behaviour.no_streaming_tools = True
    calls: list[tuple[int, int]] = []

    def add(a: int, b: int) -> int:
        """Add two integers."""
        calls.append((a, b))
        return a + b

    with gateway(upstream) as server:
        async with AsyncClient(server.url) as client:
            model = await client.llm.model(MODEL)
            result = await model.act("What is 4 + 5?", [add], max_prediction_rounds=3)
    assert calls == [(4, 5)]
    assert result.rounds == 2
    streamed = [b.get("stream") for b in upstream.bodies("/v1/chat/completions")]
    # Each round: the streamed attempt, then the same request unstreamed.
    assert streamed == [True, False, True, False]


async def test_a_catalogue_file_names_the_upstreams(
    upstream: FakeUpstream, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "sk-catalogue-secret")
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(
        f'[[upstream]]\nurl = "{upstream.url}"\napi_key_env = "FAKE_UPSTREAM_KEY"\n'
        'name = "replica-a"\n'
    )
    options = ServerOptions(port=0, catalog=catalog)
    assert [u.label for u in options.resolved_upstreams()] == ["replica-a"]
    assert "sk-catalogue-secret" not in repr(options)
    with BackgroundServer(options, shutdown_timeout=15) as running:
        async with AsyncClient(running.url) as client:
            loaded = {m.identifier for m in await client.llm.list_loaded()}
            model = await client.llm.model(MODEL)
            result = await model.respond("Hi", max_tokens=8)
    assert MODEL in loaded
    assert result.content
    assert upstream.headers[-1].get("authorization") == "Bearer sk-catalogue-secret"


def test_a_catalogue_upstream_with_an_unknown_field_is_refused(tmp_path: Any) -> None:
    from lmstudio_sdk.server import CatalogError, load_catalog

    catalog = tmp_path / "catalog.toml"
    catalog.write_text('[[upstream]]\nurl = "http://127.0.0.1:9/v1"\napi_key = "sk-no"\n')
    with pytest.raises(CatalogError, match=r"unknown fields \['api_key'\].*api_key_env"):
        load_catalog(catalog)
