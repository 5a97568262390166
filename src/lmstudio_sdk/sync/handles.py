"""Blocking handles to loaded model instances (``client.llm.model(...)`` returns these).

A handle wraps the async handle of the same instance and blocks on its methods; like it,
it holds no resources: dropping it does not unload the model, and it stays usable for as
long as its client is open.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, overload

from .._async.connection import DEFAULT, _Default
from .streams import PredictionCallbacks, PredictionStream

if TYPE_CHECKING:
    from .._async.handles import AsyncEmbeddingModel, AsyncLLM, AsyncModelHandle
    from .._async.tools import ActResult, ToolLike
    from ..chat import ChatHistoryInput
    from ..config import LoadModelConfig, PredictionConfig
    from ..results import ModelInstanceInfo, PredictionFragment, PredictionResult, ToolCallRequest
    from ._portal import Portal
    from .client import Client

__all__ = ["LLM", "EmbeddingModel", "ModelHandle"]


class ModelHandle:
    """A loaded model instance. Get one from ``client.llm`` / ``client.embedding``."""

    domain: ClassVar[str] = ""

    def __init__(self, client: Client, handle: AsyncModelHandle) -> None:
        self._client = client
        self._async = handle

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._async.identifier!r}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ModelHandle):
            return NotImplemented
        return self._async == other._async

    def __hash__(self) -> int:
        return hash(self._async)

    def _portal(self) -> Portal:
        return self._client._portal()

    @property
    def identifier(self) -> str:
        """The instance identifier the server knows this model by."""
        return self._async.identifier

    @property
    def info(self) -> ModelInstanceInfo:
        """The instance info as of when this handle was made (see :meth:`get_info`)."""
        return self._async.info

    def get_info(self, *, timeout: float | _Default | None = DEFAULT) -> ModelInstanceInfo:
        """Ask the server for this instance's current info.

        :raises LMStudioModelNotFoundError: the instance is no longer loaded.
        """
        return self._portal().run(self._async.get_info, timeout=timeout)

    def unload(self, *, timeout: float | _Default | None = DEFAULT) -> None:
        """Unload this instance from the server."""
        self._portal().run(self._async.unload, timeout=timeout)

    def tokenize(
        self, text: str | list[str], *, timeout: float | _Default | None = DEFAULT
    ) -> list[int] | list[list[int]]:
        """The token ids of ``text``; for a list of strings, one list of ids per string."""
        return self._portal().run(self._async.tokenize, text, timeout=timeout)

    def count_tokens(self, text: str, *, timeout: float | _Default | None = DEFAULT) -> int:
        """How many tokens ``text`` is for this model."""
        return self._portal().run(self._async.count_tokens, text, timeout=timeout)

    def get_load_config(self, *, timeout: float | _Default | None = DEFAULT) -> LoadModelConfig:
        """The config the instance was loaded with (what the server reports)."""
        return self._portal().run(self._async.get_load_config, timeout=timeout)

    def get_context_length(self, *, timeout: float | _Default | None = DEFAULT) -> int:
        """The context length of the loaded instance, in tokens."""
        return self._portal().run(self._async.get_context_length, timeout=timeout)


class LLM(ModelHandle):
    """A loaded LLM instance (blocking API): predictions, tool use, tokens, templates.

    Prediction options are keyword arguments (``max_tokens=64, temperature=0.2``), a
    :class:`~lmstudio_sdk.PredictionConfig`, or a ``config=`` dict. ``timeout`` is the
    longest silence allowed between two packets of a prediction, never a limit on its total
    duration. Callbacks run in the calling thread. Ctrl-C during a prediction cancels it on
    the server (then ``KeyboardInterrupt`` goes on).
    """

    domain: ClassVar[str] = "llm"
    _async: AsyncLLM

    def respond_stream(
        self,
        history: ChatHistoryInput,
        *,
        config: PredictionConfig | Mapping[str, Any] | None = None,
        response_format: Any = None,
        on_message: Callable[[Any], object] | None = None,
        on_first_token: Callable[[], object] | None = None,
        on_prediction_fragment: Callable[[PredictionFragment], object] | None = None,
        on_prompt_processing_progress: Callable[[float], object] | None = None,
        timeout: float | _Default | None = DEFAULT,
        **options: Any,
    ) -> PredictionStream:
        """Predict the next assistant message of ``history``, as a stream of events.

        ``with model.respond_stream(chat) as stream: for fragment in stream.fragments():
        ...``; then ``stream.result()``. Leaving the block early cancels the prediction on
        the server. ``history`` is a :class:`~lmstudio_sdk.Chat`, a str (one user
        message) or a list of message dicts; see :meth:`respond` for the rest.
        """
        callbacks = PredictionCallbacks(
            on_message, on_first_token, on_prediction_fragment, on_prompt_processing_progress
        )
        return PredictionStream(
            self._client,
            lambda record: self._async.respond_stream(
                history,
                config=config,
                response_format=response_format,
                on_message=record,
                timeout=timeout,
                **options,
            ),
            callbacks,
        )

    def respond(
        self,
        history: ChatHistoryInput,
        *,
        config: PredictionConfig | Mapping[str, Any] | None = None,
        response_format: Any = None,
        on_message: Callable[[Any], object] | None = None,
        on_first_token: Callable[[], object] | None = None,
        on_prediction_fragment: Callable[[PredictionFragment], object] | None = None,
        on_prompt_processing_progress: Callable[[float], object] | None = None,
        timeout: float | _Default | None = DEFAULT,
        **options: Any,
    ) -> PredictionResult:
        """Predict the next assistant message of ``history`` and return the result.

        Callbacks: ``on_message(message)`` with the final assistant message
        (``chat.append`` takes it), ``on_first_token()``,
        ``on_prediction_fragment(fragment)``, ``on_prompt_processing_progress(progress)``.
        ``response_format`` (a JSON schema dict, a pydantic model class, an attrs class or
        a dataclass) constrains the reply and parses it into ``result.parsed``.

        :raises StructuredOutputError: the reply does not fit ``response_format``.
        :raises LMStudioModelNotFoundError: the model is no longer loaded.
        """
        with self.respond_stream(
            history,
            config=config,
            response_format=response_format,
            on_message=on_message,
            on_first_token=on_first_token,
            on_prediction_fragment=on_prediction_fragment,
            on_prompt_processing_progress=on_prompt_processing_progress,
            timeout=timeout,
            **options,
        ) as stream:
            for _ in stream:
                pass
        return stream.result()

    def complete_stream(
        self,
        prompt: str,
        *,
        raw_text_endpoint: bool = False,
        config: PredictionConfig | Mapping[str, Any] | None = None,
        response_format: Any = None,
        on_message: Callable[[Any], object] | None = None,
        on_first_token: Callable[[], object] | None = None,
        on_prediction_fragment: Callable[[PredictionFragment], object] | None = None,
        on_prompt_processing_progress: Callable[[float], object] | None = None,
        timeout: float | _Default | None = DEFAULT,
        **options: Any,
    ) -> PredictionStream:
        """Continue ``prompt`` as raw text (no chat template), as a stream of events.

        ``raw_text_endpoint=True`` uses ``completeRawText`` (newer servers only). See
        :meth:`respond_stream`.
        """
        callbacks = PredictionCallbacks(
            on_message, on_first_token, on_prediction_fragment, on_prompt_processing_progress
        )
        return PredictionStream(
            self._client,
            lambda record: self._async.complete_stream(
                prompt,
                raw_text_endpoint=raw_text_endpoint,
                config=config,
                response_format=response_format,
                on_message=record,
                timeout=timeout,
                **options,
            ),
            callbacks,
        )

    def complete(
        self,
        prompt: str,
        *,
        raw_text_endpoint: bool = False,
        config: PredictionConfig | Mapping[str, Any] | None = None,
        response_format: Any = None,
        on_message: Callable[[Any], object] | None = None,
        on_first_token: Callable[[], object] | None = None,
        on_prediction_fragment: Callable[[PredictionFragment], object] | None = None,
        on_prompt_processing_progress: Callable[[float], object] | None = None,
        timeout: float | _Default | None = DEFAULT,
        **options: Any,
    ) -> PredictionResult:
        """Continue ``prompt`` as raw text and return the result (see :meth:`respond`)."""
        with self.complete_stream(
            prompt,
            raw_text_endpoint=raw_text_endpoint,
            config=config,
            response_format=response_format,
            on_message=on_message,
            on_first_token=on_first_token,
            on_prediction_fragment=on_prediction_fragment,
            on_prompt_processing_progress=on_prompt_processing_progress,
            timeout=timeout,
            **options,
        ) as stream:
            for _ in stream:
                pass
        return stream.result()

    def act(
        self,
        chat: ChatHistoryInput,
        tools: Sequence[ToolLike],
        *,
        max_prediction_rounds: int | None = None,
        max_parallel_tool_calls: int = 4,
        config: PredictionConfig | Mapping[str, Any] | None = None,
        on_message: Callable[[Any], object] | None = None,
        on_round_start: Callable[[int], object] | None = None,
        on_round_end: Callable[[int], object] | None = None,
        on_prediction_completed: Callable[[PredictionResult], object] | None = None,
        on_prediction_fragment: Callable[[PredictionFragment], object] | None = None,
        handle_invalid_tool_request: Callable[[Exception, ToolCallRequest], Any] | None = None,
        tool_timeout: float | None = None,
        timeout: float | _Default | None = DEFAULT,
        **options: Any,
    ) -> ActResult:
        """Let the model call ``tools`` in rounds until it answers without a tool call.

        The same as :meth:`AsyncLLM.act <lmstudio_sdk.AsyncLLM.act>`: ``tools`` are plain
        functions, :class:`~lmstudio_sdk.Tool` objects or dicts; plain functions run in
        worker threads (up to ``max_parallel_tool_calls`` at once), while the callbacks
        (``on_message``, ``on_round_start``, ...,
        ``handle_invalid_tool_request``) run in the calling thread. Ctrl-C cancels the
        running prediction on the server.
        """
        return self._portal().run_relayed(
            lambda relay: self._async.act(
                chat,
                tools,
                max_prediction_rounds=max_prediction_rounds,
                max_parallel_tool_calls=max_parallel_tool_calls,
                config=config,
                on_message=relay.optional(on_message),
                on_round_start=relay.optional(on_round_start),
                on_round_end=relay.optional(on_round_end),
                on_prediction_completed=relay.optional(on_prediction_completed),
                on_prediction_fragment=relay.optional(on_prediction_fragment),
                handle_invalid_tool_request=relay.optional(handle_invalid_tool_request),
                tool_timeout=tool_timeout,
                timeout=timeout,
                **options,
            )
        )

    def apply_prompt_template(
        self,
        history: ChatHistoryInput,
        *,
        tools: Sequence[ToolLike] | None = None,
        omit_bos_token: bool = False,
        omit_eos_token: bool = False,
        timeout: float | _Default | None = DEFAULT,
    ) -> str:
        """``history`` formatted with the model's prompt template (the text the model sees)."""
        return self._portal().run(
            self._async.apply_prompt_template,
            history,
            tools=tools,
            omit_bos_token=omit_bos_token,
            omit_eos_token=omit_eos_token,
            timeout=timeout,
        )


class EmbeddingModel(ModelHandle):
    """A loaded embedding model instance (blocking API): embeddings and tokens."""

    domain: ClassVar[str] = "embedding"
    _async: AsyncEmbeddingModel

    @overload
    def embed(self, text: str, *, timeout: float | _Default | None = DEFAULT) -> list[float]: ...
    @overload
    def embed(
        self, text: list[str], *, timeout: float | _Default | None = DEFAULT
    ) -> list[list[float]]: ...
    def embed(
        self, text: str | list[str], *, timeout: float | _Default | None = DEFAULT
    ) -> list[float] | list[list[float]]:
        """The embedding vector of ``text``; for a list of strings, one vector per string."""
        result: list[float] | list[list[float]] = self._portal().run(
            self._async.embed, text, timeout=timeout
        )
        return result
