"""One generic scope for every stream: predictions, loads, downloads, log streams.

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

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .._boundary import sdk_boundary
from .._sentinel import DEFAULT, DefaultType
from ._exceptions import exceptions_unwrapped

if TYPE_CHECKING:
    from ..protocol.endpoints._spec import ChannelSpec
    from .channel import Channel
    from .connection import Connection

__all__ = ["StreamScope"]

S = TypeVar("S")


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
