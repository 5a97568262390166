"""The llama.cpp engine's worker-thread side: importing llama-cpp-python, the hand-off of
events from the decode thread to the event loop (:class:`_HandOff`, bounded, never waiting
on the loop), and the helpers that run in the decode thread (tokens to text, grammars, the
decode loop itself). :mod:`.llama` holds the engine that drives them.
"""

from __future__ import annotations

import codecs
import collections
import ctypes
import functools
import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import anyio.to_thread
import sniffio

from lmstudio_sdk.server.engines import events
from lmstudio_sdk.server.engines._assembly import StreamAssembler
from lmstudio_sdk.server.engines._llama_logprobs import LogProbReader, attach_log_probs
from lmstudio_sdk.server.engines._llama_tools import ToolCallSplitter
from lmstudio_sdk.server.engines._timer import GenerationTimer
from lmstudio_sdk.server.engines.base import (
    EngineUnavailableError,
    GenerationRequest,
    InvalidRequestError,
)

LLAMA_WHEEL_HINT = (
    "run `python tools/llama_wheel.py --install` in a clone of lmstudio-sdk (a 3-15 minute "
    "build with portable CPU flags, once)"
)
LLAMA_INSTALL_HINT = (
    f"Install llama-cpp-python 0.3.36 built for a portable CPU target: {LLAMA_WHEEL_HINT}; "
    "or by hand (the default -march=native build can crash on CPUs that report AMX): "
    'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON '
    '-DLLAVA_BUILD=OFF" pip install --no-cache-dir llama-cpp-python==0.3.36'
)


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise EngineUnavailableError(
            "The llama engine needs llama-cpp-python, which is not installed.",
            suggestion=LLAMA_INSTALL_HINT,
        ) from exc
    return llama_cpp


# --- the hand-off from the decode thread ----------------------------------------------------


class _ConsumerGone(Exception):
    """The generation's block was left; the decode thread just returns."""


HANDOFF_CAPACITY = 1
"""Events the decode thread may be ahead of the consumer before it waits (back-pressure)."""


class _Control:
    # Shared by the loop thread (writes `reason`) and the decode thread (reads it); a single
    # attribute read/write is atomic under the GIL.
    def __init__(self) -> None:
        self.reason: events.StopReason | None = None
        self.error: BaseException | None = None
        self.on_stop: Callable[[], None] | None = None

    def request_stop(self, reason: events.StopReason) -> None:
        if self.reason is None:
            self.reason = reason
            if self.on_stop is not None:
                self.on_stop()


def _thread_safe_scheduler() -> Callable[[Callable[[], object]], object]:
    """A non-blocking "run this soon in the current event loop", callable from any thread."""
    if sniffio.current_async_library() == "trio":
        import trio

        token = trio.lowlevel.current_trio_token()
        return token.run_sync_soon
    import asyncio

    loop = asyncio.get_running_loop()
    return lambda callback: loop.call_soon_threadsafe(callback)


class _HandOff:
    """Events from the decode thread to the event loop: a bounded, thread-safe buffer.

    :meth:`put` (decode thread) never waits on the event loop: it appends under a lock and,
    only if the consumer is waiting, wakes it with a thread-safe callback. It waits only
    while ``capacity`` events are unconsumed, until the consumer takes one, the generation
    is asked to stop (then it goes over capacity: the last piece and ``Finished`` must get
    through) or the consumer is gone (then it raises :class:`_ConsumerGone`).
    """

    def __init__(self, control: _Control, capacity: int = HANDOFF_CAPACITY) -> None:
        self._control = control
        self._capacity = capacity
        self._schedule = _thread_safe_scheduler()
        self._buffer: collections.deque[events.GenerationEvent] = collections.deque()
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)
        self._wakeup: anyio.Event | None = None  # set while the consumer waits
        self._ended = False  # the producer is done (loop thread only)
        self._closed = False  # the consumer is gone
        control.on_stop = self._wake_producer

    # -- decode thread

    def put(self, event: events.GenerationEvent) -> None:
        with self._lock:
            while (
                len(self._buffer) >= self._capacity
                and not self._closed
                and self._control.reason is None
            ):
                self._space.wait()
            if self._closed:
                raise _ConsumerGone
            self._buffer.append(event)
            wakeup, self._wakeup = self._wakeup, None
        if wakeup is not None:
            try:
                self._schedule(wakeup.set)
            except RuntimeError:  # the event loop is closed: nobody will read
                raise _ConsumerGone from None

    # -- event loop thread

    def end(self) -> None:
        """The producer is done: once the buffer is drained, :meth:`receive` ends."""
        with self._lock:
            self._ended = True
            wakeup, self._wakeup = self._wakeup, None
        if wakeup is not None:
            wakeup.set()

    def close(self) -> None:
        """The consumer is gone: the producer's next :meth:`put` raises."""
        with self._lock:
            self._closed = True
            self._buffer.clear()
            self._space.notify_all()

    def _wake_producer(self) -> None:
        with self._lock:
            self._space.notify_all()

    async def receive(self) -> events.GenerationEvent:
        """The next event; :class:`anyio.EndOfStream` after the last one."""
        while True:
            with self._lock:
                if self._closed:
                    raise anyio.ClosedResourceError
                if self._buffer:
                    event = self._buffer.popleft()
                    if len(self._buffer) == self._capacity - 1:
                        self._space.notify()
                    return event
                if self._ended:
                    raise anyio.EndOfStream
                wakeup = self._wakeup = anyio.Event()
            await wakeup.wait()


