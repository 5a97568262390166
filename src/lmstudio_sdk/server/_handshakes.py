"""What a remote address may cost the server before it authenticates: a failure budget.

A client that fails its handshake (a frame too big before authentication, rejected or
missing credentials, no authentication in time, a refused browser origin, garbage instead
of HTTP) has cost the server an accept, an HTTP upgrade and some parsing. One that does it
again at once, and again, multiplies that cost on the event loop every other client
shares. Each remote address therefore has a budget of such failures (a token bucket:
``limits.failed_handshake_burst`` at once, refilled at ``limits.failed_handshake_refill``
per second). Once it is spent, new connections from that address are *held*: accepted,
never read, and dropped after ``auth_timeout`` (up to ``limits.max_held_connections`` at
once; beyond that they are dropped at accept). A held peer's writes just fill its socket
buffer, at no CPU cost to the server, and a reconnecting attacker waits out the hold.

Only new connections are affected: sockets already open (authenticated clients from the
same address) are never touched, and the address is served again as soon as its budget
has refilled by one failure.

The budget itself is sans-io (time comes from an injected clock); the holding of sockets is
done by :class:`~lmstudio_sdk.server._connection.GuardedConnection`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs

from ._limits import ServerLimits

__all__ = ["HandshakeBudget"]

_PRUNE_AT = 4096
"""Addresses remembered before those with a full budget again are forgotten."""


@attrs.define
class _Bucket:
    tokens: float
    at: float
    held_logged: bool = False


class HandshakeBudget:
    """Per-address budget of handshakes that failed before authentication.

    ``clock`` returns seconds (monotonic); tests pass one they control.
    """

    def __init__(self, limits: ServerLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self._burst = float(limits.failed_handshake_burst)
        self._refill = limits.failed_handshake_refill
        self._max_held = limits.max_held_connections
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._held: set[Callable[[], None]] = set()

    def _bucket(self, address: str) -> _Bucket | None:
        bucket = self._buckets.get(address)
        if bucket is not None:
            now = self._clock()
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.at) * self._refill)
            bucket.at = now
            if bucket.tokens >= 1:
                bucket.held_logged = False  # the episode is over: log the next one
        return bucket

    def failed(self, address: str) -> str | None:
        """Count one failed handshake from ``address``.

        Returns a log line when this failure spent the address's budget (once per episode:
        the line is not repeated until the budget has refilled), else ``None``.
        """
        bucket = self._bucket(address)
        if bucket is None:
            if len(self._buckets) >= _PRUNE_AT:
                self._forget_refilled()
            bucket = self._buckets[address] = _Bucket(self._burst, self._clock())
        bucket.tokens = max(0.0, bucket.tokens - 1)
        if bucket.tokens >= 1 or bucket.held_logged:
            return None
        bucket.held_logged = True
        return (
            f"Holding new connections from {address}: its handshakes failed before "
            f"authentication more than {self._burst:g} times at once "
            "(limits.failed_handshake_burst); new ones are accepted but not read, and dropped "
            f"after the auth timeout, until its budget refills ({self._refill:g} per second, "
            "limits.failed_handshake_refill). Its open sockets are not affected."
        )

    def over_budget(self, address: str) -> bool:
        """Whether a new connection from ``address`` must be held (its budget is spent)."""
        bucket = self._bucket(address)
        return bucket is not None and bucket.tokens < 1

    @property
    def held(self) -> int:
        """Connections held right now (accepted, not read, dropped after the deadline)."""
        return len(self._held)

    def hold(self, drop: Callable[[], None]) -> bool:
        """Take a hold slot for a connection that ``drop()`` drops (``False``: no slot left,
        drop it at accept)."""
        if len(self._held) >= self._max_held:
            return False
        self._held.add(drop)
        return True

    def release(self, drop: Callable[[], None]) -> None:
        """Give back the slot of a held connection (it was dropped)."""
        self._held.discard(drop)

    def drop_held(self) -> None:
        """Drop every held connection now (the server is stopping)."""
        for drop in list(self._held):
            drop()

    def _forget_refilled(self) -> None:
        for address in list(self._buckets):
            bucket = self._bucket(address)
            if bucket is not None and bucket.tokens >= self._burst:
                del self._buckets[address]
