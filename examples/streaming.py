"""Stream a chat answer token by token, then print the stats (on asyncio).

Needs a running LM Studio (or ``lmsdk serve``); ``LMSTUDIO_HOST`` picks the server and
``LMSTUDIO_MODEL`` the model (default: the bundled SmolLM2).
"""

from __future__ import annotations

import asyncio
import os

from lmstudio_sdk import AsyncClient, Chat

MODEL = os.environ.get("LMSTUDIO_MODEL", "smollm2-135m-instruct")


async def main() -> None:
    async with AsyncClient() as client:
        model = await client.llm.model(MODEL)  # get it, or load it
        chat = Chat("You are a concise assistant.")
        chat.add_user_message("Name three rivers in Europe.")
        async with model.respond_stream(chat, max_tokens=60) as stream:
            async for fragment in stream.fragments():
                print(fragment.content, end="", flush=True)
        result = stream.result()
        print(f"\n\n{result.stats.predicted_tokens_count} tokens, stop reason {result.stop_reason}")
        chat.add_assistant_response(result)  # keep the conversation going


if __name__ == "__main__":
    asyncio.run(main())
