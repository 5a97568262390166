"""Interop scenario for the OFFICIAL Python client (``lmstudio`` 1.5.x from PyPI).

    python tests/interop/official_python.py --host 127.0.0.1:PORT

Every step is checked the way a user of the client would check it. The first failed check
stops the run: a message naming the step goes to stderr and the exit status is 1. In every
case a JSON summary of what was observed (with ``ok`` and, on failure, ``failure``) is
written to stdout as a single line; everything else (including the client's own logging)
goes to stderr.

The client's sync API waits at most ``--step-timeout`` seconds for each server message
(``lmstudio.set_sync_api_timeout``), so a server that never answers fails the run instead of
hanging it.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

T = TypeVar("T")

summary: dict[str, Any] = {"client": "lmstudio (PyPI)", "ok": False}


class CheckFailedError(Exception):
    """A user-level check failed."""


def fail(message: str) -> NoReturn:
    raise CheckFailedError(message)


def check(condition: object, message: str) -> None:
    if not condition:
        fail(message)


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class RecordingHandler(logging.Handler):
    """Records every warning or error the official client logs (and Python warnings)."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[dict[str, str]] = []
        self.seen = 0
        self.step = "startup"

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(
            {
                "step": self.step,
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            }
        )

    def check_no_new_records(self, step: str) -> None:
        fresh = self.records[self.seen :]
        self.seen = len(self.records)
        if fresh:
            details = " | ".join(f"[{r['level']}] {r['logger']}: {r['message']}" for r in fresh)
            fail(
                f"the official client logged {len(fresh)} warning(s)/error(s) during "
                f"{step!r} (a faithful server causes none): {details}"
            )


recorder = RecordingHandler()
current_step = "startup"


def begin_step(name: str) -> None:
    global current_step
    current_step = recorder.step = name
    print(f"--- {name}", file=sys.stderr, flush=True)


def end_step(name: str) -> None:
    recorder.check_no_new_records(name)


def step(name: str, body: Callable[[], T]) -> T:
    begin_step(name)
    try:
        result = body()
    except Exception as exc:
        # What the client logged usually explains the failure (e.g. a message it rejected).
        fresh = recorder.records[recorder.seen :]
        if fresh:
            details = " | ".join(f"[{r['level']}] {r['logger']}: {r['message']}" for r in fresh)
            fail(f"{describe(exc)}; the official client logged: {details}")
        raise
    end_step(name)
    return result


def describe(exc: BaseException) -> str:
    if isinstance(exc, CheckFailedError):
        return str(exc)
    return f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def stats_dict(stats: Any) -> dict[str, Any]:
    return {
        "stopReason": stats.stop_reason,
        "tokensPerSecond": stats.tokens_per_second,
        "timeToFirstTokenSec": stats.time_to_first_token_sec,
        "predictedTokensCount": stats.predicted_tokens_count,
        "promptTokensCount": stats.prompt_tokens_count,
        "totalTokensCount": stats.total_tokens_count,
    }


def check_stats(stats: Any, where: str) -> None:
    check(isinstance(stats.stop_reason, str), f"{where}: stats.stop_reason missing")
    tps = stats.tokens_per_second
    check(
        isinstance(tps, float | int) and tps > 0,
        f"{where}: stats.tokens_per_second should be a positive number, got {tps!r}",
    )
    ttft = stats.time_to_first_token_sec
    check(
        isinstance(ttft, float | int) and ttft >= 0,
        f"{where}: stats.time_to_first_token_sec should be a number >= 0, got {ttft!r}",
    )
    predicted = stats.predicted_tokens_count
    check(
        is_int(predicted) and predicted >= 1,
        f"{where}: stats.predicted_tokens_count should be an integer >= 1, got {predicted!r}",
    )
    prompt = stats.prompt_tokens_count
    check(
        is_int(prompt) and prompt >= 1,
        f"{where}: stats.prompt_tokens_count should be an integer >= 1, got {prompt!r}",
    )


