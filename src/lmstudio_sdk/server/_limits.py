"""What one client may cost the server: :class:`ServerLimits`, and the connection counter.

A server that is left running (beside a browser, on a LAN, in CI for hours) must not let
one client exhaust it or starve the others. Every bound here is a field of
:class:`ServerLimits` (``ServerOptions(limits=ServerLimits(...))``); the defaults are
generous for real clients and small for anything that has not authenticated.
"""

from __future__ import annotations

import collections
import ipaddress
from typing import Any

import anyio
import attrs

__all__ = ["ConnectionCounter", "ServerLimits", "printable"]

_KIB = 2**10
_MIB = 2**20


def _check_positive(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"limits.{attribute.name} must be > 0, not {value!r}")


@attrs.frozen(kw_only=True)
class ServerLimits:
    """Per-server and per-client bounds (every one configurable; see docs/server.md).

    :param max_auth_frame_bytes: the largest frame a socket may send before it has
        authenticated (the auth packet is well under 1 KiB); bigger closes it with 1009.
    :param max_connections: websockets open at once, all clients together; one more gets
        HTTP 503 (or close code 1013 if it raced past the check).
    :param max_connections_per_address: websockets open at once from one remote address
        (another machine).
    :param max_connections_per_loopback_address: websockets open at once from one loopback
        address (``127.0.0.1``, ``::1``): every process of this machine shares it (apps,
        editors, test runs in parallel), so by default only ``max_connections`` bounds it.
    :param max_channels_per_connection: channels open at once on one socket; one more is
        refused with a ``channelError``.
    :param max_loaded_instances_per_client: model instances one client identity has loaded
        and not unloaded.
    :param max_upload_files_per_client: files one client identity may have uploaded.
    :param max_upload_total_bytes_per_client: decoded bytes of all of one identity's files.
    :param max_experiment_flags: experiment flags set at once on the server.
    :param send_stall_timeout: seconds a socket may keep its send buffer full (it stopped
        reading) before the server closes it (code 1008) and logs why.
    :param large_frame_bytes: frames at least this big are decoded in a worker thread, so
        that parsing them does not stall the other clients.
    :param failed_handshake_burst: handshakes from one address that may fail before
        authentication (too big a frame, bad credentials, no authentication in time, a
        refused origin, not HTTP) before its new connections are held: accepted, not read,
        and dropped after ``auth_timeout``. Open sockets are never affected.
    :param failed_handshake_refill: failures per second the budget of an address refills.
    :param max_held_connections: held connections at once, all addresses together; more
        are dropped at accept.
    """

    max_auth_frame_bytes: int = attrs.field(default=64 * _KIB, validator=_check_positive)
    max_connections: int = attrs.field(default=1024, validator=_check_positive)
    max_connections_per_address: int = attrs.field(default=256, validator=_check_positive)
    max_connections_per_loopback_address: int = attrs.field(default=1024, validator=_check_positive)
    max_channels_per_connection: int = attrs.field(default=1024, validator=_check_positive)
    max_loaded_instances_per_client: int = attrs.field(default=16, validator=_check_positive)
    max_upload_files_per_client: int = attrs.field(default=1000, validator=_check_positive)
    max_upload_total_bytes_per_client: int = attrs.field(
        default=512 * _MIB, validator=_check_positive
    )
    max_experiment_flags: int = attrs.field(default=256, validator=_check_positive)
    send_stall_timeout: float = attrs.field(default=30.0, validator=_check_positive)
    large_frame_bytes: int = attrs.field(default=1 * _MIB, validator=_check_positive)
    failed_handshake_burst: int = attrs.field(default=20, validator=_check_positive)
    failed_handshake_refill: float = attrs.field(default=1.0, validator=_check_positive)
    max_held_connections: int = attrs.field(default=256, validator=_check_positive)


class ConnectionCounter:
    """Open websockets, in total and per remote address (the address is the IP only)."""

    def __init__(self, limits: ServerLimits) -> None:
        self._limits = limits
        self._by_address: collections.Counter[str] = collections.Counter()
        self.total = 0
        self._idle = anyio.Event()
        self._idle.set()

    def refusal(self, address: str) -> str | None:
        """Why one more socket from ``address`` is refused now (``None``: it is not)."""
        if self.total >= self._limits.max_connections:
            return (
                f"Too many connections: this server accepts {self._limits.max_connections} at "
                "once (limits.max_connections). Close unused clients and retry."
            )
        if _is_loopback(address):
            limit, field = self._limits.max_connections_per_loopback_address, "loopback_address"
        else:
            limit, field = self._limits.max_connections_per_address, "address"
        if self._by_address[address] >= limit:
            return (
                f"Too many connections from {address}: this server accepts {limit} at once "
                f"from one address (limits.max_connections_per_{field}). Close unused "
                "clients and retry."
            )
        return None

    def add(self, address: str) -> str | None:
        """Count a socket in, unless refused (then the reason, and nothing is counted)."""
        reason = self.refusal(address)
        if reason is None:
            if self._idle.is_set():
                self._idle = anyio.Event()
            self.total += 1
            self._by_address[address] += 1
        return reason

    def remove(self, address: str) -> None:
        self.total -= 1
        self._by_address[address] -= 1
        if self._by_address[address] <= 0:
            del self._by_address[address]
        if self.total == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Wait until no websocket is open."""
        while self.total:
            await self._idle.wait()


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


_ESCAPES = {i: f"\\x{i:02x}" for i in (*range(0x20), 0x7F)} | {
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
}
# C1 controls and the Unicode line/paragraph separators end a line in some terminals too.
_ESCAPES |= {i: f"\\x{i:02x}" for i in range(0x80, 0xA0)}
_ESCAPES |= {0x2028: "\\u2028", 0x2029: "\\u2029"}


def printable(text: str, limit: int = 2000) -> str:
    """``text`` made safe for one log line: control characters escaped, length bounded.

    Client-supplied strings (notification titles, model keys, identifiers) are logged by the
    server; unescaped, a newline in one forges a whole line of ``lmsdk serve -v`` output.
    """
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text) - limit} more characters)"
    return text.translate(_ESCAPES)
