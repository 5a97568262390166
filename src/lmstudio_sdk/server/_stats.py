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
        self._open: Counter[str] = Counter()
        self._peak: Counter[str] = Counter()
        self._opened: Counter[str] = Counter()
        self._open_total = 0
        self._peak_total = 0
        self._opened_total = 0

    def __repr__(self) -> str:
        return (
            f"<ServerStats open_channels={self.open_channels} "
            f"peak_open_channels={self.peak_open_channels} "
            f"channels_opened={self.channels_opened}>"
        )

    @property
    def open_channels(self) -> int:
        """Channels open right now."""
        return self._open_total

    @property
    def peak_open_channels(self) -> int:
        """The most channels open at the same time since start or :meth:`reset`."""
        return self._peak_total

    @property
    def channels_opened(self) -> int:
        """Channels started since start or :meth:`reset`."""
        return self._opened_total

    def reset(self) -> None:
        """Start a new measurement: peaks drop to what is open now, ``channels_opened`` to 0."""
        with self._lock:
            self._peak = Counter({k: v for k, v in self._open.items() if v})
            self._peak_total = self._open_total
            self._opened.clear()
            self._opened_total = 0

    def snapshot(self) -> StatsSnapshot:
        """Every counter, consistent with each other, total and per endpoint."""
        with self._lock:
            return StatsSnapshot(
                open_channels=self._open_total,
                peak_open_channels=self._peak_total,
                channels_opened=self._opened_total,
                open_by_endpoint={k: v for k, v in self._open.items() if v},
                peak_open_by_endpoint={k: v for k, v in self._peak.items() if v},
                opened_by_endpoint={k: v for k, v in self._opened.items() if v},
            )

    # ------------------------------------------------------------------ for the server

    def channel_opened(self, endpoint: str) -> None:
        """A channel of ``endpoint`` (``"namespace.name"``) started; call :meth:`channel_ended`."""
        with self._lock:
            self._opened[endpoint] += 1
            self._opened_total += 1
            count = self._open[endpoint] = self._open[endpoint] + 1
            if count > self._peak[endpoint]:
                self._peak[endpoint] = count
            self._open_total += 1
            if self._open_total > self._peak_total:
                self._peak_total = self._open_total

    def channel_ended(self, endpoint: str) -> None:
        """A channel counted by :meth:`channel_opened` ended."""
        with self._lock:
            self._open[endpoint] -= 1
            self._open_total -= 1
