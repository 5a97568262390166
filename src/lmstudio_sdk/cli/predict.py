"""``lmsdk complete`` and ``lmsdk embed``: one-shot predictions and embeddings."""

from __future__ import annotations

import argparse
import json
import math
import sys

from ._common import EXIT_INTERRUPTED, add_command, command, get_model, session
from .chat import STOPPED, add_prediction_options, prediction_options, stream_answer

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``complete`` and ``embed`` commands."""
    complete = add_command(
        subparsers, "complete", _complete, "continue a prompt as raw text (streamed)"
    )
    complete.add_argument("key", metavar="KEY", help="the model (loaded if needed)")
    complete.add_argument("prompt", metavar="PROMPT", help="the text to continue")
    add_prediction_options(complete)

    embed = add_command(subparsers, "embed", _embed, "embed texts")
    embed.add_argument("key", metavar="KEY", help="the embedding model (loaded if needed)")
    embed.add_argument("texts", nargs="+", metavar="TEXT", help="the texts to embed")
    embed.add_argument(
        "--full", action="store_true", help="print the whole vectors (one JSON array per line)"
    )


@command
def _complete(args: argparse.Namespace) -> int:
    """Continue PROMPT as raw text (no chat template), streaming it. Ctrl-C stops it (the
    generation is cancelled on the server)."""
    with session(args) as client:
        model = get_model(client.llm, args.key)
        _, stopped = stream_answer(model, args.prompt, prediction_options(args), complete=True)
    print(f"\n{STOPPED}" if stopped else "", flush=True)
    return EXIT_INTERRUPTED if stopped else 0


def _summary(vector: list[float]) -> str:
    norm = math.sqrt(sum(x * x for x in vector))
    head = ", ".join(f"{x:.4f}" for x in vector[:4])
    more = ", ..." if len(vector) > 4 else ""
    return f"{len(vector)} dimensions, norm {norm:.4f}: [{head}{more}]"


@command
def _embed(args: argparse.Namespace) -> int:
    """Embed each TEXT: prints a short summary per text (--full: the vectors as JSON)."""
    with session(args) as client:
        model = get_model(client.embedding, args.key)
        vectors = model.embed(list(args.texts))
    for text, vector in zip(args.texts, vectors, strict=True):
        if args.full:
            print(json.dumps(vector))
        else:
            print(f"{text!r}: {_summary(vector)}")
    sys.stdout.flush()
    return 0