# --- helpers that run in the decode thread --------------------------------------------------


def _token_text(llama_cpp: Any, vocab: Any, token: int) -> str:
    if token < 0:
        return ""
    return _token_bytes(llama_cpp, vocab, token).decode("utf-8", errors="replace")


def _token_bytes(llama_cpp: Any, vocab: Any, token: int) -> bytes:
    # llama-cpp-python's own detokenize asserts pieces fit in 32 bytes; size the buffer here.
    buffer = ctypes.create_string_buffer(64)
    n = llama_cpp.llama_token_to_piece(vocab, token, buffer, len(buffer), 0, True)
    if n < 0:
        buffer = ctypes.create_string_buffer(-n)
        n = llama_cpp.llama_token_to_piece(vocab, token, buffer, len(buffer), 0, True)
    return buffer.raw[:n]


def _grammar_text(request: GenerationRequest) -> str | None:
    if request.gbnf_grammar is not None:
        return request.gbnf_grammar
    if request.json_schema is None:
        return None
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        grammar = str(json_schema_to_gbnf(json.dumps(dict(request.json_schema))))
    except (AssertionError, ValueError, TypeError, KeyError, NotImplementedError) as exc:
        raise InvalidRequestError(
            f"llama.cpp cannot turn this JSON schema into a grammar: {exc}",
            suggestion="Use a simpler schema (objects, arrays, strings, numbers, enums).",
        ) from exc
    # llama-cpp-python's converter lets raw control characters into JSON strings
    # (``[^"\\]``), which is not valid JSON: a model writing a newline inside a title
    # would break the reply. Exclude them, as JSON requires.
    return grammar.replace('char ::= [^"\\\\]', 'char ::= [^"\\\\\\x7F\\x00-\\x1F]', 1)


def _check_grammar(llm: Any, grammar: str) -> None:
    # An invalid grammar makes llama.cpp return NULL, and adding NULL to a sampler chain
    # crashes the process: parse it once here and turn a failure into a clear error.
    llama_cpp = _import_llama_cpp()
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
    if not sampler:
        raise InvalidRequestError(
            "The grammar does not parse (llama.cpp's GBNF parser rejected it).",
            suggestion="Check the grammar; it needs a 'root' rule.",
        )
    llama_cpp.llama_sampler_free(sampler)


def _reuse_cached_prefix(llm: Any, tokens: Sequence[int]) -> int:
    """Keep the KV cache for the prompt's common prefix with the previous generation."""
    # At least one prompt token is evaluated again, so the logits belong to this prompt.
    limit = min(int(llm.n_tokens), len(tokens) - 1)
    previous = llm.input_ids
    n = 0
    while n < limit and previous[n] == tokens[n]:
        n += 1
    if n == 0 or not llm._ctx.kv_cache_seq_rm(-1, n, -1):
        llm.reset()  # recurrent models cannot drop part of their state
        return 0
    llm.n_tokens = n
    return n


