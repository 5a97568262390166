"""Handles to loaded model instances (``client.llm.model(...)`` and friends return these).

A handle names one loaded instance by its ``identifier`` and talks to the server through
its namespace's connection. It holds no resources: dropping it does not unload the model,
and it stays usable for as long as its client is open. Requests select the model with a
query on the identifier, as the official Python SDK does, so a model unloaded and loaded
again under the same identifier keeps working.
"""

# Per-call ``timeout=`` is part of the API (DESIGN 4): it composes with anyio.fail_after.
# ruff: noqa: ASYNC109

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar, overload

import anyio
from typing_extensions import Unpack

from .._boundary import sdk_boundary
from .._sentinel import DEFAULT, DefaultType
from ..protocol._unset import UNSET
from ..protocol.endpoints import llm, shared
from ..results import ModelInstanceInfo
from ._exceptions import exceptions_unwrapped

# Why the imports inside methods: predictions, tools, chats and configs are imported on
# first use, so that a client that lists models starts without them (benchmarks/analysis.md 11).
if TYPE_CHECKING:
    from .._structured import Parser
    from ..chat import ChatHistoryInput
    from ..config import LoadModelConfig, PredictionConfig, PredictionOptions
    from ..results import PredictionFragment, PredictionResult, ToolCallRequest
    from ._keywords import PredictionKeywords
    from .connection import Connection
    from .namespaces import _ModelNamespace
    from .prediction import PredictionRequest, PredictionStream
    from .streams import StreamScope
    from .tools import ActResult, ToolLike

__all__ = ["AsyncEmbeddingModel", "AsyncLLM", "AsyncModelHandle"]

#: Requests in flight at once when a list is tokenized or embedded. 32 fills one forward pass
#: of a server that batches concurrent embeddings (ours: at most 32 texts per batch); measured
#: with benchmarks/embed_concurrency.py (benchmarks/analysis.md).
MAX_CONCURRENT_REQUESTS: Final = 32

T = TypeVar("T")
R = TypeVar("R")


async def _map_ordered(
    function: Callable[[T], Awaitable[R]], items: Sequence[T], limit: int
) -> list[R]:
    """``[await function(item) for item in items]``, up to ``limit`` at once, order kept.

    The first failure cancels the rest and is raised (never as an exception group).
    """
    results: list[Any] = [None] * len(items)
    pending = iter(enumerate(items))

    async def worker() -> None:
        for index, item in pending:  # one shared iterator: each item is taken once
            results[index] = await function(item)

    with exceptions_unwrapped():
        async with anyio.create_task_group() as task_group:
            for _ in range(min(limit, len(items))):
                task_group.start_soon(worker)
    return results


def _texts(value: Any, what: str) -> list[str] | None:
    """``None`` for one string, else the list of strings (``TypeError`` for anything else)."""
    if isinstance(value, str):
        return None
    if isinstance(value, (bytes, bytearray, Mapping)) or not isinstance(value, Sequence):
        raise TypeError(f"{what} takes a str or a list of str, got {type(value).__name__}")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise TypeError(f"{what}: item {index} is a {type(item).__name__}, not a str")
    return list(value)


async def _per_text(function: Callable[[str], Awaitable[R]], text: Any, what: str) -> R | list[R]:
    """``function(text)`` for one string; for a list of strings, its results in order, with
    at most ``MAX_CONCURRENT_REQUESTS`` requests at once."""
    texts = _texts(text, what)
    if texts is None:
        return await function(text)
    return await _map_ordered(function, texts, MAX_CONCURRENT_REQUESTS)


