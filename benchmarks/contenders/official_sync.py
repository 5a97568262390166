"""The official ``lmstudio`` PyPI client (1.5.0), sync API (its websocket thread)."""

from __future__ import annotations

import time
from typing import Any

from _common import (
    CANCEL_MODEL,
    PROMPT,
    STREAM_MODEL,
    TOKENIZE_TEXT,
    Sampler,
    run_contender,
    stream_sample,
    timed_calls,
)


def _client(spec: dict[str, Any]):  # type: ignore[no-untyped-def]
    import lmstudio

    return lmstudio.Client(spec.get("host"))


def _predict(model: Any) -> tuple[int, int, Any]:
    fragments = chars = 0
    stream = model.respond_stream(PROMPT)
    for fragment in stream:
        fragments += 1
        chars += len(fragment.content)
    return fragments, chars, stream.result()


def stream(spec: dict[str, Any]) -> dict[str, Any]:
    with _client(spec) as client:
        warm = client.llm.model(spec["warmup_model"])
        for _ in range(spec["warmup"]):
            _predict(warm)
        model = client.llm.model(spec.get("model", STREAM_MODEL))
        samples = []
        for _ in range(spec["samples"]):
            with Sampler() as s:
                fragments, chars, result = _predict(model)
            samples.append(stream_sample(s, fragments, chars, stop_reason=result.stats.stop_reason))
        return {"samples": samples}


def rpc(spec: dict[str, Any]) -> dict[str, Any]:
    with _client(spec) as client:
        model = client.llm.model(spec["model"])
        for _ in range(spec["warmup"]):
            client.llm.list_loaded()
            model.tokenize(TOKENIZE_TEXT)
        listed = timed_calls(spec["count"], client.llm.list_loaded)
        tokenized = timed_calls(spec["count"], lambda: model.tokenize(TOKENIZE_TEXT))
        return {**listed, "loaded": len(client.llm.list_loaded()), "tokenize": tokenized}


def startup(spec: dict[str, Any]) -> dict[str, Any]:
    t_start = time.monotonic()
    import lmstudio

    t_import = time.monotonic()
    with lmstudio.Client(spec.get("host")) as client:
        loaded = client.llm.list_loaded()
        t_first = time.monotonic()
    return {
        "t_script_start": t_start,
        "t_imported": t_import,
        "t_first_result": t_first,
        "loaded": len(loaded),
    }


def cancel(spec: dict[str, Any]) -> dict[str, Any]:
    with _client(spec) as client:
        model = client.llm.model(spec.get("model", CANCEL_MODEL))
        latencies, counts = [], []
        for i in range(spec["warmup"] + spec["samples"]):
            stream = model.respond_stream(PROMPT)
            seen = 0
            t0 = 0.0
            # The official API: cancel() inside the loop, which then runs to the end.
            for _fragment in stream:
                seen += 1
                if seen == spec["after"]:
                    t0 = time.perf_counter()
                    stream.cancel()
            elapsed = time.perf_counter() - t0
            stop_reason = stream.result().stats.stop_reason
            if stop_reason != "userStopped":
                raise RuntimeError(f"expected userStopped, got {stop_reason!r}")
            if i >= spec["warmup"]:
                latencies.append(elapsed)
                counts.append(seen)
        return {"latencies_s": latencies, "fragments_before_cancel": counts}


if __name__ == "__main__":
    run_contender({"stream": stream, "rpc": rpc, "startup": startup, "cancel": cancel})
