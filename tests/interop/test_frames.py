"""Our SDK speaks like the official JS client: the frames both send for the same steps.

``frames_scenario.mjs`` (``@lmstudio/sdk``) and :func:`our_scenario` (this SDK) take the same
user-level steps (list, get-or-load, respond with settings and structured output, tokenize,
embed, act with a tool, cancel a prediction), each against its own scripted server that
records every frame the client sends after authenticating. The recordings are compared per
namespace after normalising what must differ (ids, how a handle names its instance); the
differences we keep on purpose are listed in ``docs/server.md`` ("Our client and the
official ones") and are the only ones :func:`normalise` removes.
"""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from lmstudio_sdk import AsyncClient, PredictionConfig
from lmstudio_sdk.server import BackgroundServer, Script, ServerOptions, scripted_model

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
BOOK = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "year": {"type": "integer"}},
    "required": ["title", "year"],
}
Recording = dict[str, list[Any]]


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


async def our_scenario(url: str) -> None:
    """The steps of ``frames_scenario.mjs``, with this SDK (keep the two in step)."""
    async with AsyncClient(url) as client:
        await client.system.list_downloaded_models()
        model = await client.llm.model("scripted-llm")
        config = PredictionConfig(temperature=0.5, max_tokens=64, top_k_sampling=20)
        result = await model.respond(
            "Name a famous novel and its year.", config=config, response_format=BOOK
        )
        assert set(result.parsed) == {"title", "year"}
        await model.tokenize("Hello world")
        embedder = await client.embedding.model("scripted-embedding")
        await embedder.embed("Hello world")
        await model.act("What is 1 + 2?", [add], max_prediction_rounds=2)  # tools offered
        await model.act("What is 1 + 2?", [add], max_prediction_rounds=1)  # the last round
        slow = await client.llm.model("slow-llm")
        async with slow.respond_stream("Count to a thousand.") as stream:
            async for _fragment in stream:
                await stream.cancel()
                break
        assert stream.result().stats.stop_reason == "userStopped"


def recording_server(frames: Recording) -> BackgroundServer:
    models = [
        scripted_model("scripted-llm", script=Script(text='{"title": "Dune", "year": 1965}')),
        scripted_model(
            "slow-llm", script=Script(fragments=("tick ",) * 2000, fragments_per_second=100)
        ),
        scripted_model("scripted-embedding", domain="embedding"),
    ]

    def record(namespace: str, frame: str | bytes) -> None:
        frames[namespace].append(json.loads(frame))

    return BackgroundServer(ServerOptions(port=0, models=models, frame_recorder=record))


def _kv(stack: dict[str, Any], drop: frozenset[str] = frozenset()) -> list[Any]:
    # Field order within a layer carries no meaning; layer order does.
    return [
        (
            layer["layerName"],
            {f["key"]: f["value"] for f in layer["config"]["fields"] if f["key"] not in drop},
        )
        for layer in stack["layers"]
    ]


def normalise(message: dict[str, Any]) -> dict[str, Any]:
    """A sent message without what differs on purpose (docs/server.md lists each)."""
    message = {k: v for k, v in message.items() if k not in ("callId", "channelId")}
    body = message.get("creationParameter") or message.get("parameter")
    if isinstance(body, dict):
        body = dict(body)
        for name in ("modelSpecifier", "specifier"):
            specifier = body.get(name)
            if isinstance(specifier, dict):
                # JS handles name their instance by instanceReference, ours (like the
                # official Python client's) by identifier: both select the loaded instance.
                assert specifier["type"] in ("instanceReference", "query"), specifier
                body[name] = "<the loaded instance>"
        if "loadTtlMs" in body:
            # Ours, like the official Python client, loads with a default TTL of one hour
            # (a forgotten load does not stay in memory forever); JS sends none.
            assert body.pop("loadTtlMs") == 3_600_000
        if "loadConfigStack" in body:
            # JS always adds its default GPU split ("evenly"); ours leaves GPU settings to
            # the server's per-model defaults.
            body["loadConfigStack"] = _kv(
                body["loadConfigStack"], frozenset({"load.gpuSplitConfig"})
            )
        if "predictionConfigStack" in body:
            body["predictionConfigStack"] = _kv(body["predictionConfigStack"])
        message["creationParameter" if "creationParameter" in message else "parameter"] = body
    return message


@pytest.mark.timeout(300)
def test_our_sdk_sends_what_the_js_client_sends(js_client_command: list[str]) -> None:
    import anyio

    js: Recording = defaultdict(list)
    with recording_server(js) as server:
        proc = subprocess.run(
            [js_client_command[0], str(HERE / "frames_scenario.mjs"), "--base-url", server.url],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["ok"], f"{summary}\n{proc.stderr[-3000:]}"
    assert summary["cancelStopReason"] == "userStopped"

    for backend in ("asyncio", "trio"):
        ours: Recording = defaultdict(list)
        with recording_server(ours) as server:
            anyio.run(our_scenario, server.url, backend=backend)

        assert set(ours) == set(js) == {"system", "llm", "embedding"}
        for namespace in js:
            theirs = [normalise(m) for m in js[namespace]]
            mine = [normalise(m) for m in ours[namespace]]
            assert mine == theirs, (backend, namespace)
        # The cancel is the same bare packet on the prediction's channel.
        cancels = [m for m in ours["llm"] if m["type"] == "channelSend"]
        assert [m["message"] for m in cancels] == [{"type": "cancel"}]