@sdk_boundary
class AsyncModelHandle:
    """A loaded model instance. Get one from ``client.llm`` / ``client.embedding``.

    ``info`` is what the server reported when the handle was made; :meth:`get_info` asks
    again.
    """

    domain: ClassVar[str] = ""

    def __init__(
        self, namespace: _ModelNamespace[Any], identifier: str, info: ModelInstanceInfo
    ) -> None:
        self._namespace = namespace
        self._identifier = identifier
        self._info = info

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._identifier!r}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AsyncModelHandle):
            return NotImplemented
        return (self.domain, self._identifier, self._namespace._client) == (
            other.domain,
            other._identifier,
            other._namespace._client,
        )

    def __hash__(self) -> int:
        return hash((self.domain, self._identifier))

    @property
    def identifier(self) -> str:
        """The instance identifier the server knows this model by."""
        return self._identifier

    @property
    def info(self) -> ModelInstanceInfo:
        """The instance info as of when this handle was made (see :meth:`get_info`)."""
        return self._info

    def _specifier(self) -> shared.ModelSpecifierQuery:
        """The model specifier that selects this instance in requests."""
        return shared.ModelSpecifierQuery(shared.ModelQuery(identifier=self._identifier))

    def _connection(self) -> Connection:
        """The namespace connection (for endpoint calls made by subclasses)."""
        return self._namespace._connection()

    async def get_info(self, *, timeout: float | DefaultType | None = DEFAULT) -> ModelInstanceInfo:
        """Ask the server for this instance's current info.

        :raises LMStudioModelNotFoundError: the instance is no longer loaded.
        """
        info = await self._namespace.get_model_info(self._identifier, timeout=timeout)
        self._info = info
        return info

    async def unload(self, *, timeout: float | DefaultType | None = DEFAULT) -> None:
        """Unload this instance from the server."""
        await self._namespace.unload(self._identifier, timeout=timeout)

    @overload
    async def tokenize(
        self, text: str, *, timeout: float | DefaultType | None = DEFAULT
    ) -> list[int]: ...
    @overload
    async def tokenize(
        self, text: list[str], *, timeout: float | DefaultType | None = DEFAULT
    ) -> list[list[int]]: ...
    async def tokenize(
        self, text: str | list[str], *, timeout: float | DefaultType | None = DEFAULT
    ) -> list[int] | list[list[int]]:
        """The token ids of ``text``; for a list of strings, one list of ids per string.

        A list is tokenized with concurrent requests (at most
        ``MAX_CONCURRENT_REQUESTS`` at once); the order is kept.
        """
        endpoint = self._namespace._endpoints.TOKENIZE
        connection, specifier = self._connection(), self._specifier()

        async def one(item: str) -> list[int]:
            parameter = shared.TokenizeParameter(specifier, item)
            result: shared.TokenizeResult = await connection.call(
                endpoint, parameter, timeout=timeout
            )
            return list(result.tokens)

        # Through a local: mypy then infers R from ``one``, not from the return annotation.
        tokens = await _per_text(one, text, "tokenize()")
        return tokens

    async def count_tokens(
        self, text: str, *, timeout: float | DefaultType | None = DEFAULT
    ) -> int:
        """How many tokens ``text`` is for this model."""
        if not isinstance(text, str):
            raise TypeError(f"count_tokens() takes a str, got {type(text).__name__}")
        parameter = shared.CountTokensParameter(self._specifier(), text)
        result: shared.CountTokensResult = await self._connection().call(
            self._namespace._endpoints.COUNT_TOKENS, parameter, timeout=timeout
        )
        return result.token_count

    async def get_load_config(
        self, *, timeout: float | DefaultType | None = DEFAULT
    ) -> LoadModelConfig:
        """The config the instance was loaded with (what the server reports)."""
        from ..config import load_config_from_kv

        kv = await self._get_load_kv(timeout)
        domain: Any = self.domain
        return load_config_from_kv(kv, domain)

    async def get_context_length(self, *, timeout: float | DefaultType | None = DEFAULT) -> int:
        """The context length of the loaded instance, in tokens.

        Read from the load config (``<domain>.load.contextLength``); when the server does
        not report it there, from the instance info.
        """
        kv = await self._get_load_kv(timeout)
        value = kv.to_dict().get(f"{self.domain}.load.contextLength")
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        info = await self.get_info(timeout=timeout)
        return info.context_length

    async def _get_load_kv(self, timeout: float | DefaultType | None) -> Any:
        parameter = shared.GetLoadConfigParameter(self._specifier())
        return await self._connection().call(
            self._namespace._endpoints.GET_LOAD_CONFIG, parameter, timeout=timeout
        )


