"""Counters a running server keeps about itself: open channels, now and at the peak.

A channel counts as *open* from the moment the server starts its handler until the handler
ends, just before the server sends its ``channelClose`` (or ``channelError``): a client that
has received the end of a channel can rely on it no longer being counted.
"""

from __future__ import annotations

import threading
from collections import Counter

import attrs

__all__ = ["ServerStats", "StatsSnapshot"]

_TOTAL = ""
"""The counters' key for the total over all endpoints (no endpoint is called "")."""


@attrs.frozen
class StatsSnapshot:
    """The counters of :class:`ServerStats` at one moment (see there for their meaning).

    The ``*_by_endpoint`` mappings are keyed ``"namespace.endpoint"`` (``"llm.predict"``)
    and only list endpoints with a non-zero count.
    """

    open_channels: int
    peak_open_channels: int
    channels_opened: int
    open_by_endpoint: dict[str, int]
    peak_open_by_endpoint: dict[str, int]
    opened_by_endpoint: dict[str, int]


class ServerStats:
    """Open-channel statistics of one server (``server.stats``); thread-safe.

    * ``open_channels``: channels whose handler is running right now;
    * ``peak_open_channels``: the most that were open at the same time since the server
      started or since :meth:`reset`;
    * ``channels_opened``: channels started since the server started or since :meth:`reset`.

    :meth:`snapshot` also gives these per endpoint (e.g. only ``"llm.predict"``). Reading is
    safe from any thread; :meth:`reset` too.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Per endpoint, and the total over all endpoints under the key _TOTAL.
        self._open: Counter[str] = Counter()
        self._peak: Counter[str] = Counter()
        self._opened: Counter[str] = Counter()

    def __repr__(self) -> str:
        return (
            f"<ServerStats open_channels={self.open_channels} "
            f"peak_open_channels={self.peak_open_channels} "
            f"channels_opened={self.channels_opened}>"
        )

    @property
    def open_channels(self) -> int:
        """Channels open right now."""
        return self._open[_TOTAL]

    @property
    def peak_open_channels(self) -> int:
        """The most channels open at the same time since start or :meth:`reset`."""
        return self._peak[_TOTAL]

    @property
    def channels_opened(self) -> int:
        """Channels started since start or :meth:`reset`."""
        return self._opened[_TOTAL]

    def reset(self) -> None:
        """Start a new measurement: peaks drop to what is open now, ``channels_opened`` to 0."""
        with self._lock:
            self._peak = self._open.copy()
            self._opened.clear()

    def snapshot(self) -> StatsSnapshot:
        """Every counter, consistent with each other, total and per endpoint."""
        with self._lock:
            return StatsSnapshot(
                open_channels=self._open[_TOTAL],
                peak_open_channels=self._peak[_TOTAL],
                channels_opened=self._opened[_TOTAL],
                open_by_endpoint=_by_endpoint(self._open),
                peak_open_by_endpoint=_by_endpoint(self._peak),
                opened_by_endpoint=_by_endpoint(self._opened),
            )

    # ------------------------------------------------------------------ for the server

    def channel_opened(self, endpoint: str) -> None:
        """A channel of ``endpoint`` (``"namespace.name"``) started; call :meth:`channel_ended`."""
        with self._lock:
            for key in (endpoint, _TOTAL):
                self._opened[key] += 1
                self._open[key] += 1
                self._peak[key] = max(self._peak[key], self._open[key])

    def channel_ended(self, endpoint: str) -> None:
        """A channel counted by :meth:`channel_opened` ended."""
        with self._lock:
            for key in (endpoint, _TOTAL):
                self._open[key] -= 1


def _by_endpoint(counter: Counter[str]) -> dict[str, int]:
    return {k: v for k, v in counter.items() if v and k != _TOTAL}
