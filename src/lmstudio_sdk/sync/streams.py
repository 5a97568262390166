"""Blocking streams: context managers that yield iterators.

Each holds the async stream's ``async with`` open in one task of the client's event loop
(:class:`~._portal.Held`) and reads it several items per trip (:class:`~._feed.Feed`).
Leaving the ``with`` block for any reason (its end, ``break``, an exception, Ctrl-C)
leaves the async block, which cancels the work on the server if it has not ended.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .._async import prediction as aio_prediction
from .._async import streams as aio
from ..results import PredictionEvent, PredictionFragment, PromptProcessingProgress
from ._feed import FedStream

if TYPE_CHECKING:
    from .._async.handles import AsyncModelHandle
    from ..protocol.endpoints.diagnostics import DiagnosticsLogEvent
    from ..results import ModelInfo, PredictionResult
    from .client import Client

__all__ = ["LoadStream", "LogStream", "PredictionCallbacks", "PredictionStream"]

H = TypeVar("H")


class LoadStream(FedStream[aio.LoadStream[Any], float], Generic[H]):
    """The progress of a model load: ``for progress in load`` yields 0..1.

    Use it in ``with``; after the stream ended, :meth:`result` is the loaded model.
    """

    def __init__(
        self,
        client: Client,
        make: Callable[[], AbstractAsyncContextManager[aio.LoadStream[Any]]],
        wrap: Callable[[AsyncModelHandle], H],
    ) -> None:
        super().__init__(client._portal, make)
        self._wrap = wrap

    def __iter__(self) -> Iterator[float]:
        return self._entered_feed()

    @property
    def progress(self) -> float:
        """The last progress reported (0..1)."""
        return float(self._portal().run_sync(getattr, self._stream(), "progress"))

    @property
    def resolved(self) -> ModelInfo | None:
        """The model on disk the key resolved to (once the server said so)."""
        resolved: ModelInfo | None = self._portal().run_sync(getattr, self._stream(), "resolved")
        return resolved

    def result(self) -> H:
        """The loaded model; raises ``RuntimeError`` if the load has not succeeded."""
        return self._wrap(self._portal().run_sync(self._stream().result))


class LogStream(FedStream[aio.LogStream, "DiagnosticsLogEvent"]):
    """The server's log events: ``for event in logs`` yields
    :class:`~lmstudio_sdk.protocol.endpoints.diagnostics.DiagnosticsLogEvent`.

    Use it in ``with``; leaving the block stops the stream on the server. It has no
    inactivity timeout (logs may be quiet for hours): stop it with Ctrl-C or ``break``.
    """

    def __init__(
        self, client: Client, make: Callable[[], AbstractAsyncContextManager[aio.LogStream]]
    ) -> None:
        super().__init__(client._portal, make)

    def __iter__(self) -> Iterator[DiagnosticsLogEvent]:
        return self._entered_feed()


class PredictionCallbacks:
    """The callbacks of one sync prediction; they run in the thread reading the stream.

    ``on_first_token()``, ``on_prediction_fragment(fragment)`` and
    ``on_prompt_processing_progress(progress)`` run as the events are read (just before
    the event is handed out); ``on_message(message)`` once the stream has been read to its
    end. The async stream is given only a recorder for the final message (a plain function
    that never blocks the loop).
    """

    def __init__(
        self,
        on_message: Callable[[Any], object] | None = None,
        on_first_token: Callable[[], object] | None = None,
        on_prediction_fragment: Callable[[PredictionFragment], object] | None = None,
        on_prompt_processing_progress: Callable[[float], object] | None = None,
    ) -> None:
        for name, callback in (
            ("on_message", on_message),
            ("on_first_token", on_first_token),
            ("on_prediction_fragment", on_prediction_fragment),
            ("on_prompt_processing_progress", on_prompt_processing_progress),
        ):
            aio_prediction.check_callback(name, callback)
        self.on_message = on_message
        self.on_first_token = on_first_token
        self.on_prediction_fragment = on_prediction_fragment
        self.on_prompt_processing_progress = on_prompt_processing_progress
        self._first_token_seen = False
        self._messages: list[Any] = []  # appended to in the loop thread

    def record_message(self) -> Callable[[Any], None] | None:
        """The ``on_message`` to give the async stream (``None`` if there is none)."""
        return None if self.on_message is None else self._messages.append

    def event(self, event: PredictionEvent) -> None:
        if isinstance(event, PredictionFragment):
            if not self._first_token_seen:
                self._first_token_seen = True
                if self.on_first_token is not None:
                    self.on_first_token()
            if self.on_prediction_fragment is not None:
                self.on_prediction_fragment(event)
        elif (
            isinstance(event, PromptProcessingProgress)
            and self.on_prompt_processing_progress is not None
        ):
            self.on_prompt_processing_progress(event.progress)

    def ended(self) -> None:
        while self._messages and self.on_message is not None:
            self.on_message(self._messages.pop(0))


class _Events(Iterator[Any]):
    def __init__(self, stream: PredictionStream, fragments_only: bool) -> None:
        self._stream = stream
        self._fragments_only = fragments_only

    def __iter__(self) -> _Events:
        return self

    def __next__(self) -> Any:
        stream = self._stream
        feed = stream._entered_feed()
        while True:
            try:
                event = next(feed)
            except StopIteration:
                stream._callbacks.ended()
                raise
            stream._callbacks.event(event)
            if not self._fragments_only or isinstance(event, PredictionFragment):
                return event


class PredictionStream(FedStream[aio_prediction.PredictionStream, PredictionEvent]):
    """The events of one prediction, from ``with model.respond_stream(...) as stream``.

    ``for event in stream`` yields :class:`~lmstudio_sdk.PredictionFragment`,
    :class:`~lmstudio_sdk.results.PromptProcessingProgress` and the tool-call events;
    ``stream.fragments()`` only the fragments. Both read the same events: breaking out of
    one loop and starting another goes on where the first stopped. :meth:`result` gives
    the :class:`~lmstudio_sdk.PredictionResult` once the prediction is over, also after the
    block was left early (with the partial text and the server's ``stop_reason``,
    ``"userStopped"``). Leaving the block early (``break``, an exception, Ctrl-C) cancels
    the prediction on the server.
    """

    def __init__(
        self,
        client: Client,
        make: Callable[
            [Callable[[Any], None] | None],
            AbstractAsyncContextManager[aio_prediction.PredictionStream],
        ],
        callbacks: PredictionCallbacks,
    ) -> None:
        super().__init__(client._portal, lambda: make(callbacks.record_message()))
        self._callbacks = callbacks

    def __iter__(self) -> Iterator[PredictionEvent]:
        self._entered_feed()
        return _Events(self, fragments_only=False)

    def fragments(self) -> Iterator[PredictionFragment]:
        """Iterate the text fragments only (reasoning fragments included; see
        ``fragment.reasoning_type``)."""
        self._entered_feed()
        return _Events(self, fragments_only=True)

    @property
    def content(self) -> str:
        """The text received so far (all of it once the prediction is over)."""
        return str(self._portal().run_sync(getattr, self._stream(), "content"))

    @property
    def finished(self) -> bool:
        """Whether the server's final packet (with the stats) has arrived."""
        return bool(self._portal().run_sync(getattr, self._stream(), "finished"))

    def result(self) -> PredictionResult:
        """The result, once the prediction is over (or the block was left).

        :raises StructuredOutputError: the reply does not fit ``response_format``.
        :raises RuntimeError: the prediction is still running: iterate to the end first.
        :raises LMStudioError: the prediction failed (the error it failed with).
        """
        return self._portal().run_sync(self._stream().result)

    def cancel(self) -> None:
        """Ask the server to stop generating now.

        Keep iterating: the server's last fragments and its final packet (``stop_reason``
        ``"userStopped"``) follow. Leaving the block does the same.
        """
        self._portal().run(self._stream().cancel)