@sdk_boundary
class AsyncLLM(AsyncModelHandle):
    """A loaded LLM instance: predictions, tool use, tokens and prompt templates.

    Prediction options are keyword arguments (``max_tokens=64, temperature=0.2``), a
    :class:`~lmstudio_sdk.PredictionConfig`, or a ``config=`` dict with snake_case or
    camelCase keys (``{"maxTokens": 64}``). The keyword options are typed
    (:class:`~lmstudio_sdk.PredictionOptions`), so a type checker flags a misspelt one; at
    run time an unknown option raises :class:`~lmstudio_sdk.UnknownOptionError` (a
    ``TypeError`` and a ``ValueError``) with a suggestion, and a bad value ``ValueError``,
    before anything is sent. ``timeout`` is the longest silence allowed between two packets
    of a prediction (the client's default when omitted), never a limit on its total
    duration: use a cancel scope for that.
    ``drain_timeout`` is the longest wait, after a prediction was cancelled, for the
    server to confirm its end (the client's default when omitted; see
    ``docs/cancellation.md``).
    """

    domain: ClassVar[str] = "llm"

    def _predict(
        self,
        run: Callable[..., T],
        request_for: Callable[[PredictionConfig, Parser | None], PredictionRequest],
        keywords: PredictionKeywords,
    ) -> T:
        """``run`` (open or run a prediction) on the request ``request_for(config, parser)``
        builds, with the config, callbacks and timeouts of ``keywords``."""
        from ._keywords import check_prediction_keywords, split_callbacks
        from .prediction import PredictionCallbacks, prepare_config

        check_prediction_keywords(keywords)
        callbacks, others = split_callbacks(keywords)
        timeouts = {
            name: others.pop(name) for name in ("timeout", "drain_timeout") if name in others
        }
        cfg, parser = prepare_config(
            others.pop("config", None), others.pop("response_format", None), others
        )
        request = request_for(cfg, parser)
        return run(self._connection(), request, PredictionCallbacks(**callbacks), **timeouts)

    def respond_stream(
        self,
        history: ChatHistoryInput,
        **keywords: Unpack[PredictionKeywords],
    ) -> StreamScope[PredictionStream]:
        """Predict the next assistant message of ``history``, as a stream of events.

        ``async with model.respond_stream(chat) as stream: async for event in stream``;
        then ``stream.result()``. Leaving the block early (``break``, an exception, a
        cancel scope) cancels the prediction on the server, and ``stream.result()`` is then
        the partial result with the server's ``stop_reason`` (``"userStopped"``).

        ``history`` is a :class:`~lmstudio_sdk.Chat`, a str (one user message), or a list
        of message dicts. ``response_format`` (a JSON schema dict, a pydantic model class,
        an attrs class or a dataclass) constrains the reply and parses it into
        ``result.parsed``. The callbacks are those of :meth:`respond`.
        """
        from .prediction import open_prediction, respond_request

        request_for = functools.partial(respond_request, self._specifier(), history)
        return self._predict(open_prediction, request_for, keywords)

    async def respond(
        self,
        history: ChatHistoryInput,
        **keywords: Unpack[PredictionKeywords],
    ) -> PredictionResult:
        """Predict the next assistant message of ``history`` and return the result.

        Callbacks (plain functions or coroutine functions): ``on_message(message)`` with
        the final assistant message (``chat.append`` takes it), ``on_first_token()``,
        ``on_prediction_fragment(fragment)``, ``on_prompt_processing_progress(progress)``
        (0 to 1). Cancelling the call cancels the prediction on the server.

        :raises StructuredOutputError: the reply does not fit ``response_format``.
        :raises LMStudioModelNotFoundError: the model is no longer loaded.
        """
        from .prediction import respond_request, run_prediction

        request_for = functools.partial(respond_request, self._specifier(), history)
        return await self._predict(run_prediction, request_for, keywords)

    def complete_stream(
        self,
        prompt: str,
        *,
        raw_text_endpoint: bool = False,
        **keywords: Unpack[PredictionKeywords],
    ) -> StreamScope[PredictionStream]:
        """Continue ``prompt`` as raw text (no chat template), as a stream of events.

        By default through ``predict`` with a template that passes the prompt through
        unchanged (every LM Studio version supports it); ``raw_text_endpoint=True`` uses
        ``completeRawText`` instead (newer servers only). See :meth:`respond_stream`.
        """
        from .prediction import complete_request, open_prediction

        request_for = functools.partial(
            complete_request, self._specifier(), prompt, raw_text_endpoint=raw_text_endpoint
        )
        return self._predict(open_prediction, request_for, keywords)

    async def complete(
        self,
        prompt: str,
        *,
        raw_text_endpoint: bool = False,
        **keywords: Unpack[PredictionKeywords],
    ) -> PredictionResult:
        """Continue ``prompt`` as raw text and return the result (see :meth:`complete_stream`
        and :meth:`respond`)."""
        from .prediction import complete_request, run_prediction

        request_for = functools.partial(
            complete_request, self._specifier(), prompt, raw_text_endpoint=raw_text_endpoint
        )
        return await self._predict(run_prediction, request_for, keywords)

    async def act(
        self,
        chat: ChatHistoryInput,
        tools: Sequence[ToolLike],
        *,
        max_prediction_rounds: int | None = None,
        max_parallel_tool_calls: int = 4,
        config: PredictionConfig | Mapping[str, Any] | None = None,
        on_message: Callable[[Any], Any] | None = None,
        on_round_start: Callable[[int], Any] | None = None,
        on_round_end: Callable[[int], Any] | None = None,
        on_prediction_completed: Callable[[PredictionResult], Any] | None = None,
        on_prediction_fragment: Callable[[PredictionFragment], Any] | None = None,
        handle_invalid_tool_request: Callable[[Exception, ToolCallRequest], Any] | None = None,
        tool_timeout: float | None = None,
        timeout: float | DefaultType | None = DEFAULT,
        **options: Unpack[PredictionOptions],
    ) -> ActResult:
        """Let the model call ``tools`` in rounds until it answers without a tool call.

        ``tools``: plain functions (sync or async; their type hints and docstring describe
        them to the model), :class:`~lmstudio_sdk.Tool` objects, or dicts (``name``,
        ``implementation``, ``description``, ``parameters``). A tool starts as soon as the
        model has finished writing its call, while the prediction goes on; at most
        ``max_parallel_tool_calls`` run at once. Results go back to the model in the order
        of the calls, JSON-encoded. A tool that raises, an unknown tool or bad arguments
        become an error text for the model: ``handle_invalid_tool_request(exc, request)``
        returns what the model sees (default, and when it returns ``None``: the error
        message; raise to stop ``act``). ``tool_timeout`` (seconds) bounds each tool call
        whose :class:`~lmstudio_sdk.Tool` sets no ``timeout``: a late call becomes an error
        text too (a sync tool's thread is abandoned, not waited for).

        ``chat`` is not modified: ``on_message(message)`` receives each new assistant and
        tool message (``on_message=chat.append`` keeps a history). ``on_round_start(i)``
        and ``on_round_end(i)`` get the round index (from 0); ``on_prediction_completed``
        each round's :class:`~lmstudio_sdk.PredictionResult`. ``max_prediction_rounds``
        bounds the rounds (the last one offers no tools). Cancelling ``act`` cancels the
        running tools (abandons sync tools' threads) and the prediction on the server;
        nothing of the cancelled round is reported and no new round starts.
        """
        from .act import run_act

        return await run_act(
            self._connection(),
            self._specifier(),
            chat,
            tools,
            config=config,
            max_prediction_rounds=max_prediction_rounds,
            max_parallel_tool_calls=max_parallel_tool_calls,
            on_message=on_message,
            on_round_start=on_round_start,
            on_round_end=on_round_end,
            on_prediction_completed=on_prediction_completed,
            on_prediction_fragment=on_prediction_fragment,
            handle_invalid_tool_request=handle_invalid_tool_request,
            tool_timeout=tool_timeout,
            timeout=timeout,
            options=options,
        )

    async def apply_prompt_template(
        self,
        history: ChatHistoryInput,
        *,
        tools: Sequence[ToolLike] | None = None,
        omit_bos_token: bool = False,
        omit_eos_token: bool = False,
        timeout: float | DefaultType | None = DEFAULT,
    ) -> str:
        """``history`` formatted with the model's prompt template (the text the model sees).

        ``tools`` (as :meth:`act` takes them) are rendered into the prompt when the
        template supports tools.
        """
        from ..chat import Chat
        from ..config import PredictionConfig, prediction_stack
        from .tools import to_tools, tool_definitions

        chat = Chat.from_history(history)
        opts = llm.ApplyPromptTemplateOpts(
            True if omit_bos_token else UNSET,
            True if omit_eos_token else UNSET,
            tool_definitions(to_tools(tools)) if tools else UNSET,
        )
        parameter = llm.ApplyPromptTemplateParameter(
            self._specifier(), chat.to_wire(), prediction_stack(PredictionConfig()), opts
        )
        result: llm.ApplyPromptTemplateResult = await self._connection().call(
            llm.APPLY_PROMPT_TEMPLATE, parameter, timeout=timeout
        )
        return result.formatted


