"""The streams of the async API: one generic scope for every stream (predictions, loads,
downloads, log streams), and the load and log streams the namespaces return.

:class:`StreamScope` is what ``model.respond_stream(...)``, ``client.llm.load_stream(...)``
and ``client.diagnostics.stream_logs()`` return: an async context manager that opens the
endpoint's channel on entry and yields the stream object wrapped around it
(:class:`~lmstudio_sdk.PredictionStream`, :class:`~lmstudio_sdk.LoadStream`,
:class:`~lmstudio_sdk.LogStream`). Leaving the block cancels the channel on the server if
it is still running, waits (shielded, at most ``drain_timeout`` seconds) for the server's
last packets, and hands those to the stream, so its result is complete after an early
exit. A stream whose ``channelCreate`` never went out (the block was entered inside a
cancelled scope) sends nothing and waits for nothing. See ``docs/cancellation.md``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio

from .._boundary import sdk_boundary
from .._sentinel import DEFAULT, DefaultType
from ..errors import RemoteProtocolError
from ..results import ModelInfo
from ._exceptions import exceptions_unwrapped

if TYPE_CHECKING:
    from ..protocol.endpoints import diagnostics
    from ..protocol.endpoints._spec import ChannelSpec
    from .channel import Channel
    from .connection import Connection
    from .handles import AsyncModelHandle
    from .namespaces import _ModelNamespace

__all__ = ["LoadStream", "LogStream", "StreamScope"]

S = TypeVar("S")
H = TypeVar("H", bound="AsyncModelHandle")


@sdk_boundary
class StreamScope(AbstractAsyncContextManager[S], Generic[S]):
    """``async with scope as stream``: a stream for the duration of the block.

    Returned by ``respond_stream()``, ``complete_stream()``, ``load_stream()`` and
    ``stream_logs()``; enter it once. Leaving the block before the stream ended cancels it
    on the server and waits at most ``drain_timeout`` seconds for the server to confirm
    (the client's ``drain_timeout`` unless the call gave one); nothing is sent and nothing
    awaited for a stream the server never saw. The block's exception or cancellation
    propagates unchanged.
    """

    def __init__(
        self,
        connection: Connection,
        spec: ChannelSpec,
        parameter: Any,
        wrap: Callable[[Channel[Any]], S],
        *,
        finish: Callable[[S], None] | None = None,
        idle_timeout: float | DefaultType | None = DEFAULT,
        drain_timeout: float | DefaultType = DEFAULT,
    ) -> None:
        self._scope = connection.open_channel(
            spec, parameter, idle_timeout=idle_timeout, drain_timeout=drain_timeout
        )
        self._wrap = wrap
        self._finish = finish
        self._stream: S | None = None
        self._entered = False

    def __repr__(self) -> str:
        state = "not entered" if not self._entered else repr(self._stream)
        return f"<StreamScope {state}>"

    async def __aenter__(self) -> S:
        if self._entered:
            raise RuntimeError("a stream can be entered only once: call the method again")
        self._entered = True
        with exceptions_unwrapped():
            channel = await self._scope.__aenter__()
        self._stream = self._wrap(channel)
        return self._stream

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._scope.__aexit__(exc_type, exc, tb)
        finally:
            if self._finish is not None and self._stream is not None:
                self._finish(self._stream)


@sdk_boundary
class LoadStream(Generic[H]):
    """The progress of a model load: ``async for progress in load`` yields 0..1.

    After the stream ended, :meth:`result` is the loaded model. ``resolved`` is the model
    on disk the key resolved to (once the server said so).
    """

    def __init__(self, namespace: _ModelNamespace[H], channel: Channel[Any]) -> None:
        self._namespace = namespace
        self._channel = channel
        self._handle: H | None = None
        self.resolved: ModelInfo | None = None
        self.progress: float = 0.0

    def __repr__(self) -> str:
        state = "loaded" if self._handle is not None else f"{self.progress:.0%}"
        return f"<LoadStream {self._channel.endpoint} {state}>"

    def __aiter__(self) -> AsyncIterator[float]:
        return self

    async def __anext__(self) -> float:
        while True:
            try:
                packet = await self._channel.receive()
            except anyio.EndOfStream:
                if self._handle is None:
                    raise RemoteProtocolError(
                        f"{self._channel.endpoint}: the server ended the load without "
                        "reporting success"
                    ) from None
                raise StopAsyncIteration from None
            progress = self._absorb(packet)
            if progress is not None:
                return progress

    def _absorb_final_packets(self) -> None:
        """After the scope: take in what arrived while the channel layer drained it."""
        for packet in self._channel.final_packets:
            self._absorb(packet)

    def _absorb(self, packet: Any) -> float | None:
        kind = getattr(packet, "type", None)
        if kind in ("progress", "loadProgress"):
            self.progress = float(packet.progress)
            return self.progress
        if kind in ("resolved", "startLoading"):
            self.resolved = ModelInfo.from_wire(packet.info)
        elif kind in ("success", "loadSuccess", "alreadyLoaded"):
            self._handle = self._namespace._handle(packet.info)
            self.progress = 1.0
        return None

    def result(self) -> H:
        """The loaded model; raises ``RuntimeError`` if the load has not succeeded."""
        if self._handle is None:
            raise RuntimeError(
                "the load has not finished: iterate the stream to its end first "
                "(or it was cancelled or failed)"
            )
        return self._handle


@sdk_boundary
class LogStream:
    """The server's log events: ``async for event in logs`` yields
    :class:`~lmstudio_sdk.protocol.endpoints.diagnostics.DiagnosticsLogEvent` (``.timestamp``
    in ms, ``.data``)."""

    def __init__(self, channel: Channel[Any]) -> None:
        self._channel = channel

    def __aiter__(self) -> AsyncIterator[diagnostics.DiagnosticsLogEvent]:
        return self

    async def __anext__(self) -> diagnostics.DiagnosticsLogEvent:
        from ..protocol.endpoints import diagnostics

        while True:
            try:
                packet = await self._channel.receive()
            except anyio.EndOfStream:
                raise StopAsyncIteration from None
            if isinstance(packet, diagnostics.StreamLogsLog):
                return packet.log