def _fit_prompt(tokens: list[int], n_ctx: int, policy: str) -> list[int]:
    """A prompt longer than the context, cut to three quarters of it (room for the reply).

    ``rollingWindow`` keeps the end (the most recent messages); ``truncateMiddle`` keeps
    the start (system prompt, first message) and the end, as LM Studio does.
    """
    keep = max(2, n_ctx * 3 // 4)
    if policy == "rollingWindow":
        return [tokens[0], *tokens[len(tokens) - keep + 1 :]]  # the first token: BOS
    head = keep // 2
    return [*tokens[:head], *tokens[len(tokens) - (keep - head) :]]


def _shift_context(llm: Any, n_keep: int) -> bool:
    """Free half of the context after its first ``n_keep`` tokens (llama.cpp's context
    shift), so the reply can go on; ``False`` if the model cannot drop part of its state."""
    n_tokens = int(llm.n_tokens)
    n_discard = (n_tokens - n_keep) // 2
    if n_discard <= 0 or not llm._ctx.kv_cache_seq_rm(0, n_keep, n_keep + n_discard):
        return False
    llm._ctx.kv_cache_seq_shift(0, n_keep + n_discard, n_tokens, -n_discard)
    ids = llm.input_ids
    ids[n_keep : n_tokens - n_discard] = ids[n_keep + n_discard : n_tokens].copy()
    llm.n_tokens = n_tokens - n_discard
    return True


def _decode(
    llm: Any,
    request: GenerationRequest,
    prompt_tokens: list[int],
    grammar_text: str | None,
    emit: Callable[[events.GenerationEvent], None],
    control: _Control,
    splitter: ToolCallSplitter | None = None,
) -> None:
    """The whole generation, in a worker thread. Every event goes through ``emit``.

    With a ``splitter`` (tools offered to a model without native tool calls), the pieces
    become text or tool-call events.
    """
    llama_cpp = _import_llama_cpp()
    from llama_cpp.llama_grammar import LlamaGrammar

    total = len(prompt_tokens)
    timer = GenerationTimer(time.perf_counter, total)
    n_ctx = int(llm.n_ctx())
    vocab = llama_cpp.llama_model_get_vocab(llm.model)

    # Prompt processing, one batch at a time, with progress and a stop check per batch.
    # Reusing the KV cache changes how the prompt is split into batches, which changes float
    # rounding and so the sampled tokens: requests meant to be repeatable (a seed, or greedy)
    # evaluate the whole prompt afresh.
    if request.seed is not None or request.temperature == 0:
        llm.reset()
        cached = 0
    else:
        cached = _reuse_cached_prefix(llm, prompt_tokens)
    emit(events.PromptProgress(cached, total, cached))
    position = cached
    while position < total:
        if control.reason is not None:
            emit(timer.finish(control.reason))
            return
        end = min(total, position + int(llm.n_batch))
        llm.eval(prompt_tokens[position:end])
        position = end
        emit(events.PromptProgress(position, total, cached))
    timer.prompt_processed()

    if request.max_tokens == 0:
        emit(timer.finish("maxPredictedTokensReached"))
        return
    llm.set_seed(request.seed if request.seed is not None else llama_cpp.LLAMA_DEFAULT_SEED)
    grammar = LlamaGrammar.from_string(grammar_text, verbose=False) if grammar_text else None
    assembler = StreamAssembler(request.stop_strings, request.reasoning)
    utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
    log_probs: LogProbReader | None = None
    pending: list[events.TokenLogProb] = []  # log-probabilities of tokens not yet in a piece
    if request.log_probs is not None:
        log_probs = LogProbReader(
            llama_cpp, llm, request.log_probs, functools.partial(_token_text, llama_cpp, vocab)
        )

    def emit_pieces(pieces: list[events.TokenPiece]) -> None:
        if log_probs is not None:
            pieces = attach_log_probs(pieces, pending)
        for event in splitter.feed(pieces) if splitter else pieces:
            emit(event)

    reason: events.StopReason = "eosFound"
    stop_string: str | None = None
    # The whole prompt is evaluated, so generate() samples at once; it evaluates each token
    # only when asked for the next one, so breaking out stops llama.cpp immediately.
    sample = functools.partial(
        llm.generate,
        temp=request.temperature,
        top_k=request.top_k,
        top_p=1.0 if request.top_p is None else request.top_p,
        min_p=0.0 if request.min_p is None else request.min_p,
        repeat_penalty=1.0 if request.repeat_penalty is None else request.repeat_penalty,
        presence_penalty=request.presence_penalty or 0.0,
        grammar=grammar,
    )
    tokens = sample(prompt_tokens)
    try:
        while (token := next(tokens, None)) is not None:
            timer.token_arrived()
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                break
            timer.predicted += 1
            if log_probs is not None:
                pending.append(log_probs.read(token))  # before the generator moves on
            # A multi-byte character may span tokens: the incremental decoder holds its start.
            pieces, stop_string = assembler.feed(utf8.decode(_token_bytes(llama_cpp, vocab, token)))
            emit_pieces(pieces)
            if stop_string is not None:
                reason = "stopStringFound"
                break
            if control.reason is not None:
                reason = control.reason
                break
            if request.max_tokens is not None and timer.predicted >= request.max_tokens:
                reason = "maxPredictedTokensReached"
                break
            if int(llm.n_tokens) + 1 >= n_ctx:
                # rollingWindow forgets the oldest tokens (all but BOS), truncateMiddle
                # those after the prompt's first half; stopAtLimit stops. A grammar's state
                # cannot survive the restart of llama.cpp's generator: it stops too.
                n_keep = 1 if request.context_overflow == "rollingWindow" else total // 2
                if (
                    request.context_overflow == "stopAtLimit"
                    or grammar is not None
                    or not _shift_context(llm, n_keep)
                ):
                    reason = "contextLengthReached"
                    break
                # The generator's own position counter is stale now: start it afresh on
                # the shifted context (its prefix is cached; only `token` is evaluated).
                tokens.close()
                tokens = sample([*llm.input_ids[: int(llm.n_tokens)].tolist(), token])
    finally:
        tokens.close()
    if stop_string is None:
        pieces, stop_string = assembler.feed(utf8.decode(b"", final=True), 0)
        if stop_string is not None:
            reason = "stopStringFound"
        else:
            pieces.extend(assembler.flush())
        emit_pieces(pieces)
    if splitter is not None:
        for event in splitter.finish():
            emit(event)
        if splitter.called and reason == "eosFound":
            reason = "toolCalls"
    emit(timer.finish(reason, stop_string))
