"""Prediction and load settings through the OFFICIAL Python client (``lmstudio`` 1.5.x),
each run on the real SmolLM2 so that its effect shows (``test_interop_settings.py``).

    python tests/interop/official_settings.py --host 127.0.0.1:PORT --llm KEY [--load-seed]

Prints one JSON line on stdout: ``{"ok", "results": {setting: observation}, "clientLog",
"failure"?}``; everything else goes to stderr. An observation is what a user would look at
(texts, stop reasons, token counts), never a verdict: the test judges. The prediction seed and
the presence penalty have no option in this client (the load seed has), and its stats carry no stop string
(``official_settings.mjs`` covers those).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

PROMPT = "Write one short sentence about the sea."
REPEAT = "Write the word cat ten times."
SCHEMA = {
    "type": "object",
    "properties": {"colour": {"type": "string", "enum": ["red", "green", "blue"]}},
    "required": ["colour"],
}
GBNF = 'root ::= ("yes" | "no") "!"'


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.levelname} {record.name}: {record.getMessage()}")


def _reply(model: Any, prompt: str, **config: Any) -> dict[str, Any]:
    result = model.respond(prompt, config={"maxTokens": 24, **config})
    stats = result.stats
    return {
        "text": result.content,
        "stopReason": stats.stop_reason,
        "predicted": stats.predicted_tokens_count,
        "prompt": stats.prompt_tokens_count,
    }


def _texts(model: Any, prompt: str, runs: list[dict[str, Any]]) -> list[str]:
    return [_reply(model, prompt, **config)["text"] for config in runs]


def _settings(client: Any, key: str) -> dict[str, Any]:
    model = client.llm.model(key)
    out: dict[str, Any] = {}
    greedy = _reply(model, PROMPT, temperature=0)["text"]
    out["greedy"] = greedy
    hot = {"temperature": 1.5, "topKSampling": 0, "topPSampling": 1.0, "minPSampling": 0.0}
    # temperature: greedy twice; hot twice (the server picks a random seed each time).
    out["temperature"] = {
        "greedyTwice": _texts(model, PROMPT, [{"temperature": 0}]),
        "hot": _texts(model, PROMPT, [hot, hot]),
    }
    # Each filter narrowed to the top token makes a hot sampler greedy.
    out["topK"] = _texts(model, PROMPT, [{**hot, "topKSampling": 1}] * 2)
    out["topP"] = _texts(model, PROMPT, [{**hot, "topPSampling": 0.0}] * 2)
    out["minP"] = _texts(model, PROMPT, [{**hot, "minPSampling": 1.0}] * 2)
    out["repeatPenalty"] = _texts(
        model, REPEAT, [{"temperature": 0, "repeatPenalty": p} for p in (1.0, 2.0)]
    )
    out["maxTokens"] = _reply(model, PROMPT, temperature=0, maxTokens=5)
    stop = "is"  # in the greedy reply ("The sea is ..."); the test checks
    out["stopStrings"] = {"stop": stop, **_reply(model, PROMPT, temperature=0, stopStrings=[stop])}
    structured = model.respond("Name a colour.", response_format=SCHEMA, config={"temperature": 0})
    out["jsonSchema"] = structured.parsed
    gbnf = {"type": "gbnf", "gbnfGrammar": GBNF}
    out["gbnf"] = _reply(model, "Is the sea wet?", temperature=0, structured=gbnf)["text"]
    return out


def _load_settings(client: Any, key: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    config = {"contextLength": 256, "seed": 3, "flashAttention": True, "gpu": {"ratio": 1.0}}
    model = client.llm.load_new_instance(key, "settings-small", config=config)
    try:
        out["contextLength"] = model.get_context_length()
        too_long = " ".join(str(i) for i in range(1, 400))
        try:
            _reply(model, too_long, temperature=0, contextOverflowPolicy="stopAtLimit")
            out["stopAtLimit"] = "answered"
        except Exception as exc:  # the user sees the server's error
            out["stopAtLimit"] = f"{type(exc).__name__}: {exc}"
        for policy in ("rollingWindow", "truncateMiddle"):
            out[policy] = _reply(
                model, too_long, temperature=0, maxTokens=8, contextOverflowPolicy=policy
            )
    finally:
        model.unload()
    return out


def _load_seed(client: Any, key: str) -> list[list[str]]:
    """Two hot replies from each of three instances loaded with seeds 11, 11 and 12."""
    hot = {"temperature": 1.5, "topKSampling": 0, "topPSampling": 1.0, "minPSampling": 0.0}
    runs = []
    for name, seed in (("seed-a", 11), ("seed-b", 11), ("seed-c", 12)):
        model = client.llm.load_new_instance(key, name, config={"contextLength": 512, "seed": seed})
        try:
            runs.append(_texts(model, PROMPT, [hot, hot]))
        finally:
            model.unload()
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--llm", required=True)
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument(
        "--load-seed", action="store_true", help="only the load seed (its own time budget)"
    )
    args = parser.parse_args()
    recorder = _Recorder()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger().addHandler(recorder)
    logging.captureWarnings(True)
    summary: dict[str, Any] = {"client": "lmstudio", "ok": False}
    try:
        import lmstudio as lms

        lms.set_sync_api_timeout(args.timeout)
        with lms.Client(args.host) as client:
            if args.load_seed:
                summary["results"] = {"loadSeed": _load_seed(client, args.llm)}
            else:
                summary["results"] = _settings(client, args.llm)
                summary["results"]["load"] = _load_settings(client, args.llm)
        summary["ok"] = True
    except Exception as exc:
        summary["failure"] = {"step": "settings", "message": f"{type(exc).__name__}: {exc}"}
        print(f"FAILED: {summary['failure']['message']}", file=sys.stderr)
    summary["clientLog"] = recorder.records
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
