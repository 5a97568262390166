"""GGUF embedding scenario for the OFFICIAL Python client (``lmstudio`` 1.5.x).

    python tests/interop/gguf_embedding_python.py --host 127.0.0.1:PORT --key KEY

Run against a server whose catalogue serves a GGUF embedding model (llama.cpp's embedding
mode) under ``KEY``: the client lists it, loads it, embeds, tokenizes, counts tokens and
reads its context length and info. A JSON summary goes to stdout as one line (``ok``, and
``failure`` naming the step), everything else to stderr; exit status 1 on failure.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Sequence
from typing import Any

summary: dict[str, Any] = {"client": "lmstudio (PyPI)", "ok": False}
current_step = "startup"


def begin(name: str) -> None:
    global current_step
    current_step = name
    print(f"--- {name}", file=sys.stderr, flush=True)


def run(host: str, key: str, step_timeout: float) -> None:
    import lmstudio as lms

    summary["clientVersion"] = lms.__version__
    lms.set_sync_api_timeout(step_timeout)
    with lms.Client(host) as client:
        begin("list")
        listed = {m.model_key: m for m in client.embedding.list_downloaded()}
        info = listed[key].info
        summary["listed"] = {
            "type": info.type,
            "format": info.format,
            "architecture": info.architecture,
            "maxContextLength": info.max_context_length,
        }

        begin("load and embed")
        model = client.embedding.model(key)
        vector = model.embed("Hello world")
        summary["embedding"] = {"dimensions": len(vector), "head": list(vector[:8])}
        summary["batch"] = [len(v) for v in model.embed(["one", "two", "three"])]

        begin("tokens")
        summary["tokens"] = list(model.tokenize("Hello world"))
        summary["count"] = model.count_tokens("Hello world")

        begin("context length and info")
        summary["contextLength"] = model.get_context_length()
        summary["identifier"] = model.get_info().identifier

        begin("unload")
        model.unload()
        summary["loadedAfter"] = [m.identifier for m in client.embedding.list_loaded()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--step-timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    code = 0
    try:
        run(args.host, args.key, args.step_timeout)
        summary["ok"] = True
    except Exception as exc:
        code = 1
        summary["failure"] = {"step": current_step, "message": f"{type(exc).__name__}: {exc}"}
        print(f"FAILED at step {current_step!r}: {exc}", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
    sys.stdout.write(json.dumps(summary) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
