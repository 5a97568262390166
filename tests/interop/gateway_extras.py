"""Structured output and a tool call with the OFFICIAL Python client (``lmstudio`` 1.5.x),
through our server used as a gateway to an OpenAI-compatible upstream
(``test_upstream_interop.py`` runs it).

    python tests/interop/gateway_extras.py --host 127.0.0.1:PORT --llm KEY

Prints one JSON line on stdout: ``{"ok", "structured", "toolCalls", "rounds",
"clientLog", "failure"?}``; everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}},
    "required": ["answer"],
}


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.levelname} {record.name}: {record.getMessage()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--llm", required=True)
    parser.add_argument("--timeout", type=float, default=180.0)
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
            model = client.llm.model(args.llm)
            reply = model.respond(
                "Is the sky blue? Answer in JSON.",
                response_format=SCHEMA,
                config={"maxTokens": 40, "temperature": 0},
            )
            summary["structured"] = reply.parsed
            calls: list[list[int]] = []

            def add(a: int, b: int) -> int:
                """Add two integers."""
                calls.append([a, b])
                return a + b

            act = model.act(
                "Use the add tool to add 2 and 3.",
                [add],
                max_prediction_rounds=2,
                config={"maxTokens": 40, "temperature": 0},
            )
            summary["toolCalls"] = calls
            summary["rounds"] = act.rounds
        summary["ok"] = True
    except Exception as exc:
        summary["failure"] = {"step": "extras", "message": f"{type(exc).__name__}: {exc}"}
        print(f"FAILED: {summary['failure']['message']}", file=sys.stderr)
    summary["clientLog"] = recorder.records
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
