"""What ``lmsdk serve`` prints at start: the models it serves, and why others are not.

A first run on a new machine usually lacks llama-cpp-python or a model package; the
server still starts with what it has, so it says plainly, on its first line, when no
language model can answer, and for each bundled model left out, what to run.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from ._common import format_size, print_table

__all__ = ["default_threads", "no_model_message", "print_banner"]


def default_threads() -> int:
    """llama.cpp threads for ``lmsdk serve``: half the CPUs (1 on a 2-core machine).

    llama.cpp's threads spin at a barrier after every step, so when another process takes
    a core they stall: SmolLM2 on a 2-core machine at load average 10 ran at 19-21
    tokens/s with one thread and 1.7-2.6 with two (on two idle cores two threads give
    ~100 and one ~70, benchmarks/RESULTS.md). One thread also leaves a core to the server
    and its clients.
    """
    return max(1, (os.cpu_count() or 2) // 2)


def _llama_missing(model: Any) -> bool:
    return bool(model.facts.engine == "llama") and importlib.util.find_spec("llama_cpp") is None


def no_model_message(missing: Mapping[str, str]) -> str:
    """Why there is nothing to serve (each bundled model's reason), and what to do."""
    lines = ["no model to serve: the bundled models cannot run here:"]
    lines += [f"  {key}: {reason}" for key, reason in missing.items()]
    lines.append("use --scripted for the scripted test models, or --model KEY=PATH.gguf")
    return "\n".join(lines)


def print_banner(server: Any, missing: Mapping[str, str], out: TextIO) -> None:
    """The start-up report: no-LLM warning first, where it listens, the models, the rest."""
    models: Sequence[Any] = server.models
    usable_llms = [m for m in models if m.domain == "llm" and not _llama_missing(m)]
    if not usable_llms:
        from ..server.engines.llama import SMOLLM2_KEY

        why = f" {SMOLLM2_KEY}: {missing[SMOLLM2_KEY]}" if SMOLLM2_KEY in missing else ""
        print(f"No language model (LLM) is served: clients cannot chat.{why}", file=out)
    options = server.options
    print(f"LM Studio-compatible server listening on {server.url}", file=out)
    print(f"  greeting: {server.http_url}/lmstudio-greeting", file=out)
    if options.requires_token:
        print(f"  API token required ({len(options.api_tokens)} accepted)", file=out)
    if any(m.facts.engine == "llama" for m in models):
        print(f"  llama.cpp threads: {options.llama_threads}", file=out)
    rows = [
        (
            m.key,
            m.domain,
            m.facts.engine,
            format_size(m.facts.size_bytes) if m.facts.file_path else "",
            m.facts.file_path or ("upstream" if m.facts.engine == "upstream" else "scripted"),
        )
        for m in models
    ]
    print_table(
        f"Models served ({len(rows)}):",
        ("key", "domain", "engine", "size", "file"),
        rows,
        file=out,
        right=(3,),
    )
    if missing:
        print("Bundled models not served:", file=out)
        for key, reason in missing.items():
            print(f"  {key}: {reason}", file=out)
    for model in models:
        if _llama_missing(model):
            print(
                f"  {model.key} is listed but cannot load: llama-cpp-python is not installed",
                file=out,
            )
    print("Press Ctrl-C to stop.", file=out, flush=True)
