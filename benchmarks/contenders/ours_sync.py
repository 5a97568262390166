"""Our sync facade (``lmstudio_sdk.Client``): the async core behind a blocking portal."""

from __future__ import annotations

import sys
import time
from typing import Any

from _common import (
    CANCEL_MODEL,
    PROMPT,
    STREAM_MODEL,
    TOKENIZE_TEXT,
    UNSUPPORTED,
    Sampler,
    run_contender,
    stream_sample,
    timed_calls,
)


def _client(spec: dict[str, Any]) -> Any:
    import lmstudio_sdk

    if not hasattr(lmstudio_sdk, "Client"):
        print("lmstudio_sdk has no sync Client yet", file=sys.stderr)
        sys.exit(UNSUPPORTED)
    host = spec.get("host")
    return lmstudio_sdk.Client(f"ws://{host}" if host else None)


def _fragment_class() -> type:
    from lmstudio_sdk.results import PredictionFragment
    from lmstudio_sdk.sync.handles import LLM

    if not hasattr(LLM, "respond_stream"):
        print("lmstudio_sdk: sync model handles have no respond_stream yet", file=sys.stderr)
        sys.exit(UNSUPPORTED)

    return PredictionFragment


def _predict(model: Any, fragment_class: type) -> tuple[int, int, Any]:
    fragments = chars = 0
    with model.respond_stream(PROMPT) as stream:
        for event in stream:
            if type(event) is fragment_class:
                fragments += 1
                chars += len(event.content)
    return fragments, chars, stream.result()


def stream(spec: dict[str, Any]) -> dict[str, Any]:
    fragment_class = _fragment_class()
    with _client(spec) as client:
        warm = client.llm.model(spec["warmup_model"])
        for _ in range(spec["warmup"]):
            _predict(warm, fragment_class)
        model = client.llm.model(spec.get("model", STREAM_MODEL))
        samples = []
        for _ in range(spec["samples"]):
            with Sampler() as s:
                fragments, chars, result = _predict(model, fragment_class)
            samples.append(stream_sample(s, fragments, chars, stop_reason=result.stop_reason))
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
    import lmstudio_sdk

    client_class = getattr(lmstudio_sdk, "Client", None)
    t_imported = time.monotonic()
    if client_class is None:
        print("lmstudio_sdk has no sync Client yet", file=sys.stderr)
        sys.exit(UNSUPPORTED)
    host = spec.get("host")
    with client_class(f"ws://{host}" if host else None) as client:
        loaded = client.llm.list_loaded()
        t_first = time.monotonic()
    return {
        "t_script_start": t_start,
        "t_imported": t_imported,
        "t_first_result": t_first,
        "loaded": len(loaded),
    }


def cancel(spec: dict[str, Any]) -> dict[str, Any]:
    fragment_class = _fragment_class()
    with _client(spec) as client:
        model = client.llm.model(spec.get("model", CANCEL_MODEL))
        latencies, counts = [], []
        for i in range(spec["warmup"] + spec["samples"]):
            seen = 0
            t0 = 0.0
            with model.respond_stream(PROMPT) as s:
                for event in s:
                    if type(event) is fragment_class:
                        seen += 1
                        if seen >= spec["after"]:
                            t0 = time.perf_counter()
                            break
            elapsed = time.perf_counter() - t0
            stop_reason = s.result().stop_reason
            if stop_reason != "userStopped":
                raise RuntimeError(f"expected userStopped, got {stop_reason!r}")
            if i >= spec["warmup"]:
                latencies.append(elapsed)
                counts.append(seen)
        return {"latencies_s": latencies, "fragments_before_cancel": counts}


if __name__ == "__main__":
    run_contender({"stream": stream, "rpc": rpc, "startup": startup, "cancel": cancel})
