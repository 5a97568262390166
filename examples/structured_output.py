"""Structured output: the server constrains generation to a schema, the SDK validates the
reply into your class (a pydantic model here; attrs classes and dataclasses work too).

Needs a running LM Studio (or ``lmsdk serve``); ``LMSTUDIO_MODEL`` picks the model.
"""

from __future__ import annotations

import dataclasses
import os

import trio

from lmstudio_sdk import AsyncClient, StructuredOutputError

MODEL = os.environ.get("LMSTUDIO_MODEL", "smollm2-135m-instruct")


@dataclasses.dataclass
class Book:
    title: str
    year: int


async def main() -> None:
    async with AsyncClient() as client:
        model = await client.llm.model(MODEL)
        try:
            result = await model.respond(
                "Recommend one classic novel. Reply in JSON.",
                response_format=Book,
                max_tokens=60,
                temperature=0,
            )
        except StructuredOutputError as exc:  # the reply did not fit Book
            print(f"no valid book: {exc}\nraw reply: {exc.raw_text}")
            return
        book: Book = result.parsed
        print(f"{book.title} ({book.year})")


if __name__ == "__main__":
    trio.run(main)
