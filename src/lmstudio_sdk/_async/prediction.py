"""Predictions on the channel primitive: ``respond``/``complete``, their streams, callbacks.

A prediction is one ``llm.predict`` (or ``llm.completeRawText``) channel. Everything the
user can get wrong is checked when the request is built, before anything is sent: the
options (:func:`~lmstudio_sdk.config.prediction_config_from`), the chat history
(:meth:`~lmstudio_sdk.Chat.from_history`), the response format and the callbacks.

:class:`PredictionStream` is what ``async with model.respond_stream(...) as stream``
yields: a receive stream of typed events (fragments, prompt progress, tool-call events).
The packets go through a :class:`~lmstudio_sdk._prediction.PredictionAccumulator`, so
``stream.result()`` is available once the server's ``success`` has arrived, including
after the block was left early: leaving the block cancels the prediction on the server,
the channel layer waits (shielded, bounded) for its last packets, and those are fed to the
accumulator on the way out. The result then carries the ``stopReason`` the server sent
(``userStopped``); the client never invents one.
"""

# Per-call ``timeout=`` is part of the API (DESIGN 4): it composes with anyio.fail_after.
# ruff: noqa: ASYNC109

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import anyio
import attrs
from anyio.abc import ObjectReceiveStream

from .._boundary import cuts_own_traceback, for_caller, sdk_boundary
from .._prediction import PredictionAccumulator
from .._sentinel import DEFAULT, DefaultType
from .._structured import Parser
from .._structured import response_format as resolve_response_format
from ..chat import Chat
from ..config import PredictionConfig, prediction_config_from, prediction_stack
from ..errors import LMStudioError, RemoteProtocolError
from ..protocol.endpoints import llm, shared
from ..protocol.kv import KVConfig, KVConfigField, KVConfigLayer
from ..results import (
    PredictionEvent,
    PredictionFragment,
    PredictionResult,
    PromptProcessingProgress,
)
from .streams import StreamScope

if TYPE_CHECKING:
    from ..protocol.endpoints._spec import ChannelSpec
    from .channel import Channel
    from .connection import Connection

__all__ = [
    "COMPLETE_MODE_TEMPLATE",
    "PredictionCallbacks",
    "PredictionRequest",
    "PredictionStream",
    "complete_request",
    "open_prediction",
    "prepare_config",
    "respond_request",
    "run_prediction",
]

logger = logging.getLogger("lmstudio_sdk")

COMPLETE_MODE_TEMPLATE: Final = "{% for message in messages %}{{ message['content'] }}{% endfor %}"
"""The Jinja template of ``complete()``'s ``completeModeFormatting`` layer: the prompt is
the message text as is, with no chat markup (PROTOCOL.md section 5)."""

Callback = Callable[..., Any]
"""A plain function or a coroutine function (awaited)."""


async def call_back(callback: Callback | None, *args: Any) -> None:
    """Call ``callback(*args)``; await the outcome if it is awaitable."""
    if callback is not None:
        outcome = callback(*args)
        if inspect.isawaitable(outcome):
            await outcome


def check_callback(name: str, callback: Any) -> None:
    """``TypeError`` unless ``callback`` is ``None`` or callable."""
    if callback is not None and not callable(callback):
        raise TypeError(f"{name} must be a function (or None), got {callback!r}")


# ------------------------------------------------------------------------------ callbacks


