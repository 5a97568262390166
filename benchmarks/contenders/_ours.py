"""Scenarios of our async client, shared by ``ours_trio.py`` and ``ours_asyncio.py``.

Written with anyio only, so the same code runs under both backends; each script picks its
event loop (``trio.run`` / ``asyncio.run``), as an application would. Imported only inside
a scenario, after the timer of ``startup`` started.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
from _common import (
    CANCEL_MODEL,
    CONCURRENT_MODEL,
    PROMPT,
    PROMPT_LLAMA,
    STREAM_MODEL,
    TOKENIZE_TEXT,
    Sampler,
    atimed_calls,
    rss_kib,
    stream_sample,
)

import lmstudio_sdk
from lmstudio_sdk import AsyncClient
from lmstudio_sdk.results import PredictionFragment


def client(spec: dict[str, Any]) -> AsyncClient:
    host = spec.get("host")
    return AsyncClient(f"ws://{host}" if host else None)


def supported() -> bool:
    """Whether model handles stream predictions yet (the client is being written)."""
    return hasattr(lmstudio_sdk.AsyncLLM, "respond_stream")


async def predict(model: Any, config: Any = None) -> tuple[int, int, Any]:
    fragments = chars = 0
    kwargs = {} if config is None else {"config": config}
    async with model.respond_stream(PROMPT, **kwargs) as stream:
        async for event in stream:
            if type(event) is PredictionFragment:
                fragments += 1
                chars += len(event.content)
    return fragments, chars, stream.result()


async def stream(spec: dict[str, Any]) -> dict[str, Any]:
    async with client(spec) as c:
        warm = await c.llm.model(spec["warmup_model"])
        for _ in range(spec["warmup"]):
            await predict(warm)
        model = await c.llm.model(spec.get("model", STREAM_MODEL))
        samples = []
        for _ in range(spec["samples"]):
            with Sampler() as s:
                fragments, chars, result = await predict(model)
            samples.append(stream_sample(s, fragments, chars, stop_reason=result.stop_reason))
        return {"samples": samples}


async def rpc(spec: dict[str, Any]) -> dict[str, Any]:
    async with client(spec) as c:
        model = await c.llm.model(spec["model"])
        for _ in range(spec["warmup"]):
            await c.llm.list_loaded()
            await model.tokenize(TOKENIZE_TEXT)
        listed = await atimed_calls(spec["count"], c.llm.list_loaded)
        tokenized = await atimed_calls(spec["count"], lambda: model.tokenize(TOKENIZE_TEXT))
        return {**listed, "loaded": len(await c.llm.list_loaded()), "tokenize": tokenized}


async def startup(spec: dict[str, Any], t_start: float, t_imported: float) -> dict[str, Any]:
    async with client(spec) as c:
        loaded = await c.llm.list_loaded()
        t_first = time.monotonic()
    return {
        "t_script_start": t_start,
        "t_imported": t_imported,
        "t_first_result": t_first,
        "loaded": len(loaded),
    }


async def cancel(spec: dict[str, Any]) -> dict[str, Any]:
    async with client(spec) as c:
        model = await c.llm.model(spec.get("model", CANCEL_MODEL))
        latencies, counts = [], []
        for i in range(spec["warmup"] + spec["samples"]):
            seen = 0
            t0 = 0.0
            async with model.respond_stream(PROMPT) as s:
                async for event in s:
                    if type(event) is PredictionFragment:
                        seen += 1
                        if seen >= spec["after"]:
                            t0 = time.perf_counter()
                            break
            # Leaving the scope sent the cancel and waited for the server's channelClose.
            elapsed = time.perf_counter() - t0
            stop_reason = s.result().stop_reason
            if stop_reason != "userStopped":
                raise RuntimeError(f"expected userStopped, got {stop_reason!r}")
            if i >= spec["warmup"]:
                latencies.append(elapsed)
                counts.append(seen)
        return {"latencies_s": latencies, "fragments_before_cancel": counts}


async def concurrent(spec: dict[str, Any]) -> dict[str, Any]:
    async with client(spec) as c:

        async def round_(model: Any, channels: int) -> tuple[list[int], list[int], int, int]:
            fragments = [0] * channels
            chars = [0] * channels
            opened = 0
            all_open = anyio.Event()

            async def one(index: int) -> None:
                nonlocal opened
                async with model.respond_stream(PROMPT) as s:
                    opened += 1
                    if opened == channels:
                        all_open.set()
                    async for event in s:
                        if type(event) is PredictionFragment:
                            fragments[index] += 1
                            chars[index] += len(event.content)

            rss_before = rss_kib()
            async with anyio.create_task_group() as tg:
                for index in range(channels):
                    tg.start_soon(one, index)
                await all_open.wait()
                rss_open = rss_kib()
            return fragments, chars, rss_before, rss_open

        warm = await c.llm.model(spec["warmup_model"])
        await round_(warm, spec["warmup_channels"])
        model = await c.llm.model(spec.get("model", CONCURRENT_MODEL))
        with Sampler() as s:
            fragments, chars, rss_before, rss_open = await round_(model, spec["channels"])
        return {
            "cpu_s": s.cpu,
            "wall_s": s.wall,
            "fragments": fragments,
            "chars": chars,
            "rss_before_kib": rss_before,
            "rss_open_kib": rss_open,
        }


async def llama(spec: dict[str, Any]) -> dict[str, Any]:
    import hashlib

    config = {"temperature": 0.0, "max_tokens": spec["max_tokens"]}
    async with client(spec) as c:
        model = await c.llm.model(spec["model"])
        samples = []
        for i in range(spec["warmup"] + spec["samples"]):
            text: list[str] = []
            t0 = time.perf_counter()
            async with model.respond_stream(PROMPT_LLAMA, config=config) as s:
                async for event in s:
                    if type(event) is PredictionFragment:
                        text.append(event.content)
            wall = time.perf_counter() - t0
            result = s.result()
            if i >= spec["warmup"]:
                content = "".join(text)
                samples.append(
                    {
                        "wall_s": wall,
                        "tokens": result.stats.predicted_tokens_count,
                        "stop_reason": result.stop_reason,
                        "text_hash": hashlib.sha1(content.encode()).hexdigest()[:12],
                    }
                )
        return {"samples": samples}