@sdk_boundary
class AsyncEmbeddingModel(AsyncModelHandle):
    """A loaded embedding model instance: embeddings and tokens."""

    domain: ClassVar[str] = "embedding"

    @overload
    async def embed(
        self, text: str, *, timeout: float | DefaultType | None = DEFAULT
    ) -> list[float]: ...
    @overload
    async def embed(
        self, text: list[str], *, timeout: float | DefaultType | None = DEFAULT
    ) -> list[list[float]]: ...
    async def embed(
        self, text: str | list[str], *, timeout: float | DefaultType | None = DEFAULT
    ) -> list[float] | list[list[float]]:
        """The embedding vector of ``text``; for a list of strings, one vector per string.

        A list is embedded with concurrent requests (at most ``MAX_CONCURRENT_REQUESTS``
        at once); the order is kept. The first failure cancels the others and is raised.
        """
        from ..protocol.endpoints import embedding

        connection, specifier = self._connection(), self._specifier()

        async def one(item: str) -> list[float]:
            parameter = embedding.EmbedStringParameter(specifier, item)
            result: embedding.EmbedStringResult = await connection.call(
                embedding.EMBED_STRING, parameter, timeout=timeout
            )
            return list(result.embedding)

        vectors = await _per_text(one, text, "embed()")
        return vectors