@attrs.define
class PredictionCallbacks:
    """The callbacks of one prediction; each is a function or a coroutine function.

    * ``on_message(message)``: the final assistant message (an ``AssistantMessage`` that
      :meth:`Chat.append <lmstudio_sdk.Chat.append>` takes), once the prediction finished;
    * ``on_first_token()``: when the first fragment arrives;
    * ``on_prediction_fragment(fragment)``: every :class:`~lmstudio_sdk.PredictionFragment`;
    * ``on_prompt_processing_progress(progress)``: prompt processing, a float from 0 to 1.
    """

    on_message: Callback | None = None
    on_first_token: Callback | None = None
    on_prediction_fragment: Callback | None = None
    on_prompt_processing_progress: Callback | None = None
    _first_token_seen: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        for field in attrs.fields(type(self)):
            if field.name.startswith("on_"):
                check_callback(field.name, getattr(self, field.name))

    @property
    def on_events(self) -> bool:
        """Whether a callback wants to see events (else :meth:`event` does nothing)."""
        return (
            self.on_first_token is not None
            or self.on_prediction_fragment is not None
            or self.on_prompt_processing_progress is not None
        )

    async def event(self, event: PredictionEvent | None) -> None:
        if isinstance(event, PredictionFragment):
            if not self._first_token_seen:
                self._first_token_seen = True
                await call_back(self.on_first_token)
            await call_back(self.on_prediction_fragment, event)
        elif isinstance(event, PromptProcessingProgress):
            await call_back(self.on_prompt_processing_progress, event.progress)

    async def finished(self, result: PredictionResult) -> None:
        if self.on_message is not None:
            await call_back(self.on_message, Chat().add_assistant_response(result))


# ------------------------------------------------------------------------------ requests


@attrs.frozen
class PredictionRequest:
    """A checked request: the endpoint, its creation parameter and the reply's parser."""

    spec: ChannelSpec
    parameter: Any
    parser: Parser | None = None


def prepare_config(
    config: PredictionConfig | Mapping[str, Any] | None,
    response_format: Any,
    options: Mapping[str, Any],
) -> tuple[PredictionConfig, Parser | None]:
    """The prediction config of ``config`` + ``options`` with ``response_format``, and the
    parser of the structured reply (``None`` without one).

    :raises ValueError: an unknown option, a bad value, a bad response format.
    """
    cfg = prediction_config_from(config, **options)
    if response_format is not None:
        if cfg.structured is not None:
            raise ValueError(
                "the structured output format is given twice: use response_format= "
                "or the structured option, not both"
            )
        cfg = attrs.evolve(cfg, structured=response_format)  # validated here
    parser = None if cfg.structured is None else resolve_response_format(cfg.structured).parser
    return cfg, parser


def _complete_mode_layer() -> KVConfigLayer:
    template = {
        "type": "jinja",
        "jinjaPromptTemplate": {"template": COMPLETE_MODE_TEMPLATE},
        "stopStrings": [],
    }
    return KVConfigLayer(
        "completeModeFormatting",
        KVConfig([KVConfigField("llm.prediction.promptTemplate", template)]),
    )


def respond_request(
    specifier: shared.ModelSpecifier, history: Any, cfg: PredictionConfig, parser: Parser | None
) -> PredictionRequest:
    """The ``predict`` request for ``history`` (anything :meth:`Chat.from_history` takes)."""
    chat = Chat.from_history(history)
    if not len(chat):
        raise ValueError("the chat is empty: add a user message first")
    parameter = llm.PredictCreationParameter(specifier, chat.to_wire(), prediction_stack(cfg))
    return PredictionRequest(llm.PREDICT, parameter, parser)


def complete_request(
    specifier: shared.ModelSpecifier,
    prompt: str,
    cfg: PredictionConfig,
    parser: Parser | None,
    *,
    raw_text_endpoint: bool,
) -> PredictionRequest:
    """The request that continues ``prompt`` as raw text.

    By default ``predict`` with a one-message history and a ``completeModeFormatting``
    layer whose template concatenates the messages (every server supports it). With
    ``raw_text_endpoint``, ``completeRawText`` (newer servers only); there, as in the JS
    SDK, the stop strings default to none rather than the model's chat stop strings.
    """
    if not isinstance(prompt, str):
        raise TypeError(f"the prompt must be a str, got {type(prompt).__name__}")
    if raw_text_endpoint:
        if cfg.raw_tools is not None or cfg.tool_choice is not None:
            raise ValueError("tools cannot be used with completion (raw_text_endpoint=True)")
        if cfg.stop_strings is None:
            cfg = attrs.evolve(cfg, stop_strings=())
        raw = llm.CompleteRawTextCreationParameter(specifier, prompt, prediction_stack(cfg))
        return PredictionRequest(llm.COMPLETE_RAW_TEXT, raw, parser)
    history = shared.ChatHistoryData([shared.UserMessage([shared.TextPart(prompt)])])
    stack = prediction_stack(cfg, extra_layers=[_complete_mode_layer()])
    parameter = llm.PredictCreationParameter(specifier, history, stack)
    return PredictionRequest(llm.PREDICT, parameter, parser)


