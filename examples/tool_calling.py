"""Tool calling with ``act()``: the model calls your Python functions until it can answer.

Type hints and docstrings describe the tools to the model. Tools start as soon as the model
has written the call (while it keeps generating), several at once; a tool that raises
becomes an error message for the model. Needs a running LM Studio (or ``lmsdk serve``)
with a model that can use tools (``LMSTUDIO_MODEL``). The local server's SmolLM2-135M, too
small to decide for itself, is steered as LM Studio steers models without native tool
calls (a tool-use prompt and a grammar): it calls one tool, with its own (often wrong)
guess at the arguments, then answers.
"""

from __future__ import annotations

import asyncio
import os

from lmstudio_sdk import AsyncClient, Chat

MODEL = os.environ.get("LMSTUDIO_MODEL", "smollm2-135m-instruct")


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: the first number.
        b: the second number.
    """
    return a + b


async def weather(city: str) -> str:
    """The current weather in a city."""
    await asyncio.sleep(0.1)  # pretend to call a web service
    return f"sunny in {city}"


async def main() -> None:
    chat = Chat("Use the tools when they help.")
    chat.add_user_message("What is 1234 + 4321, and what is the weather in Oslo?")
    async with AsyncClient() as client:
        model = await client.llm.model(MODEL)
        result = await model.act(
            chat,
            [add, weather],
            max_prediction_rounds=4,
            on_message=chat.append,  # keep the whole exchange in the chat
        )
    print(f"{result.rounds} rounds in {result.total_time_seconds:.2f} s")
    for message in chat:
        for part in message.content:
            if part.type == "text" and part.text:
                print(f"{message.role}: {part.text}")
            elif part.type == "toolCallRequest":
                call = part.tool_call_request
                print(f"{message.role}: calls {call.name}({call.arguments})")
            elif part.type == "toolCallResult":
                print(f"tool {part.name}: {part.content}")


if __name__ == "__main__":
    asyncio.run(main())
