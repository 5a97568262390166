"""The server's diagnostics log bus: what ``diagnostics.streamLogs`` subscribers receive.

Publishing never blocks and never fails: each subscriber has a bounded buffer, and a
subscriber that falls behind loses the oldest events it has not read (it is told how many
in a ``server.log`` warning when it catches up). Events are the wire classes of
:mod:`lmstudio_sdk.protocol.endpoints.diagnostics`.

Events carry the client identity they belong to (a prompt, an output, a notification) or
none (the server's own messages: loads, unloads). Unless the server shares logs
(``--share-logs``), a subscriber only receives its own identity's events and the
server's: prompts and file text never reach another client.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from ..protocol.endpoints.diagnostics import DiagnosticsLogEvent, ServerLog
from ._limits import printable

__all__ = ["LogBus", "LogSubscription"]

logger = logging.getLogger("lmstudio_sdk.server")

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING}


class LogSubscription:
    """One subscriber's queue of log events."""

    def __init__(self, limit: int, owner: str | None) -> None:
        self.owner = owner
        self._queue: collections.deque[DiagnosticsLogEvent] = collections.deque()
        self._limit = limit
        self._dropped = 0
        self._wakeup = anyio.Event()

    def put(self, event: DiagnosticsLogEvent) -> None:
        if len(self._queue) >= self._limit:
            self._queue.popleft()
            self._dropped += 1
        self._queue.append(event)
        self._wakeup.set()

    async def get(self) -> DiagnosticsLogEvent:
        """The next event (waits for one)."""
        while not self._queue:
            await self._wakeup.wait()
            self._wakeup = anyio.Event()
        if self._dropped:
            dropped, self._dropped = self._dropped, 0
            return _event(
                ServerLog(
                    f"{dropped} log events were dropped (this subscriber fell behind)", "warn"
                )
            )
        return self._queue.popleft()


def _event(data: Any) -> DiagnosticsLogEvent:
    return DiagnosticsLogEvent(timestamp=time.time() * 1000.0, data=data)


class LogBus:
    """Fan-out of diagnostics events to the ``streamLogs`` channels currently open."""

    def __init__(self, per_subscriber_limit: int = 1000, *, share: bool = False) -> None:
        self._subscribers: set[LogSubscription] = set()
        self._limit = per_subscriber_limit
        self._share = share

    @property
    def subscribers(self) -> int:
        """How many ``streamLogs`` channels are listening."""
        return len(self._subscribers)

    def publish(self, data: Any, *, owner: str | None = None) -> None:
        """Send a ``DiagnosticsLogEventData`` value to its subscribers (never blocks).

        ``owner`` is the client identity the event belongs to: only that identity's
        subscribers receive it, unless logs are shared. ``None``: a server event, for all.
        """
        if not self._subscribers:
            return
        event = _event(data)
        for subscription in self._subscribers:
            if owner is None or self._share or subscription.owner == owner:
                subscription.put(event)

    def server_log(self, content: str, level: str = "info", *, owner: str | None = None) -> None:
        """Log a server message to the Python logger and to the subscribers.

        Control characters are escaped in the Python log (one event, one line of output).
        """
        logger.log(_LEVELS.get(level, logging.ERROR), "%s", printable(content))
        self.publish(ServerLog(content, level), owner=owner)

    @asynccontextmanager
    async def subscribe(self, owner: str | None = None) -> AsyncIterator[LogSubscription]:
        """Receive the events published while the block runs (``owner``'s and the server's)."""
        subscription = LogSubscription(self._limit, owner)
        self._subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)