# ------------------------------------------------------------------------------ the stream


@sdk_boundary
class PredictionStream(ObjectReceiveStream[PredictionEvent]):
    """The events of one prediction, from ``async with model.respond_stream(...) as stream``.

    ``async for event in stream`` yields :class:`~lmstudio_sdk.PredictionFragment`,
    :class:`~lmstudio_sdk.results.PromptProcessingProgress` and the tool-call events, and
    ends when the server ends the prediction; ``stream.fragments()`` yields the fragments
    only. :meth:`result` gives the :class:`~lmstudio_sdk.PredictionResult` once the
    prediction is over, also after the block was left early (then with the partial text and
    the ``stop_reason`` the server reported, ``"userStopped"``). :meth:`cancel` asks the
    server to stop; keep iterating to get its last fragments and the result.
    """

    def __init__(
        self,
        channel: Channel[Any],
        accumulator: PredictionAccumulator,
        callbacks: PredictionCallbacks,
    ) -> None:
        self._channel = channel
        self._accumulator = accumulator
        self._callbacks = callbacks
        self._failure: BaseException | None = None
        self._server_ended = False
        self._left = False

    def __repr__(self) -> str:
        if self._accumulator.finished:
            result = self._accumulator.result
            state = f"finished ({result.stop_reason if result else '?'})"
        elif self._left:
            state = "left"
        else:
            state = "streaming"
        return f"<PredictionStream {self._channel.endpoint} {state}>"

    # ------------------------------------------------------------------ reading

    @cuts_own_traceback
    async def __anext__(self) -> PredictionEvent:
        # The hot path of a stream: one coroutine per event (no wrapper, no receive() call
        # under it), and no callback coroutine when there is no callback.
        channel, accumulator, callbacks = self._channel, self._accumulator, self._callbacks
        while True:
            try:
                packet = await channel.receive()
                event = accumulator.feed(packet)
            except anyio.EndOfStream:
                self._server_ended = True
                raise StopAsyncIteration from None
            except LMStudioError as exc:  # the server's error, a broken packet, a timeout...
                self._failure = exc
                raise for_caller(exc)  # noqa: B904 - the same exception, chained as it was
            if callbacks.on_events:
                await callbacks.event(event)
            if accumulator.finished and isinstance(packet, llm.PredictSuccess):
                result = accumulator.result
                assert result is not None
                await callbacks.finished(result)
            if event is not None:
                return event

    def _ready(self) -> bool:
        """Whether the next packet is already here (the sync facade's batches, ``_feed``)."""
        return self._channel._ready()

    @cuts_own_traceback
    async def receive(self) -> PredictionEvent:
        """The next event; ``anyio.EndOfStream`` when the prediction is over."""
        try:
            return await self.__anext__()
        except StopAsyncIteration:
            raise anyio.EndOfStream from None

    def fragments(self) -> AsyncIterator[PredictionFragment]:
        """Iterate the text fragments only (reasoning fragments included; see
        ``fragment.reasoning_type``)."""
        return _Fragments(self)

    @property
    def content(self) -> str:
        """The text received so far (all of it once the prediction is over)."""
        return self._accumulator.content

    @property
    def finished(self) -> bool:
        """Whether the server's final packet (with the stats) has arrived."""
        return self._accumulator.finished

    def result(self) -> PredictionResult:
        """The result, once the prediction is over (or the block was left).

        After an early exit this is the partial result the server confirmed, with its
        ``stop_reason`` (``"userStopped"``); ``parsed`` is then ``None`` if the partial
        reply does not validate.

        :raises StructuredOutputError: the complete reply does not fit ``response_format``
            (``raw_text`` holds it).
        :raises RuntimeError: the prediction is still running: iterate to the end first.
        :raises LMStudioError: the prediction failed (the error it failed with), or the
            server never confirmed its end.
        """
        accumulator = self._accumulator
        result = accumulator.result
        if result is not None:
            error = accumulator.parse_error
            if error is not None and result.stop_reason != "userStopped":
                raise error
            return result
        if self._failure is not None:
            raise self._failure
        if self._server_ended:
            return accumulator.finish()  # raises: the server ended without a success packet
        if not self._left:
            raise RuntimeError(
                "the prediction has not finished: iterate the stream to its end, or leave "
                "the `async with` block, before asking for the result"
            )
        raise LMStudioError(
            f"{self._channel.endpoint}: no result: the server did not confirm the end of the "
            "prediction (its final packet never arrived)"
        )

    # ------------------------------------------------------------------ ending early

    async def cancel(self) -> None:
        """Ask the server to stop generating now.

        Keep iterating: the server's last fragments and its final packet (``stop_reason``
        ``"userStopped"``) follow. Leaving the block does the same. No-op once finished.
        """
        if not self._accumulator.finished:
            await self._channel.aclose()

    async def aclose(self) -> None:
        """The same as :meth:`cancel` (the stream stays readable to its end)."""
        await self.cancel()

    def _absorb_final_packets(self) -> None:
        """After the scope: feed what arrived while the channel layer drained it."""
        self._left = True
        for packet in self._channel.final_packets:
            if self._accumulator.finished:
                break
            try:
                self._accumulator.feed(packet)
            except RemoteProtocolError as exc:  # pragma: no cover - defensive
                logger.warning("%s: %s", self._channel.endpoint, exc)
                break


