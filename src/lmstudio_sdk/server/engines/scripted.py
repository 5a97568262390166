"""A deterministic engine for tests and benchmarks: no model, same interface.

What it generates is data: a :class:`Script` (reply text or exact fragments, reasoning, tool
calls, echo mode, pacing, progress steps) and :class:`Faults` (delays, errors, dropped sockets,
malformed frames, silence). Both are frozen attrs classes; replace them on a live engine
(``engine.script = Script(...)``) and the next operation uses the new values.

Its tokenizer splits text into words and punctuation (a leading space belongs to the word)
and maps each piece to a stable id; its chat template is plain Python (no jinja2 needed)::

    <|system|>\\nYou are terse.\\n<|end|>\\n<|user|>\\nHi\\n<|end|>\\n<|assistant|>\\n

Tool calls are generated when the request offers tools and the conversation's last turn is
not a tool result, so an ``act()`` loop ends after one round.

:class:`Script` and :class:`Faults` are declared in :mod:`._scripted_script`, the examples
for structured output in :mod:`._schema_example`; all are importable from here.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import zlib
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import anyio
import anyio.lowlevel

from lmstudio_sdk.server.engines import events
from lmstudio_sdk.server.engines._assembly import StreamAssembler
from lmstudio_sdk.server.engines._schema_example import example_for_schema
from lmstudio_sdk.server.engines._scripted_script import (
    DownloadStep,
    Faults,
    InjectedFaultError,
    Operation,
    Script,
    ScriptedToolCall,
    _apply_faults,
)
from lmstudio_sdk.server.engines._templates import check_messages, render_chat_template
from lmstudio_sdk.server.engines._timer import GenerationTimer
from lmstudio_sdk.server.engines.base import (
    ContextLengthState,
    Domain,
    EmbeddingEngine,
    GenerationRequest,
    GenerationStream,
    InjectedWireFault,
    InvalidRequestError,
    LLMEngine,
    ModelFacts,
    ProgressCallback,
    PromptTooLongError,
    Quantization,
    ReasoningParsing,
    TemplateMessage,
    TemplateOptions,
)

__all__ = [
    "FAKE_VOCAB_SIZE",
    "DownloadStep",
    "Faults",
    "InjectedFaultError",
    "InjectedWireFault",
    "Operation",
    "Script",
    "ScriptedEmbeddingEngine",
    "ScriptedEngine",
    "ScriptedToolCall",
    "example_for_schema",
    "fake_token_pieces",
    "scripted_embedding_facts",
    "scripted_llm_facts",
]

FAKE_VOCAB_SIZE = 32000
_TOKEN_RE = re.compile(r"<\|[^|\s]+\|>|</?think>|\s*\w+|\s*[^\w\s]|\s+")


def fake_token_pieces(text: str) -> list[str]:
    """The scripted tokenizer: words (with their leading whitespace), punctuation, tags."""
    return _TOKEN_RE.findall(text)


def _token_id(piece: str) -> int:
    return zlib.crc32(piece.encode("utf-8")) % FAKE_VOCAB_SIZE


# --- facts ----------------------------------------------------------------------------------


def _scripted_facts(
    model_key: str, domain: Domain, label: str, size_bytes: int, max_context_length: int
) -> ModelFacts:
    return ModelFacts(
        model_key=model_key,
        display_name=f"Scripted {label} ({model_key})",
        publisher="lmstudio-sdk",
        domain=domain,
        engine="scripted",
        format="gguf",
        path=f"lmstudio-sdk/scripted/{model_key}.gguf",
        file_path=None,
        architecture="scripted",
        params_string="1M",
        quantization=Quantization("F16", 16),
        size_bytes=size_bytes,
        max_context_length=max_context_length,
        trained_for_tool_use=domain == "llm",
    )


def scripted_llm_facts(
    model_key: str = "scripted-llm", *, max_context_length: int = 32768
) -> ModelFacts:
    """Model info for a scripted LLM (reported as a small GGUF model that can use tools)."""
    return _scripted_facts(model_key, "llm", "LLM", 1_000_000, max_context_length)


def scripted_embedding_facts(
    model_key: str = "scripted-embedding", *, max_context_length: int = 512
) -> ModelFacts:
    """Model info for a scripted embedding model."""
    return _scripted_facts(model_key, "embedding", "embedding", 500_000, max_context_length)


# --- the LLM engine -------------------------------------------------------------------------

_USER_TURN = "<|user|>\n"
_TOOL_TURN = "<|tool|>\n"
_END = "\n<|end|>\n"


def _render_fake_template(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None,
    add_generation_prompt: bool,
) -> str:
    parts = []
    if tools:
        parts.append(f"<|tools|>\n{json.dumps(list(tools), sort_keys=True)}{_END}")
    for message in messages:
        content = message["content"]
        for call in message.get("tool_calls") or ():
            content += f"<|tool_call|>{json.dumps(call, sort_keys=True)}"
        parts.append(f"<|{message['role']}|>\n{content}{_END}")
    if add_generation_prompt:
        parts.append("<|assistant|>\n")
    return "".join(parts)


def _last_user_text(prompt: str) -> str:
    start = prompt.rfind(_USER_TURN)
    if start < 0:
        return prompt
    start += len(_USER_TURN)
    end = prompt.find(_END, start)
    return prompt[start:] if end < 0 else prompt[start:end]


def _ends_with_tool_result(prompt: str) -> bool:
    return prompt.rfind(_TOOL_TURN) > prompt.rfind(_USER_TURN)


class _ScriptedModel(ContextLengthState):
    """What both scripted engines do alike: injected faults, scripted load progress, and
    the fake tokenizer."""

    DEFAULT_CONTEXT_LENGTH: ClassVar[int]

    def __init__(self, facts: ModelFacts, script: Script | None, faults: Faults | None) -> None:
        self.facts = facts
        self.script = script if script is not None else Script()
        self.faults = faults if faults is not None else Faults()

    async def load(
        self, context_length: int | None = None, *, progress: ProgressCallback | None = None
    ) -> None:
        length = self._check_context_length(context_length, self.DEFAULT_CONTEXT_LENGTH)
        await _apply_faults(self.faults, "load")
        await _report_load_progress(self.script, progress)
        self._context_length = length

    async def tokenize(self, text: str) -> list[int]:
        self.context_length  # noqa: B018 - raises when not loaded
        await _apply_faults(self.faults, "tokenize")
        return [_token_id(piece) for piece in fake_token_pieces(text)]

    async def count_tokens(self, text: str) -> int:
        self.context_length  # noqa: B018
        await _apply_faults(self.faults, "count_tokens")
        return len(fake_token_pieces(text))


class ScriptedEngine(_ScriptedModel, LLMEngine):
    """A scripted LLM. Generations run concurrently (no model state is shared)."""

    DEFAULT_CONTEXT_LENGTH = 4096

    def __init__(
        self,
        facts: ModelFacts | None = None,
        *,
        script: Script | None = None,
        faults: Faults | None = None,
    ) -> None:
        super().__init__(facts if facts is not None else scripted_llm_facts(), script, faults)
        self._active: set[_ScriptedStream] = set()

    async def aclose(self) -> None:
        await super().aclose()
        for stream in list(self._active):
            stream.stop("modelUnloaded")

    async def _apply_template(
        self,
        messages: Sequence[TemplateMessage] | Sequence[Mapping[str, Any]],
        options: TemplateOptions,
    ) -> str:
        self.context_length  # noqa: B018
        await _apply_faults(self.faults, "apply_prompt_template")
        if options.template is not None:
            return render_chat_template(
                options.template,
                messages,
                add_generation_prompt=options.add_generation_prompt,
                tools=options.tools,
            )
        check_messages(messages)
        return _render_fake_template(messages, options.tools, options.add_generation_prompt)

    @contextlib.asynccontextmanager
    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationStream]:
        context_length = self.context_length
        if request.gbnf_grammar is not None:
            raise InvalidRequestError(
                "The scripted engine cannot follow a GBNF grammar.",
                suggestion="Use a JSON schema for structured output.",
            )
        prompt_tokens = len(fake_token_pieces(request.prompt))
        if prompt_tokens >= context_length:
            raise PromptTooLongError(prompt_tokens, context_length)
        stream = _ScriptedStream(
            request, self.script, self.faults, prompt_tokens, context_length, self._plan(request)
        )
        self._active.add(stream)
        try:
            yield stream
        finally:
            self._active.discard(stream)
            stream.stop()

    def _plan(
        self, request: GenerationRequest
    ) -> tuple[list[tuple[str, int]], list[events.GenerationEvent]]:
        """The raw text pieces (text, tokens) and the tool-call events of one reply."""
        script = self.script
        pieces: list[tuple[str, int]] = []
        if request.json_schema is not None:
            document = json.dumps(example_for_schema(request.json_schema))
            return [(p, 1) for p in fake_token_pieces(document)], []
        if script.reasoning is not None:
            tags = request.reasoning or ReasoningParsing()
            pieces.append((tags.start_string, 1))
            pieces.extend((p, 1) for p in fake_token_pieces(script.reasoning))
            pieces.append((tags.end_string, 1))
        calling = bool(script.tool_calls and request.tools) and not _ends_with_tool_result(
            request.prompt
        )
        if calling:
            return pieces, _tool_call_events(script.tool_calls)
        if script.fragments is not None:
            pieces.extend((f, 1) for f in script.fragments)
        else:
            text = script.text
            if script.echo:
                text = script.echo_prefix + _last_user_text(request.prompt)
            tokens = fake_token_pieces(text)
            step = script.tokens_per_fragment
            pieces.extend(
                ("".join(tokens[i : i + step]), len(tokens[i : i + step]))
                for i in range(0, len(tokens), step)
            )
        return pieces, []


def _tool_call_events(calls: Sequence[ScriptedToolCall]) -> list[events.GenerationEvent]:
    out: list[events.GenerationEvent] = []
    for index, call in enumerate(calls):
        call_id = None if call.omit_id else (call.call_id or f"call-{index}")
        arguments = json.dumps(dict(call.arguments))
        raw = json.dumps({"name": call.name, "arguments": dict(call.arguments)})
        out.append(events.ToolCallStart(call_id))
        out.append(events.ToolCallName(call.name))
        if call.malformed:
            broken = raw[: max(1, len(raw) // 2)]
            out.append(events.ToolCallArgumentFragment(broken))
            out.append(
                events.ToolCallFailed("The tool call is not valid JSON.", raw_content=broken)
            )
            continue
        out.extend(events.ToolCallArgumentFragment(p) for p in fake_token_pieces(arguments))
        out.append(events.ToolCallEnd(call.name, dict(call.arguments), call_id, raw_content=raw))
    return out


async def _report_load_progress(script: Script, progress: ProgressCallback | None) -> None:
    steps = script.load_progress_steps
    for step in range(1, steps + 1):
        if script.load_step_seconds:
            await anyio.sleep(script.load_step_seconds)
        else:
            await anyio.lowlevel.checkpoint()
        if progress is not None:
            progress(step / steps)


class _ScriptedStream(GenerationStream):
    # Events come from a plain (sync) generator pulled one at a time, so a stop() between two
    # pulls takes effect at the next pull: "within one token" holds trivially.

    _CHECKPOINT_EVERY = 64

    def __init__(
        self,
        request: GenerationRequest,
        script: Script,
        faults: Faults,
        prompt_tokens: int,
        context_length: int,
        plan: tuple[list[tuple[str, int]], list[events.GenerationEvent]],
    ) -> None:
        self._request = request
        self._script = script
        self._faults = faults if faults.applies_to("generate") else Faults()
        self._prompt_tokens = prompt_tokens
        self._context_length = context_length
        self._pieces, self._tool_events = plan
        self._stop_reason: events.StopReason | None = None
        self._pause_scope: anyio.CancelScope | None = None
        self._started = False
        self._count = 0
        self._next_fragment_time: float | None = None
        self._events = self._produce()

    def stop(self, reason: events.StopReason = "userStopped") -> None:
        if self._finished is None and self._stop_reason is None:
            self._stop_reason = reason
            if self._pause_scope is not None:
                self._pause_scope.cancel()

    async def __anext__(self) -> events.GenerationEvent:
        if not self._started:
            self._started = True
            if self._faults.never_answer:
                await anyio.sleep_forever()
            if self._faults.delay:
                await self._pause(anyio.current_time() + self._faults.delay)
        try:
            event = next(self._events)
        except StopIteration:
            raise StopAsyncIteration from None
        self._count += 1
        if isinstance(event, events.TokenPiece) and self._script.fragments_per_second:
            await self._pace()
        elif self._count % self._CHECKPOINT_EVERY == 0:
            await anyio.lowlevel.checkpoint()
        else:
            await anyio.lowlevel.checkpoint_if_cancelled()
        if isinstance(event, events.Finished):
            self._finished = event
        return event

    async def _pace(self) -> None:
        now = anyio.current_time()
        if self._next_fragment_time is None:
            self._next_fragment_time = now  # the first fragment goes out at once
        else:
            await self._pause(self._next_fragment_time)
        self._next_fragment_time += 1 / self._script.fragments_per_second

    async def _pause(self, deadline: float) -> None:
        if self._stop_reason is not None:
            return
        with anyio.CancelScope() as scope:
            self._pause_scope = scope
            await anyio.sleep_until(deadline)
        self._pause_scope = None

    def _produce(self) -> Iterator[events.GenerationEvent]:
        request, faults = self._request, self._faults
        total = self._prompt_tokens
        timer = GenerationTimer(anyio.current_time, total)
        steps = self._script.prompt_progress_steps
        for step in range(1, steps + 1):
            yield events.PromptProgress(total * step // steps, total, 0)
        timer.prompt_processed()
        fragments = 0

        fired: set[str] = set()

        def fault_points(at_end: bool = False) -> Iterator[events.GenerationEvent]:
            # Each fault fires once, when `fragments` reaches its count (or at the end of a
            # reply that has fewer fragments).
            def due(name: str, after: int | None) -> bool:
                if after is None or name in fired or not (at_end or fragments >= after):
                    return False
                fired.add(name)
                return True

            if faults.error is not None and due("error", faults.error_after_fragments):
                raise InjectedFaultError(faults.error)
            if due("drop", faults.drop_socket_after_fragments):
                yield events.FaultEvent("dropSocket")
            if due("malformed", faults.malformed_frame_after_fragments):
                yield events.FaultEvent("malformedFrame")

        assembler = StreamAssembler(request.stop_strings, request.reasoning)
        for text, tokens in self._pieces:
            if self._stop_reason is not None:
                yield timer.finish(self._stop_reason)
                return
            if request.max_tokens is not None and timer.predicted + tokens > request.max_tokens:
                yield timer.finish("maxPredictedTokensReached")
                return
            if total + timer.predicted + tokens > self._context_length:
                yield timer.finish("contextLengthReached")
                return
            timer.token_arrived()
            timer.predicted += tokens
            released, stop_string = assembler.feed(text, tokens)
            for piece in released:
                yield from fault_points()
                fragments += 1
                yield piece
            if stop_string is not None:
                yield timer.finish("stopStringFound", stop_string)
                return
        for piece in assembler.flush():
            yield from fault_points()
            fragments += 1
            yield piece
        if self._tool_events:
            yield from fault_points(at_end=True)
            for event in self._tool_events:
                # Stop only between calls: clients expect every start to be closed.
                if isinstance(event, events.ToolCallStart) and self._stop_reason is not None:
                    yield timer.finish(self._stop_reason)
                    return
                if isinstance(event, events.ToolCallArgumentFragment):
                    timer.predicted += 1
                yield event
            yield timer.finish("toolCalls")
            return
        yield from fault_points(at_end=True)
        yield timer.finish(self._stop_reason or "eosFound")


# --- the embedding engine -------------------------------------------------------------------


class ScriptedEmbeddingEngine(_ScriptedModel, EmbeddingEngine):
    """Deterministic fake embeddings: hashed bag of words, L2-normalised.

    Texts that share words are closer than texts that do not, which is enough for tests of
    ranking code; it is not a semantic model.
    """

    DEFAULT_CONTEXT_LENGTH = 512

    def __init__(
        self,
        facts: ModelFacts | None = None,
        *,
        dimensions: int = 384,
        script: Script | None = None,
        faults: Faults | None = None,
    ) -> None:
        if dimensions < 1:
            raise InvalidRequestError(f"dimensions must be >= 1, got {dimensions!r}.")
        super().__init__(facts if facts is not None else scripted_embedding_facts(), script, faults)
        self._dimensions = dimensions

    @property
    def dimensions(self) -> int:
        return self._dimensions

    async def embed(self, text: str) -> list[float]:
        context_length = self.context_length
        await _apply_faults(self.faults, "embed")
        vector = [0.0] * self._dimensions
        for piece in fake_token_pieces(text)[:context_length]:
            word = piece.strip().lower()
            if not word:
                continue
            digest = zlib.crc32(word.encode("utf-8"))
            vector[digest % self._dimensions] += 1.0 if digest & 0x8000_0000 else -1.0
        norm = math.sqrt(sum(v * v for v in vector))
        return [v / norm for v in vector] if norm else vector
