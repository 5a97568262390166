"""Embeddings: rank sentences by similarity to a query.

A list is embedded with concurrent requests (order kept). Needs a running LM Studio (or
``lmsdk serve``); ``LMSTUDIO_EMBEDDING_MODEL`` picks the model (default: MiniLM).
"""

from __future__ import annotations

import math
import os

import trio

from lmstudio_sdk import AsyncClient

MODEL = os.environ.get("LMSTUDIO_EMBEDDING_MODEL", "all-minilm-l6-v2")


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


async def main() -> None:
    documents = [
        "The cat sleeps on the sofa.",
        "Interest rates rose again this quarter.",
        "A kitten naps on the couch.",
    ]
    async with AsyncClient() as client:
        model = await client.embedding.model(MODEL)
        query = await model.embed("Where is the cat resting?")
        vectors = await model.embed(documents)
    for score, text in sorted(
        ((cosine(query, v), d) for v, d in zip(vectors, documents, strict=True)), reverse=True
    ):
        print(f"{score:.3f}  {text}")


if __name__ == "__main__":
    trio.run(main)