class _Fragments(AsyncIterator[PredictionFragment]):
    def __init__(self, stream: PredictionStream) -> None:
        self._stream = stream

    def __aiter__(self) -> AsyncIterator[PredictionFragment]:
        return self

    async def __anext__(self) -> PredictionFragment:
        while True:
            event = await self._stream.__anext__()  # StopAsyncIteration at the end
            if isinstance(event, PredictionFragment):
                return event


def open_prediction(
    connection: Connection,
    request: PredictionRequest,
    callbacks: PredictionCallbacks | None = None,
    *,
    timeout: float | DefaultType | None = DEFAULT,
    drain_timeout: float | DefaultType = DEFAULT,
) -> StreamScope[PredictionStream]:
    """The ``async with`` scope of one prediction (see :class:`PredictionStream`)."""
    accumulator = PredictionAccumulator(parser=request.parser)
    hooks = callbacks or PredictionCallbacks()
    return StreamScope(
        connection,
        request.spec,
        request.parameter,
        lambda channel: PredictionStream(channel, accumulator, hooks),
        finish=PredictionStream._absorb_final_packets,
        idle_timeout=timeout,
        drain_timeout=drain_timeout,
    )


async def run_prediction(
    connection: Connection,
    request: PredictionRequest,
    callbacks: PredictionCallbacks | None = None,
    *,
    timeout: float | DefaultType | None = DEFAULT,
    drain_timeout: float | DefaultType = DEFAULT,
) -> PredictionResult:
    """Run a prediction to its end and return its result."""
    scope = open_prediction(
        connection, request, callbacks, timeout=timeout, drain_timeout=drain_timeout
    )
    async with scope as stream:
        async for _ in stream:
            pass
    return stream.result()
