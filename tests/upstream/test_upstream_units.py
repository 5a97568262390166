"""The upstream engine's parts without the websocket server: request bodies, routing and
backoff, embedding batches, errors, options and the command line."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import anyio
import pytest
from fake_openai import FakeUpstream

from lmstudio_sdk.cli.serve import UsageError, build_options, register
from lmstudio_sdk.server import ServerOptions, running_server
from lmstudio_sdk.server.engines.base import GenerationRequest, InvalidRequestError
from lmstudio_sdk.server.engines.events import TokenPiece
from lmstudio_sdk.server.engines.scripted import scripted_llm_facts
from lmstudio_sdk.server.upstream import Upstream
from lmstudio_sdk.server.upstream._embedding import UpstreamEmbeddingEngine
from lmstudio_sdk.server.upstream._llm import UpstreamLLMEngine
from lmstudio_sdk.server.upstream._pool import UpstreamError, UpstreamPool, upstream_facts
from lmstudio_sdk.server.upstream._request import build_body

MODEL = "fake-llm"


@pytest.fixture
def anyio_backend() -> str:
    """Engines run on the server's loop, which is asyncio (``running_server``); clients on
    Trio are covered in ``test_gateway.py``."""
    return "asyncio"


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream([MODEL, "fake-embed"]) as fake:
        yield fake


# --- request bodies --------------------------------------------------------------------


def test_chat_body_maps_every_setting() -> None:
    request = GenerationRequest(
        prompt="ignored",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is this?", "images": ["data:image/png;base64,AA=="]},
        ],
        temperature=0.3,
        max_tokens=12,
        top_k=5,
        top_p=0.9,
        min_p=0.1,
        repeat_penalty=1.2,
        seed=3,
        stop_strings=["\n\n"],
        json_schema={"type": "object"},
    )
    path, body = build_body("m", request)
    assert path == "/chat/completions"
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["messages"][1]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
    ]
    assert (body["temperature"], body["max_tokens"], body["top_k"]) == (0.3, 12, 5)
    assert (body["top_p"], body["min_p"], body["seed"]) == (0.9, 0.1, 3)
    assert body["repeat_penalty"] == body["repetition_penalty"] == 1.2
    assert body["stop"] == ["\n\n"]
    assert body["response_format"]["json_schema"]["schema"] == {"type": "object"}
    _, dialect = build_body("m", request, json_object_dialect=True)
    assert dialect["response_format"] == {"type": "json_object", "schema": {"type": "object"}}


def test_disabled_settings_are_not_sent() -> None:
    request = GenerationRequest(prompt="p", top_p=None, min_p=None, repeat_penalty=None, top_k=0)
    path, body = build_body("m", request)
    assert path == "/completions"
    assert body["prompt"] == "p"
    for key in ("top_p", "min_p", "repeat_penalty", "top_k", "max_tokens", "seed", "stop"):
        assert key not in body


def test_without_extensions_only_openai_fields_are_sent() -> None:
    request = GenerationRequest(prompt="p", top_k=5, min_p=0.1, repeat_penalty=1.2)
    _, body = build_body("m", request, extensions=False)
    for key in ("top_k", "min_p", "repeat_penalty", "repetition_penalty"):
        assert key not in body
    with pytest.raises(InvalidRequestError, match="no GBNF grammar"):
        build_body("m", GenerationRequest(prompt="p", gbnf_grammar="root ::= x"), extensions=False)


def test_facts_from_the_model_list() -> None:
    vllm = upstream_facts("Qwen/Qwen3-8B", {"id": "Qwen/Qwen3-8B", "max_model_len": 32768}, 4096)
    assert (vllm.domain, vllm.engine, vllm.max_context_length) == ("llm", "upstream", 32768)
    embedder = upstream_facts("BAAI/bge-small-en", {"id": "BAAI/bge-small-en"}, 4096)
    assert embedder.domain == "embedding"
    assert embedder.max_context_length == 4096


# --- routing, backoff, errors ----------------------------------------------------------


@pytest.mark.anyio
async def test_backoff_skips_a_down_upstream_then_tries_it_again(upstream: FakeUpstream) -> None:
    with FakeUpstream([MODEL]) as other:
        pool = UpstreamPool([Upstream(url=upstream.url), Upstream(url=other.url)])
        try:
            await pool.discover()
            first, second = pool.members
            pool.mark_down(first)
            assert pool.pick(MODEL) is second
            assert pool.pick(MODEL) is second
            first.down_until = anyio.current_time()  # the backoff is over
            second.in_flight = 1
            assert pool.pick(MODEL) is first
            pool.mark_down(second)
            pool.mark_down(first)
            with pytest.raises(UpstreamError, match="No upstream serving 'fake-llm' is answering"):
                pool.pick(MODEL)
            with pytest.raises(UpstreamError, match="No upstream serves the model 'nope'"):
                pool.pick("nope")
        finally:
            await pool.aclose()


@pytest.mark.anyio
async def test_backoff_doubles_up_to_a_limit(upstream: FakeUpstream) -> None:
    pool = UpstreamPool([Upstream(url=upstream.url)])
    try:
        (member,) = pool.members
        delays = [pool.mark_down(member) for _ in range(9)]
        assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
        assert member.down_until > anyio.current_time()
        pool.mark_up(member)
        assert member.down_until == 0.0
    finally:
        await pool.aclose()


@pytest.mark.anyio
async def test_model_unload_ends_a_running_generation(upstream: FakeUpstream) -> None:
    upstream.behaviour.endless = True
    pool = UpstreamPool([Upstream(url=upstream.url)])
    try:
        await pool.discover()
        engine = UpstreamLLMEngine(scripted_llm_facts(MODEL), pool)
        await engine.load()
        async with engine.generate(GenerationRequest(prompt="go")) as stream:
            events = []
            async for event in stream:
                events.append(event)
                if len(events) == 3:
                    await engine.aclose()
        assert all(isinstance(e, TokenPiece) for e in events[:-1])
        assert stream.finished is not None
        assert stream.finished.stop_reason == "modelUnloaded"
    finally:
        await pool.aclose()


@pytest.mark.anyio
async def test_upstream_refusal_is_an_error_with_its_message(upstream: FakeUpstream) -> None:
    upstream.behaviour.refuse = (400, "max_tokens must be at most 100")
    pool = UpstreamPool([Upstream(url=upstream.url)])
    try:
        await pool.discover()
        engine = UpstreamLLMEngine(scripted_llm_facts(MODEL), pool)
        await engine.load()
        with pytest.raises(InvalidRequestError, match="max_tokens must be at most 100") as failure:
            async with engine.generate(GenerationRequest(prompt="go", max_tokens=500)):
                pass  # pragma: no cover
        assert upstream.url in str(failure.value)
        assert "400" in str(failure.value)
        upstream.behaviour.refuse = (503, "overloaded")
        with pytest.raises(UpstreamError, match="overloaded"):
            async with engine.generate(GenerationRequest(prompt="go")):
                pass  # pragma: no cover
    finally:
        await pool.aclose()


@pytest.mark.anyio
async def test_concurrent_embeddings_go_in_one_batch(upstream: FakeUpstream) -> None:
    pool = UpstreamPool([Upstream(url=upstream.url)])
    try:
        await pool.discover()
        engine = UpstreamEmbeddingEngine(upstream_facts("fake-embed", {}, 512), pool)
        await engine.load()
        assert engine.dimensions == 3
        texts = ["a", "bb", "ccc", "dddd", "eeeee"]
        vectors: dict[str, list[float]] = {}

        async def embed(text: str) -> None:
            vectors[text] = await engine.embed(text)

        before = len(upstream.bodies("/v1/embeddings"))
        async with anyio.create_task_group() as group:
            for text in texts:
                group.start_soon(embed, text)
        batches = upstream.bodies("/v1/embeddings")[before:]
        assert [b["input"] for b in batches] == [texts]
        assert {t: v[0] for t, v in vectors.items()} == {t: float(len(t)) for t in texts}
    finally:
        await pool.aclose()


@pytest.mark.anyio
async def test_no_upstream_answering_at_start_is_a_clear_error() -> None:
    with FakeUpstream([MODEL]) as fake:
        url = fake.url
    # ``fake`` has stopped: nothing listens on its port any more.
    options = ServerOptions(port=0, upstreams=[Upstream(url=url, connect_timeout=2)])
    with pytest.raises(UpstreamError, match="No upstream answered GET /models") as failure:
        async with running_server(options):
            pass  # pragma: no cover
    assert url in str(failure.value)


# --- options and the command line ------------------------------------------------------


def test_upstream_options_are_checked() -> None:
    with pytest.raises(ValueError, match="http"):
        Upstream(url="ftp://x")
    with pytest.raises(ValueError, match="no credentials in the upstream URL"):
        Upstream(url="http://user:pw@127.0.0.1:8000/v1")
    with pytest.raises(ValueError, match="environment variable name"):
        Upstream(url="http://127.0.0.1:8000/v1", api_key_env="sk-123")
    with pytest.raises(TypeError, match="Upstream objects"):
        ServerOptions(upstreams=["http://127.0.0.1:8000/v1"])  # type: ignore[list-item]
    upstream = Upstream(url="http://127.0.0.1:8000/v1/")
    assert (upstream.url, upstream.root, upstream.label) == (
        "http://127.0.0.1:8000/v1",
        "http://127.0.0.1:8000",
        "127.0.0.1:8000",
    )


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["serve", *argv])


def test_cli_upstreams(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_VLLM_KEY", "k-123")
    options = build_options(
        _args(
            "--scripted",
            "--upstream",
            "http://127.0.0.1:8000/v1",
            "--upstream",
            "http://127.0.0.1:8001/v1",
            "--upstream-key-env",
            "MY_VLLM_KEY",
        )
    )
    assert [u.url for u in options.upstreams] == [
        "http://127.0.0.1:8000/v1",
        "http://127.0.0.1:8001/v1",
    ]
    assert all(u.api_key_env == "MY_VLLM_KEY" for u in options.upstreams)
    assert "k-123" not in repr(options)


def test_cli_missing_key_variable_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MY_VLLM_KEY", raising=False)
    with pytest.raises(UsageError, match="MY_VLLM_KEY"):
        build_options(
            _args("--upstream", "http://127.0.0.1:8000/v1", "--upstream-key-env", "MY_VLLM_KEY")
        )


def test_cli_bad_upstream_url_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="upstream URL"):
        build_options(_args("--scripted", "--upstream", "127.0.0.1:8000"))


def test_upstream_alone_needs_no_local_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lmstudio_sdk.server.bundled_models", lambda: ())
    options = build_options(_args("--upstream", "http://127.0.0.1:8000/v1"))
    assert options.models == ()
    assert len(options.upstreams) == 1


def test_required_tool_choice() -> None:
    def tool(name: str) -> dict[str, object]:
        return {"type": "function", "function": {"name": name, "parameters": {}}}

    messages = [{"role": "user", "content": "x"}]
    one = GenerationRequest(prompt="", messages=messages, tools=[tool("a")], tool_choice="required")
    assert build_body("m", one)[1]["tool_choice"] == {"type": "function", "function": {"name": "a"}}
    two = GenerationRequest(
        prompt="", messages=messages, tools=[tool("a"), tool("b")], tool_choice="required"
    )
    assert build_body("m", two)[1]["tool_choice"] == "required"
    auto = GenerationRequest(prompt="", messages=messages, tools=[tool("a")])
    assert build_body("m", auto)[1]["tool_choice"] == "auto"


def test_cli_reports_an_unreachable_upstream(capsys: pytest.CaptureFixture[str]) -> None:
    from lmstudio_sdk.cli.serve import run

    with FakeUpstream([MODEL]) as fake:
        url = fake.url
    # Nothing listens there any more: serve exits 1 with an error naming the upstream.
    code = run(_args("--scripted", "--port", "0", "--upstream", url))
    assert code == 1
    assert "lmsdk serve: error: No upstream answered GET /models: upstream 127.0.0.1" in (
        capsys.readouterr().err
    )
