"""The raw-websocket floor, shared by ``raw_trio.py`` and ``raw_asyncio.py``.

No SDK: frames are written by hand and read with the JSON parser our codec uses (orjson
when installed, else the stdlib), the least any client must do. Counting a fragment means
parsing its frame and looking at two ``type`` fields; nothing is validated or structured.
The websocket library is configured as our transports configure it (same queue sizes,
buffer sizes and no compression), so the floor differs from our client only by the SDK.

The backend module supplies a ``Socket`` with ``send(str)`` and ``recv() -> str``.
"""

from __future__ import annotations

import os
import time
from typing import Any, Protocol

from _common import (
    CANCEL_MODEL,
    CONCURRENT_MODEL,
    PROMPT,
    STREAM_MODEL,
    TOKENIZE_TEXT,
    Sampler,
    atimed_calls,
    rss_kib,
    stream_sample,
)

try:
    import orjson

    def dumps(value: Any) -> str:
        return orjson.dumps(value).decode()

    loads = orjson.loads
    JSON_LIBRARY = "orjson"
except ImportError:  # pragma: no cover - depends on the environment
    import json

    dumps = json.dumps
    loads = json.loads
    JSON_LIBRARY = "json"

MAX_MESSAGE_SIZE = 64 * 2**20


class Socket(Protocol):
    async def send(self, text: str) -> None: ...

    async def recv(self) -> str: ...


def auth_frame() -> str:
    return dumps(
        {
            "authVersion": 1,
            "clientIdentifier": f"guest:bench-raw-{os.getpid()}",
            "clientPasskey": f"raw-{os.getpid()}",
        }
    )


def predict_frame(channel_id: int, model: str) -> str:
    return dumps(
        {
            "type": "channelCreate",
            "endpoint": "predict",
            "channelId": channel_id,
            "creationParameter": {
                "modelSpecifier": {"type": "query", "query": {"identifier": model}},
                "history": {
                    "messages": [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}]
                },
                "predictionConfigStack": {"layers": []},
            },
        }
    )


def cancel_frame(channel_id: int) -> str:
    return dumps({"type": "channelSend", "channelId": channel_id, "message": {"type": "cancel"}})


def list_loaded_frame(call_id: int) -> str:
    return dumps({"type": "rpcCall", "endpoint": "listLoaded", "callId": call_id})


async def authenticate(ws: Socket) -> None:
    await ws.send(auth_frame())
    reply = loads(await ws.recv())
    if reply.get("success") is not True:
        raise RuntimeError(f"authentication failed: {reply}")


class Counter:
    """Channel and call ids for one socket."""

    def __init__(self) -> None:
        self.next_id = 0

    def __call__(self) -> int:
        self.next_id += 1
        return self.next_id


async def predict(ws: Socket, channel_id: int, model: str) -> tuple[int, int]:
    """One prediction; returns (fragments, characters) received before ``channelClose``."""
    await ws.send(predict_frame(channel_id, model))
    fragments = chars = 0
    while True:
        msg = loads(await ws.recv())
        kind = msg["type"]
        if kind == "channelSend":
            packet = msg["message"]
            if packet["type"] == "fragment":
                fragments += 1
                chars += len(packet["fragment"]["content"])
        elif kind == "channelClose":
            return fragments, chars
        elif kind == "channelError":
            raise RuntimeError(f"channelError: {msg['error']}")


def tokenize_frame(call_id: int, model: str) -> str:
    specifier = {"type": "query", "query": {"identifier": model}}
    parameter = {"specifier": specifier, "inputString": TOKENIZE_TEXT}
    return dumps(
        {"type": "rpcCall", "endpoint": "tokenize", "callId": call_id, "parameter": parameter}
    )


async def list_loaded(ws: Socket, call_id: int) -> Any:
    return await rpc_call(ws, call_id, list_loaded_frame(call_id))


async def tokenize(ws: Socket, call_id: int, model: str) -> Any:
    return await rpc_call(ws, call_id, tokenize_frame(call_id, model))


