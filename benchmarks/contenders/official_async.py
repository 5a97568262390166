"""The official ``lmstudio`` PyPI client (1.5.0), async API, under asyncio."""

from __future__ import annotations

import time
from typing import Any

from _common import (
    CANCEL_MODEL,
    CONCURRENT_MODEL,
    PROMPT,
    STREAM_MODEL,
    TOKENIZE_TEXT,
    Sampler,
    atimed_calls,
    rss_kib,
    run_contender,
    stream_sample,
)


def _client(spec: dict[str, Any]):  # type: ignore[no-untyped-def]
    import lmstudio

    return lmstudio.AsyncClient(spec.get("host"))


async def _predict(model: Any) -> tuple[int, int, Any]:
    fragments = chars = 0
    stream = await model.respond_stream(PROMPT)
    async for fragment in stream:
        fragments += 1
        chars += len(fragment.content)
    return fragments, chars, stream.result()


def stream(spec: dict[str, Any]) -> dict[str, Any]:
    import asyncio

    async def main() -> dict[str, Any]:
        async with _client(spec) as client:
            warm = await client.llm.model(spec["warmup_model"])
            for _ in range(spec["warmup"]):
                await _predict(warm)
            model = await client.llm.model(spec.get("model", STREAM_MODEL))
            samples = []
            for _ in range(spec["samples"]):
                with Sampler() as s:
                    fragments, chars, result = await _predict(model)
                samples.append(
                    stream_sample(s, fragments, chars, stop_reason=result.stats.stop_reason)
                )
            return {"samples": samples}

    return asyncio.run(main())


def rpc(spec: dict[str, Any]) -> dict[str, Any]:
    import asyncio

    async def main() -> dict[str, Any]:
        async with _client(spec) as client:
            model = await client.llm.model(spec["model"])
            for _ in range(spec["warmup"]):
                await client.llm.list_loaded()
                await model.tokenize(TOKENIZE_TEXT)
            listed = await atimed_calls(spec["count"], client.llm.list_loaded)
            tokenized = await atimed_calls(spec["count"], lambda: model.tokenize(TOKENIZE_TEXT))
            loaded = len(await client.llm.list_loaded())
            return {**listed, "loaded": loaded, "tokenize": tokenized}

    return asyncio.run(main())


def startup(spec: dict[str, Any]) -> dict[str, Any]:
    import asyncio

    t_start = time.monotonic()
    import lmstudio

    t_import = time.monotonic()

    async def main() -> dict[str, Any]:
        async with lmstudio.AsyncClient(spec.get("host")) as client:
            loaded = await client.llm.list_loaded()
            t_first = time.monotonic()
        return {
            "t_script_start": t_start,
            "t_imported": t_import,
            "t_first_result": t_first,
            "loaded": len(loaded),
        }

    return asyncio.run(main())


def cancel(spec: dict[str, Any]) -> dict[str, Any]:
    import asyncio

    async def main() -> dict[str, Any]:
        async with _client(spec) as client:
            model = await client.llm.model(spec.get("model", CANCEL_MODEL))
            latencies, counts = [], []
            for i in range(spec["warmup"] + spec["samples"]):
                stream = await model.respond_stream(PROMPT)
                seen = 0
                t0 = 0.0
                # The official API: cancel() inside the loop, which then runs to the end.
                async for _fragment in stream:
                    seen += 1
                    if seen == spec["after"]:
                        t0 = time.perf_counter()
                        await stream.cancel()
                elapsed = time.perf_counter() - t0
                stop_reason = stream.result().stats.stop_reason
                if stop_reason != "userStopped":
                    raise RuntimeError(f"expected userStopped, got {stop_reason!r}")
                if i >= spec["warmup"]:
                    latencies.append(elapsed)
                    counts.append(seen)
            return {"latencies_s": latencies, "fragments_before_cancel": counts}

    return asyncio.run(main())


def concurrent(spec: dict[str, Any]) -> dict[str, Any]:
    import asyncio

    async def main() -> dict[str, Any]:
        async with _client(spec) as client:
            model = await client.llm.model(spec.get("model", CONCURRENT_MODEL))

            async def round_(channels: int) -> tuple[list[int], list[int], int, int]:
                fragments = [0] * channels
                chars = [0] * channels
                opened = 0
                all_open = asyncio.Event()

                async def one(index: int) -> None:
                    nonlocal opened
                    stream = await model.respond_stream(PROMPT)
                    await stream.start()
                    opened += 1
                    if opened == channels:
                        all_open.set()
                    async for fragment in stream:
                        fragments[index] += 1
                        chars[index] += len(fragment.content)

                rss_before = rss_kib()
                tasks = [asyncio.create_task(one(i)) for i in range(channels)]
                await all_open.wait()
                rss_open = rss_kib()
                await asyncio.gather(*tasks)
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

    return asyncio.run(main())


if __name__ == "__main__":
    run_contender(
        {
            "stream": stream,
            "rpc": rpc,
            "startup": startup,
            "cancel": cancel,
            "concurrent": concurrent,
        }
    )
