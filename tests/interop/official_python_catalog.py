"""Catalogue and error scenario for the OFFICIAL Python client (``lmstudio`` 1.5.x).

    python tests/interop/official_python_catalog.py --host 127.0.0.1:PORT

Run against ``lmsdk serve --catalog docs/examples/catalog.toml``: the models are named the
LM Studio way (``llama-3.2-1b-instruct``, ``hugging-quants/llama-3.2-1b-instruct``,
``text-embedding-nomic-embed-text-v1.5``...). Each step checks what a user of the client
would check, and LM Studio's errors are checked through the client's own error classes.
Like ``official_python.py``, a JSON summary goes to stdout as one line (``ok``, and
``failure`` naming the step), everything else to stderr; exit status 1 on failure.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

summary: dict[str, Any] = {"client": "lmstudio (PyPI)", "ok": False}
current_step = "startup"

LLM_KEY = "llama-3.2-1b-instruct"
LLM_PATH = "hugging-quants/llama-3.2-1b-instruct"
EMBEDDING_KEY = "text-embedding-nomic-embed-text-v1.5"
EMBEDDING_PATH = "nomic-ai/nomic-embed-text-v1.5"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


class CheckFailedError(Exception):
    """A user-level check failed."""


def fail(message: str) -> NoReturn:
    raise CheckFailedError(message)


def check(condition: object, message: str) -> None:
    if not condition:
        fail(message)


def begin(name: str) -> None:
    global current_step
    current_step = name
    print(f"--- {name}", file=sys.stderr, flush=True)


def raises(error: type[BaseException], body: Any) -> BaseException:
    try:
        body()
    except error as exc:
        return exc
    fail(f"expected {error.__name__}, nothing was raised")


def run(host: str, step_timeout: float) -> None:
    import lmstudio as lms

    summary["clientVersion"] = lms.__version__
    lms.set_sync_api_timeout(step_timeout)
    with lms.Client(host) as client:
        begin("list")
        downloaded = {m.model_key: m for m in client.list_downloaded_models()}
        check(LLM_KEY in downloaded, f"{LLM_KEY} is not listed: {sorted(downloaded)}")
        check(EMBEDDING_KEY in downloaded, f"{EMBEDDING_KEY} is not listed: {sorted(downloaded)}")
        summary["paths"] = {key: downloaded[key].path for key in (LLM_KEY, EMBEDDING_KEY)}

        begin("llm by key and by path")
        by_key = client.llm.model(LLM_KEY)
        by_path = client.llm.model(LLM_PATH)
        check(by_key.identifier == by_path.identifier == LLM_KEY, "the LLM was loaded twice")
        reply = by_path.respond("Say hello.", config={"maxTokens": 8})
        summary["llm"] = {"identifier": by_key.identifier, "text": reply.content}

        begin("embedding by key and by path")
        embedder = client.embedding.model(EMBEDDING_PATH)
        check(embedder.identifier == EMBEDDING_KEY, f"identifier {embedder.identifier!r}")
        check(client.embedding.model(EMBEDDING_KEY).identifier == EMBEDDING_KEY, "loaded twice")
        tokens = embedder.tokenize("Hello world")
        summary["embedding"] = {
            "dimensions": len(embedder.embed("Hello world")),
            "tokens": len(tokens),
            "count": embedder.count_tokens("Hello world"),
        }

        begin("unload unknown")
        error = raises(lms.LMStudioModelNotFoundError, lambda: client.llm.unload("nobody"))
        summary["unloadUnknown"] = type(error).__name__

        begin("identifier taken")
        twin = client.llm.load_new_instance(LLM_KEY, "twin")
        error = raises(
            lms.LMStudioServerError, lambda: client.llm.load_new_instance(LLM_KEY, "twin")
        )
        check(
            re.search("Model load error.*already exists", str(error)),
            f"the error does not say 'Model load error ... already exists': {error}",
        )
        summary["identifierTaken"] = str(error)
        twin.unload()

        begin("image to a text-only model")
        image = client.files.prepare_image(PNG, "pixel.png")
        chat = lms.Chat()
        chat.add_user_message("What is this?", images=[image])
        error = raises(lms.LMStudioServerError, lambda: by_key.respond(chat))
        summary["imageRefused"] = str(error)

        begin("unload")
        client.llm.unload(LLM_KEY)
        client.embedding.unload(EMBEDDING_KEY)
        summary["loadedAfter"] = [m.identifier for m in client.llm.list_loaded()]


def run_jit(host: str, step_timeout: float) -> None:
    """``--jit``: LM Studio's Auto-Evict, against a catalogue with ``model-a``, ``-b``, ``-c``."""
    import lmstudio as lms

    lms.set_sync_api_timeout(step_timeout)
    with lms.Client(host) as client:
        begin("explicit load")
        client.llm.load_new_instance("model-c", "pinned")
        begin("jit loads")
        client.llm.model("model-a")
        after_a = sorted(m.identifier for m in client.llm.list_loaded())
        client.llm.model("model-b")  # evicts the JIT-loaded model-a, not "pinned"
        after_b = sorted(m.identifier for m in client.llm.list_loaded())
        summary["jit"] = {"afterA": after_a, "afterB": after_b}
        begin("image to a vision model")  # model-c is declared vision = true
        chat = lms.Chat()
        chat.add_user_message("What is this?", images=[client.files.prepare_image(PNG, "p.png")])
        summary["visionReply"] = (
            client.llm.model("pinned").respond(chat, config={"maxTokens": 8}).content
        )
        begin("unload")
        for handle in client.llm.list_loaded():
            handle.unload()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True, help="api_host, e.g. 127.0.0.1:41343")
    parser.add_argument("--step-timeout", type=float, default=120.0)
    parser.add_argument("--jit", action="store_true", help="run the Auto-Evict steps only")
    args = parser.parse_args(argv)
    code = 0
    try:
        (run_jit if args.jit else run)(args.host, args.step_timeout)
        summary["ok"] = True
    except Exception as exc:
        code = 1
        message = str(exc) if isinstance(exc, CheckFailedError) else f"{type(exc).__name__}: {exc}"
        summary["failure"] = {"step": current_step, "message": message}
        print(f"FAILED at step {current_step!r}: {message}", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
    sys.stdout.write(json.dumps(summary) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