async def rpc_call(ws: Socket, call_id: int, frame: str) -> Any:
    """Send the ``rpcCall`` frame of ``call_id`` and return its result."""
    await ws.send(frame)
    while True:
        msg = loads(await ws.recv())
        if msg["type"] == "rpcResult" and msg["callId"] == call_id:
            return msg.get("result")
        if msg["type"] == "rpcError":
            raise RuntimeError(f"rpcError: {msg['error']}")


# --- scenarios (the backend passes an open, authenticated socket) ---------------------------


async def scenario_stream(ws: Socket, spec: dict[str, Any]) -> dict[str, Any]:
    ids = Counter()
    for _ in range(spec["warmup"]):
        await predict(ws, ids(), spec["warmup_model"])
    samples = []
    for _ in range(spec["samples"]):
        with Sampler() as s:
            fragments, chars = await predict(ws, ids(), spec.get("model", STREAM_MODEL))
        samples.append(stream_sample(s, fragments, chars))
    return {"samples": samples}


async def scenario_rpc(ws: Socket, spec: dict[str, Any]) -> dict[str, Any]:
    ids = Counter()
    model = spec["model"]
    for _ in range(spec["warmup"]):
        await list_loaded(ws, ids())
        await tokenize(ws, ids(), model)
    listed = await atimed_calls(spec["count"], lambda: list_loaded(ws, ids()))
    tokenized = await atimed_calls(spec["count"], lambda: tokenize(ws, ids(), model))
    loaded = len(await list_loaded(ws, ids()))
    return {**listed, "loaded": loaded, "tokenize": tokenized}


async def scenario_cancel(ws: Socket, spec: dict[str, Any]) -> dict[str, Any]:
    ids = Counter()
    latencies = []
    counts = []
    for i in range(spec["warmup"] + spec["samples"]):
        channel_id = ids()
        await ws.send(predict_frame(channel_id, spec.get("model", CANCEL_MODEL)))
        seen = 0
        while seen < spec["after"]:
            msg = loads(await ws.recv())
            if msg["type"] == "channelSend" and msg["message"]["type"] == "fragment":
                seen += 1
            elif msg["type"] in ("channelClose", "channelError"):
                raise RuntimeError(f"the prediction ended before the cancel: {msg}")
        t0 = time.perf_counter()
        await ws.send(cancel_frame(channel_id))
        stop_reason = None
        while True:
            msg = loads(await ws.recv())
            if msg["type"] == "channelSend" and msg["message"]["type"] == "success":
                stop_reason = msg["message"]["stats"]["stopReason"]
            elif msg["type"] == "channelClose":
                break
        elapsed = time.perf_counter() - t0
        if i >= spec["warmup"]:
            latencies.append(elapsed)
            counts.append(seen)
        if stop_reason != "userStopped":
            raise RuntimeError(f"expected stopReason userStopped, got {stop_reason!r}")
    return {"latencies_s": latencies, "fragments_before_cancel": counts}


async def scenario_concurrent(ws: Socket, spec: dict[str, Any]) -> dict[str, Any]:
    """All channels on one socket: one loop reads every frame and counts per channel."""
    ids = Counter()

    async def round_(channels: int) -> tuple[list[int], list[int], int, int]:
        first = ids.next_id + 1
        rss_before = rss_kib()
        for _ in range(channels):
            await ws.send(predict_frame(ids(), spec.get("model", CONCURRENT_MODEL)))
        rss_open = rss_kib()
        fragments = [0] * channels
        chars = [0] * channels
        open_ = channels
        while open_:
            msg = loads(await ws.recv())
            kind = msg["type"]
            if kind == "channelSend":
                packet = msg["message"]
                if packet["type"] == "fragment":
                    index = msg["channelId"] - first
                    fragments[index] += 1
                    chars[index] += len(packet["fragment"]["content"])
            elif kind == "channelClose":
                open_ -= 1
            elif kind == "channelError":
                raise RuntimeError(f"channelError: {msg['error']}")
        return fragments, chars, rss_before, rss_open

    await round_(spec["warmup_channels"])
    with Sampler() as s:
        fragments, chars, rss_before, rss_open = await round_(spec["channels"])
    return {
        "cpu_s": s.cpu,
        "wall_s": s.wall,
        "fragments": fragments,
        "chars": chars,
        "rss_before_kib": rss_before,
        "rss_open_kib": rss_open,
    }