def run(host: str, llm_key: str, embedding_key: str, step_timeout: float) -> None:
    try:
        import lmstudio as lms
    except ImportError as exc:
        fail(f"cannot import the official client ({exc}); run: pip install lmstudio==1.5.0")
    summary["clientVersion"] = lms.__version__
    recorder.seen = len(recorder.records)  # import-time warnings are not the server's doing
    summary["host"] = host
    lms.set_sync_api_timeout(step_timeout)

    # 1. Connect. With an explicit api_host the client still probes
    #    GET http://HOST/lmstudio-greeting (1 s timeout) when the `with` block is entered,
    #    and refuses the host unless the answer is 200 with {"lmstudio": true}.
    begin_step("connect")
    with lms.Client(host) as client:
        end_step("connect")
        summary["connected"] = client.api_host
        scenario(lms, client, llm_key, embedding_key)


def scenario(lms: Any, client: Any, llm_key: str, embedding_key: str) -> None:
    # 2. What is on disk, what is in memory.
    def list_downloaded() -> None:
        downloaded = client.list_downloaded_models()
        summary["downloaded"] = [
            {
                "modelKey": m.model_key,
                "type": m.type,
                "format": m.info.format,
                "path": m.path,
                "displayName": m.info.display_name,
                "sizeBytes": m.info.size_bytes,
                "maxContextLength": m.info.max_context_length,
            }
            for m in downloaded
        ]
        by_key = {m.model_key: m for m in downloaded}
        check(
            llm_key in by_key,
            f"{llm_key} is not among the downloaded models: {summary['downloaded']}",
        )
        check(
            by_key[llm_key].type == "llm", f"{llm_key} is listed with type {by_key[llm_key].type!r}"
        )
        check(embedding_key in by_key, f"{embedding_key} is not among the downloaded models")
        check(
            by_key[embedding_key].type == "embedding",
            f"{embedding_key} is listed with type {by_key[embedding_key].type!r}",
        )

    step("listDownloadedModels", list_downloaded)

    def list_loaded() -> None:
        llms = client.llm.list_loaded()
        embeddings = client.embedding.list_loaded()
        summary["loadedBefore"] = {
            "llm": [m.identifier for m in llms],
            "embedding": [m.identifier for m in embeddings],
        }
        # Start from "not loaded", so that get-or-load really loads and reports progress.
        for handle in llms:
            if handle.get_info().model_key == llm_key:
                handle.unload()
        still = [
            m.identifier for m in client.llm.list_loaded() if m.get_info().model_key == llm_key
        ]
        check(not still, f"{llm_key} is still listed as loaded after unloading it: {still}")

    step("listLoaded", list_loaded)

    # 3. Get-or-load with progress. The client reports 0.0 when the server says
    #    startLoading, each loadProgress value that moves forward, and 1.0 on loadSuccess.
    progress: list[float] = []

    def load() -> Any:
        model = client.llm.model(llm_key, on_load_progress=progress.append)
        info = model.get_info()
        summary["load"] = {
            "identifier": model.identifier,
            "modelKey": info.model_key,
            "path": info.path,
            "format": info.format,
            "displayName": info.display_name,
            "progress": progress,
        }
        check(info.model_key == llm_key, f"loaded model has model_key {info.model_key!r}")
        check(progress, "no load progress was reported")
        check(
            progress[0] == 0.0,
            f"the first progress value should be 0.0 (the server's startLoading), got {progress}",
        )
        check(progress[-1] == 1.0, f"the last progress value should be 1.0, got {progress}")
        check(all(0.0 <= p <= 1.0 for p in progress), f"progress outside [0, 1]: {progress}")
        loaded = [m.identifier for m in client.llm.list_loaded()]
        check(model.identifier in loaded, f"{model.identifier} is not listed as loaded: {loaded}")
        return model

    model = step("load", load)

    def model_info() -> None:
        info = model.get_info()
        context_length = model.get_context_length()
        load_config = model.get_load_config()
        summary["modelInfo"] = {
            "identifier": info.identifier,
            "modelKey": info.model_key,
            "contextLength": info.context_length,
            "maxContextLength": info.max_context_length,
            "contextLengthFromLoadConfig": load_config.context_length,
        }
        check(info.identifier == model.identifier, f"get_info() names {info.identifier!r}")
        check(
            is_int(info.context_length) and info.context_length > 0,
            "contextLength should be a positive integer",
        )
        check(
            context_length == info.context_length,
            f"get_context_length() is {context_length}, get_info().context_length is {info.context_length}",
        )

    step("modelInfo", model_info)

    # 4. Streamed chat response.
    def chat() -> None:
        history = lms.Chat("You are a helpful assistant. Answer briefly.")
        history.add_user_message("What is the capital of France?")
        prompt_progress: list[float] = []
        stream = model.respond_stream(
            history,
            config={"maxTokens": 48, "temperature": 0.0},
            on_prompt_processing_progress=prompt_progress.append,
        )
        fragments = [fragment.content for fragment in stream]
        result = stream.result()
        summary["chat"] = {
            "text": result.content,
            "fragments": len(fragments),
            "stats": stats_dict(result.stats),
            "modelKey": result.model_info.model_key,
            "promptProcessingProgress": prompt_progress,
        }
        check(fragments, "no fragment was streamed")
        check(result.content.strip(), "the response text is empty")
        check(
            result.content == "".join(fragments),
            "the result content is not the concatenation of the streamed fragments",
        )
        check_stats(result.stats, "chat")
        check(
            result.stats.stop_reason
            in ("eosFound", "maxPredictedTokensReached", "stopStringFound"),
            f"chat: unexpected stopReason {result.stats.stop_reason!r}",
        )
        check(
            result.stats.predicted_tokens_count <= 48,
            f"chat: predicted_tokens_count {result.stats.predicted_tokens_count} exceeds maxTokens 48",
        )
        check(
            result.model_info.model_key == llm_key,
            "chat: the result's model_info names another model",
        )

    step("chat", chat)

    # 5. Cancel a long generation after a few fragments. PredictionStream.cancel() sends
    #    {"type":"cancel"} on the channel, drops fragments that arrive afterwards, and keeps
    #    reading until the server's final "success" packet.
    def cancel() -> None:
        max_tokens = 1000
        stream = model.respond_stream(
            "Count from 1 to 1000, separated by commas.", config={"maxTokens": max_tokens}
        )
        received = 0
        before_cancel = 0
        for _fragment in stream:
            received += 1
            if received == 3:
                before_cancel = received
                stream.cancel()
        result = stream.result()
        summary["cancel"] = {
            "fragmentsBeforeCancel": before_cancel,
            "fragmentsTotal": received,
            "stopReason": result.stats.stop_reason,
            "predictedTokensCount": result.stats.predicted_tokens_count,
            "text": result.content,
        }
        check(
            before_cancel == 3,
            f"the generation ended after {received} fragment(s), before it could be cancelled",
        )
        check(
            result.stats.stop_reason == "userStopped",
            f'a cancelled prediction must end with stopReason "userStopped", got {result.stats.stop_reason!r}',
        )
        predicted = result.stats.predicted_tokens_count
        check(
            predicted is None or predicted < max_tokens,
            f"the cancelled generation did not stop early ({predicted} tokens)",
        )

    step("cancel", cancel)

    # 6. Tokenizer.
    def tokenize() -> None:
        text = "The quick brown fox jumps over the lazy dog."
        tokens = list(model.tokenize(text))
        count = model.count_tokens(text)
        summary["tokenize"] = {"text": text, "tokens": tokens, "count": count}
        check(tokens, "tokenize returned no tokens")
        check(all(is_int(t) for t in tokens), f"tokens must be integers: {tokens}")
        check(
            count == len(tokens), f"count_tokens says {count} but tokenize returned {len(tokens)}"
        )

    step("tokenize", tokenize)

    # 7. Prompt template.
    def apply_prompt_template() -> None:
        user_text = "Tell me about the Eiffel Tower."
        history = lms.Chat("You are a tour guide.")
        history.add_user_message(user_text)
        formatted = model.apply_prompt_template(history)
        summary["promptTemplate"] = {"userText": user_text, "formatted": formatted}
        check(isinstance(formatted, str), "apply_prompt_template did not return a string")
        check(user_text in formatted, f"the formatted prompt lacks the user text: {formatted!r}")
        check(len(formatted) > len(user_text), "the formatted prompt adds nothing to the user text")

    step("applyPromptTemplate", apply_prompt_template)

    # 8. Embeddings.
    def embedding() -> None:
        embedding_model = client.embedding.model(embedding_key)
        sentences = [
            "The cat sat on the mat.",
            "A cat was sitting on the rug.",
            "Stock markets fell sharply on Tuesday.",
        ]
        vectors = [list(v) for v in embedding_model.embed(sentences)]
        dims = [len(v) for v in vectors]
        paraphrase = cosine(vectors[0], vectors[1])
        unrelated = max(cosine(vectors[0], vectors[2]), cosine(vectors[1], vectors[2]))
        info = embedding_model.get_info()
        summary["embedding"] = {
            "identifier": embedding_model.identifier,
            "modelKey": info.model_key,
            "sentences": sentences,
            "dimensions": dims[0],
            "cosineParaphrase": paraphrase,
            "cosineUnrelated": unrelated,
        }
        check(info.model_key == embedding_key, f"embedding model has model_key {info.model_key!r}")
        check(dims[0] > 0 and len(set(dims)) == 1, f"inconsistent embedding dimensions {dims}")
        check(
            all(math.isfinite(x) for v in vectors for x in v),
            "embeddings contain non-finite numbers",
        )
        check(
            paraphrase > unrelated,
            f"paraphrases should be closer than unrelated sentences: "
            f"cos(paraphrases)={paraphrase}, cos(unrelated)={unrelated}",
        )

    step("embedding", embedding)

    # 9. Unload.
    def unload() -> None:
        model.unload()
        for handle in client.embedding.list_loaded():
            if handle.get_info().model_key == embedding_key:
                handle.unload()
        llm_loaded = [m.identifier for m in client.llm.list_loaded()]
        embedding_loaded = [
            m.identifier
            for m in client.embedding.list_loaded()
            if m.get_info().model_key == embedding_key
        ]
        summary["unload"] = {
            "llmStillLoaded": model.identifier in llm_loaded,
            "embeddingStillLoaded": bool(embedding_loaded),
        }
        check(
            model.identifier not in llm_loaded, f"{model.identifier} is still loaded after unload()"
        )
        check(
            not embedding_loaded,
            f"{embedding_key} is still loaded after unload(): {embedding_loaded}",
        )

    step("unload", unload)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True, help="api_host, e.g. 127.0.0.1:41343")
    parser.add_argument("--llm", default="smollm2-135m-instruct")
    parser.add_argument("--embedding", default="all-minilm-l6-v2")
    parser.add_argument("--step-timeout", type=float, default=120.0)
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="[client %(levelname)s] %(name)s: %(message)s",
    )
    logging.getLogger().addHandler(recorder)
    logging.captureWarnings(True)  # LMStudioUnknownMessageWarning and friends

    code = 0
    try:
        run(args.host, args.llm, args.embedding, args.step_timeout)
        summary["ok"] = True
    except CheckFailedError as exc:
        code = 1
        summary["failure"] = {"step": current_step, "message": str(exc)}
        print(f"FAILED at step {current_step!r}: {exc}", file=sys.stderr)
    except Exception as exc:
        code = 1
        summary["failure"] = {"step": current_step, "message": describe(exc)}
        print(f"FAILED at step {current_step!r}: {describe(exc)}", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
    summary["clientLog"] = recorder.records
    sys.stdout.write(json.dumps(summary) + "\n")
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
