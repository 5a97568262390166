"""Cancel a generation with a cancel scope: leaving the scope stops it *on the server*.

The result is still available afterwards: the text generated so far and the stop reason
the server reported (``userStopped``). Needs a running LM Studio (or ``lmsdk serve``).
"""

from __future__ import annotations

import os

import anyio

from lmstudio_sdk import AsyncClient

MODEL = os.environ.get("LMSTUDIO_MODEL", "smollm2-135m-instruct")


async def main() -> None:
    async with AsyncClient() as client:
        model = await client.llm.model(MODEL)
        with anyio.move_on_after(1.0) as scope:  # at most one second of generation
            async with model.respond_stream("Tell me a very long story.") as stream:
                async for fragment in stream.fragments():
                    print(fragment.content, end="", flush=True)
        result = stream.result()
        print(f"\n\ncut by the time limit: {scope.cancelled_caught}")
        print(f"stop reason (from the server): {result.stop_reason}")
        print(f"tokens generated: {result.stats.predicted_tokens_count}")


if __name__ == "__main__":
    anyio.run(main)  # asyncio; anyio.run(main, backend="trio") for Trio
