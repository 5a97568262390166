"""Noticing a dead peer: ``keepAlive`` probes on idle sockets.

A half-open connection (a laptop that slept, a NAT or proxy that dropped an idle socket,
a frozen server) looks exactly like a quiet one: nothing arrives, and without a probe a
call on it waits for its whole timeout, or forever for a stream without one. The
protocol has ``keepAlive``/``keepAliveAck`` (LM Studio and ``lmsdk serve`` answer it;
the official SDKs never send it).

Policy: when nothing has arrived on a socket for ``interval`` seconds, send a
``keepAlive``. If nothing at all (the ack or any other frame) arrives within ``timeout``
seconds after it, the socket is declared dead: every call and channel in flight on it
fails with :class:`~lmstudio_sdk.LMStudioConnectionError`, and the next use reconnects.
A busy socket (frames arriving) is never probed.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Final

import anyio
import attrs

from ..errors import LMStudioConnectionError, LMStudioError

if TYPE_CHECKING:
    from ._socket import _Socket

__all__ = ["DEFAULT_KEEPALIVE", "KeepAliveSettings", "keepalive_settings", "run_keepalive"]


def _positive(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{attribute.name} must be a number of seconds > 0, got {value!r}")


@attrs.frozen
class KeepAliveSettings:
    """Probe a socket idle for ``interval`` seconds; dead if silent ``timeout`` more."""

    interval: float = attrs.field(validator=_positive)
    timeout: float = attrs.field(validator=_positive)


DEFAULT_KEEPALIVE: Final = KeepAliveSettings(interval=20.0, timeout=20.0)
"""The client's default: a dead peer is noticed within 40 s of its last frame."""


def keepalive_settings(interval: float | None, timeout: float) -> KeepAliveSettings | None:
    """The settings for the client's ``keepalive_interval``/``keepalive_timeout`` arguments.

    ``interval=None`` turns probing off.
    """
    if interval is None:
        return None
    try:
        return KeepAliveSettings(interval=float(interval), timeout=float(timeout))
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"keepalive_interval and keepalive_timeout must be numbers of seconds > 0 "
            f"(keepalive_interval=None turns keepalive off); got {interval!r} and {timeout!r}"
        ) from exc


async def run_keepalive(sock: _Socket, settings: KeepAliveSettings) -> None:
    """Probe ``sock`` while it lives (a task of the client; cancelled when it closes)."""
    with sock.keepalive_scope:
        while sock.alive:
            idle = anyio.current_time() - sock.last_received
            if idle < settings.interval:
                await anyio.sleep(settings.interval - idle)
                continue
            probe_sent = anyio.current_time()
            try:
                await sock.send_frame(sock.session.keep_alive())
            except LMStudioError:
                return  # the socket died meanwhile; its reader has failed everything
            await anyio.sleep(settings.timeout)
            if sock.alive and sock.last_received < probe_sent:
                message = (
                    f"{sock._where()}: the server did not answer a keepAlive within "
                    f"{settings.timeout:g} s after {settings.interval:g} s of silence "
                    "(the server or the network is gone; the next call reconnects)"
                )
                await sock._die(functools.partial(LMStudioConnectionError, message))
                return
