"""The one interface between the server and its inference engines.

The server only ever talks to :class:`LLMEngine` and :class:`EmbeddingEngine`. An engine
object is one loaded model instance: build it from :class:`ModelFacts` (cheap), ``await
engine.load(...)`` (heavy), use it, ``await engine.aclose()``. Engines are used from one
event loop (the server's); anything that blocks runs in a worker thread inside the engine.

A generation is an async context manager, never a bare async generator, so that leaving the
block for any reason (end, ``break``, exception, cancellation) stops the work at once and
deterministically::

    async with engine.generate(request) as stream:
        async for event in stream:           # TokenPiece, PromptProgress, ToolCall*, ...
            ...                              # the last event is always Finished
            if client_cancelled:
                stream.stop()                # the stream then ends with Finished("userStopped")

After ``stream.stop()`` keep iterating to receive the final :class:`Finished` (at most one
more token is generated). Leaving the block without draining also stops the generation; no
thread or task outlives the block.

The events a generation yields are declared in :mod:`.events`. Engines build on two helpers
next to this module: ``_templates`` (rendering a chat template in a sandbox) and
``_assembly`` (:class:`StreamAssembler`: stop strings and reasoning tags).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal

import attrs
from typing_extensions import NotRequired, Required, Self, TypedDict

from lmstudio_sdk.errors import LMStudioError
from lmstudio_sdk.server.engines.events import Finished, GenerationEvent, StopReason

__all__ = [
    "ContextLengthState",
    "Domain",
    "EmbeddingEngine",
    "EngineError",
    "EngineKind",
    "EngineUnavailableError",
    "GenerationRequest",
    "GenerationStream",
    "InjectedWireFault",
    "InvalidRequestError",
    "LLMEngine",
    "ModelFacts",
    "ModelFormat",
    "ModelNotLoadedError",
    "ProgressCallback",
    "PromptTemplateError",
    "PromptTooLongError",
    "Quantization",
    "ReasoningParsing",
    "TemplateMessage",
    "TemplateOptions",
]

Domain = Literal["llm", "embedding"]
ModelFormat = Literal["gguf", "safetensors"]
EngineKind = Literal["llama", "sentence", "scripted", "upstream"]
ProgressCallback = Callable[[float], object]
"""Called with load progress in ``[0, 1]`` (monotonic, ends with ``1.0``), on the loop thread."""


# --- errors ---------------------------------------------------------------------------------


class EngineError(LMStudioError):
    """An engine could not do what was asked.

    ``title`` says what went wrong, ``suggestion`` (may be ``None``) what to do about it; the
    server copies both into the ``rpcError``/``channelError`` it sends.
    """

    def __init__(self, title: str, *, suggestion: str | None = None) -> None:
        self.title = title
        self.suggestion = suggestion
        super().__init__(f"{title} {suggestion}" if suggestion else title)


class EngineUnavailableError(EngineError):
    """An optional package or a bundled model file is not installed."""


class ModelNotLoadedError(EngineError):
    """The engine was used before :meth:`load` or after :meth:`aclose`."""


class InvalidRequestError(EngineError, ValueError):
    """An argument is out of range or malformed (bad schema, bad context length, ...)."""


class PromptTooLongError(InvalidRequestError):
    """The prompt does not leave room for a single token in the loaded context."""

    def __init__(self, prompt_tokens: int, context_length: int) -> None:
        self.prompt_tokens = prompt_tokens
        self.context_length = context_length
        super().__init__(
            f"The prompt is {prompt_tokens} tokens long but the loaded context holds "
            f"{context_length} tokens.",
            suggestion="Shorten the prompt or load the model with a larger context length.",
        )


class PromptTemplateError(EngineError):
    """The chat template failed to render these messages."""


class InjectedWireFault(EngineError):
    """An operation other than a generation asks the server to break the wire instead of
    answering (``kind`` as in :class:`FaultEvent`)."""

    def __init__(self, kind: Literal["dropSocket", "malformedFrame"]) -> None:
        self.kind = kind
        super().__init__(f"Injected fault: {kind}.")


# --- model facts ----------------------------------------------------------------------------


@attrs.frozen
class Quantization:
    """Quantization of the weights, e.g. ``Quantization("Q4_1", 4)``."""

    name: str
    bits: int


@attrs.frozen(kw_only=True)
class ModelFacts:
    """What the server reports about a model on disk (``ModelInfo``), and which engine runs it.

    ``path`` is LM Studio's relative form (``publisher/repo/file``), the one clients see;
    ``file_path`` is where the weights really are (``None`` for the scripted engine).
    """

    model_key: str
    display_name: str
    publisher: str
    domain: Domain
    engine: EngineKind
    format: ModelFormat
    path: str
    file_path: str | None
    size_bytes: int
    max_context_length: int
    architecture: str | None = None
    params_string: str | None = None
    quantization: Quantization | None = None
    vision: bool = False
    trained_for_tool_use: bool = False


# --- generation requests --------------------------------------------------------------------


def _check_non_negative(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and value < 0:
        raise InvalidRequestError(f"{attribute.name} must be >= 0, got {value!r}.")


def _check_unit(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not 0 <= value <= 1:
        raise InvalidRequestError(f"{attribute.name} must be between 0 and 1, got {value!r}.")


def _check_stop_strings(_: object, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    if any(not isinstance(s, str) or not s for s in value):
        raise InvalidRequestError("stop_strings must be non-empty strings.")


def _check_tag(_: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidRequestError(f"{attribute.name} must be a non-empty string.")


@attrs.frozen(kw_only=True)
class ReasoningParsing:
    """How reasoning is marked in the generated text (``llm.prediction.reasoning.parsing``)."""

    start_string: str = attrs.field(default="<think>", validator=_check_tag)
    end_string: str = attrs.field(default="</think>", validator=_check_tag)


def _optional_messages(
    value: Iterable[Mapping[str, Any]] | None,
) -> tuple[Mapping[str, Any], ...] | None:
    return None if value is None else tuple(value)


@attrs.frozen(kw_only=True)
class GenerationRequest:
    """One generation, as the server hands it to an engine.

    ``None`` for ``top_p``, ``min_p`` and ``repeat_penalty`` means "disabled" (LM Studio's
    unchecked checkbox); ``max_tokens=None`` means "until EOS or the context is full";
    ``seed=None`` means a random seed. ``json_schema`` / ``gbnf_grammar`` constrain the output
    (structured output). ``tools`` are ``LLMTool`` dicts (``{"type": "function",
    "function": {...}}``); the scripted engine and the llama engine (``_llama_tools``) turn them
    into tool-call events.
    ``reasoning=None`` turns reasoning classification off (every piece is ``"none"``).
    ``tool_choice="required"`` (LM Studio's ``toolChoice`` mode) asks for a tool call.
    ``presence_penalty=None`` is off. ``context_overflow`` is what happens when the prompt or
    the reply outgrows the context (LM Studio's ``contextOverflowPolicy``).
    ``messages`` is the chat the prompt was rendered from (``None`` for raw completion);
    engines that apply their own chat template (upstreams) use it instead of ``prompt``.
    ``log_probs`` (LM Studio's ``logProbs``): ``None`` is off; ``n`` asks for each generated
    token's log-probability and the ``n`` most likely candidates (engines that can give them).
    """

    prompt: str
    messages: tuple[Mapping[str, Any], ...] | None = attrs.field(
        default=None, converter=_optional_messages
    )
    max_tokens: int | None = attrs.field(default=None, validator=_check_non_negative)
    temperature: float = attrs.field(default=0.8, validator=_check_non_negative)
    top_k: int = attrs.field(default=40, validator=_check_non_negative)
    top_p: float | None = attrs.field(default=0.95, validator=_check_unit)
    min_p: float | None = attrs.field(default=0.05, validator=_check_unit)
    repeat_penalty: float | None = attrs.field(default=1.1, validator=_check_non_negative)
    presence_penalty: float | None = None
    context_overflow: Literal["stopAtLimit", "truncateMiddle", "rollingWindow"] = "stopAtLimit"
    seed: int | None = None
    stop_strings: tuple[str, ...] = attrs.field(
        default=(), converter=tuple, validator=_check_stop_strings
    )
    json_schema: Mapping[str, Any] | None = None
    gbnf_grammar: str | None = None
    tools: tuple[Mapping[str, Any], ...] = attrs.field(default=(), converter=tuple)
    tool_choice: Literal["auto", "required"] = "auto"
    reasoning: ReasoningParsing | None = ReasoningParsing()
    log_probs: int | None = attrs.field(default=None, validator=_check_non_negative)

    def __attrs_post_init__(self) -> None:
        if self.json_schema is not None and self.gbnf_grammar is not None:
            raise InvalidRequestError("Give json_schema or gbnf_grammar, not both.")
        if self.json_schema is not None and not isinstance(self.json_schema, Mapping):
            raise InvalidRequestError("json_schema must be a JSON Schema object (a dict).")


# --- generation streams (the events are in :mod:`.events`) --------------------------------


class GenerationStream(abc.ABC):
    """The events of one generation, in order; see the module docstring."""

    _finished: Finished | None = None
    """Set by the subclass to the :class:`Finished` event as it hands it out."""

    def __aiter__(self) -> Self:
        return self

    @abc.abstractmethod
    async def __anext__(self) -> GenerationEvent:
        """The next event; raises the engine's error if the generation failed."""

    @abc.abstractmethod
    def stop(self, reason: StopReason = "userStopped") -> None:
        """Ask the generation to stop; it ends with ``Finished(stop_reason=reason)``.

        Takes effect before the next token; a no-op once the generation has finished.
        """

    @property
    def finished(self) -> Finished | None:
        """The final event once it has been received, else ``None``."""
        return self._finished


# --- chat templates -------------------------------------------------------------------------


class TemplateMessage(TypedDict, total=False):
    """One chat message as chat templates expect it (Hugging Face conventions).

    ``tool_calls`` items are ``{"id": ..., "type": "function", "function": {"name": ...,
    "arguments": {...}}}``; a ``"tool"`` message carries ``tool_call_id`` (and ``name``).
    """

    role: Required[Literal["system", "user", "assistant", "tool"]]
    content: Required[str]
    tool_calls: NotRequired[list[dict[str, Any]]]
    tool_call_id: NotRequired[str]
    name: NotRequired[str]


# --- engine interfaces ----------------------------------------------------------------------


class _Engine(abc.ABC):
    facts: ModelFacts

    @property
    @abc.abstractmethod
    def loaded(self) -> bool:
        """Whether :meth:`load` succeeded and :meth:`aclose` has not been called."""

    @property
    @abc.abstractmethod
    def context_length(self) -> int:
        """The loaded context length in tokens (raises :class:`ModelNotLoadedError`)."""

    @abc.abstractmethod
    async def load(
        self, context_length: int | None = None, *, progress: ProgressCallback | None = None
    ) -> None:
        """Load the model; ``None`` picks the engine's default context length.

        Raises :class:`InvalidRequestError` if ``context_length`` is not in
        ``1..facts.max_context_length``, :class:`EngineUnavailableError` if a package or file
        is missing. Cancelling it leaves the engine unloaded.
        """

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Unload. Running generations end with ``Finished(stop_reason="modelUnloaded")``."""

    @abc.abstractmethod
    async def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text``, without special tokens added."""

    async def count_tokens(self, text: str) -> int:
        """``len(await self.tokenize(text))``."""
        return len(await self.tokenize(text))

    async def __aenter__(self) -> Self:
        if not self.loaded:
            await self.load()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _check_context_length(self, context_length: int | None, default: int) -> int:
        if context_length is None:
            return min(default, self.facts.max_context_length)
        if isinstance(context_length, bool) or not isinstance(context_length, int):
            raise InvalidRequestError(f"context_length must be an int, got {context_length!r}.")
        if not 1 <= context_length <= self.facts.max_context_length:
            raise InvalidRequestError(
                f"context_length {context_length} is out of range for {self.facts.model_key}.",
                suggestion=f"Use a value from 1 to {self.facts.max_context_length}.",
            )
        return context_length


class ContextLengthState(_Engine):
    """``loaded``, ``context_length`` and ``aclose`` for an engine whose load state is its
    context length: ``load`` sets ``_context_length``; ``aclose`` sets it back to ``None``.

    Mix in before :class:`LLMEngine` or :class:`EmbeddingEngine`.
    """

    _context_length: int | None = None

    @property
    def loaded(self) -> bool:
        """Whether the engine is loaded."""
        return self._context_length is not None

    @property
    def context_length(self) -> int:
        """The loaded context length in tokens (raises :class:`ModelNotLoadedError`)."""
        if self._context_length is None:
            raise ModelNotLoadedError(f"{self.facts.model_key} is not loaded.")
        return self._context_length

    async def aclose(self) -> None:
        """Unload."""
        self._context_length = None


@attrs.frozen(kw_only=True)
class TemplateOptions:
    """The options of :meth:`LLMEngine.apply_prompt_template`, as engines receive them."""

    tools: Sequence[Mapping[str, Any]] | None = None
    add_generation_prompt: bool = True
    omit_bos_token: bool = False
    omit_eos_token: bool = False
    template: str | None = None


class LLMEngine(_Engine):
    """A loaded text-generation model."""

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
        """Format a chat as the model's prompt text.

        ``template`` overrides the model's own Jinja template (``llm.prediction.promptTemplate``
        of type ``jinja``, e.g. the SDKs' ``completeModeFormatting`` layer).
        """
        options = TemplateOptions(
            tools=tools,
            add_generation_prompt=add_generation_prompt,
            omit_bos_token=omit_bos_token,
            omit_eos_token=omit_eos_token,
            template=template,
        )
        return await self._apply_template(messages, options)

    @abc.abstractmethod
    async def _apply_template(
        self,
        messages: Sequence[TemplateMessage] | Sequence[Mapping[str, Any]],
        options: TemplateOptions,
    ) -> str:
        """What each engine does for :meth:`apply_prompt_template`."""

    @abc.abstractmethod
    def generate(self, request: GenerationRequest) -> AbstractAsyncContextManager[GenerationStream]:
        """Start a generation; see the module docstring.

        Bad requests (invalid schema, prompt longer than the context) raise on entering the
        ``async with``, before any event. The llama engine runs one generation at a time (a
        second one waits on entry until the first has left its block); the scripted engine
        runs them concurrently.
        """


class EmbeddingEngine(_Engine):
    """A loaded embedding model."""

    @property
    @abc.abstractmethod
    def dimensions(self) -> int:
        """Length of every embedding vector."""

    @abc.abstractmethod
    async def embed(self, text: str) -> list[float]:
        """The embedding of ``text`` (truncated to the context length, like the reference)."""
