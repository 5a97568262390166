"""Where LM Studio is, and who we are: host forms, port discovery, credentials.

Host, in order: the ``host=`` argument, else the ``LMSTUDIO_HOST`` environment variable,
else discovery. Accepted forms: ``ws://h:p``, ``wss://h:p``, ``http://h:p`` (becomes
``ws://``), ``https://h:p`` (becomes ``wss://``) and bare ``h:p``; a path prefix (behind a
proxy) is kept, a trailing ``/`` is dropped. Discovery probes ``GET /lmstudio-greeting`` on
127.0.0.1 at the well-known API ports *concurrently*; the first that answers
``{"lmstudio": true}`` wins and the other probes are cancelled. When none does, the error
names every port tried and why it failed.

Credentials, in order: ``api_token=``, else ``LM_API_TOKEN`` (what LM Studio's docs and
the JS SDK use), else ``LMSTUDIO_API_TOKEN`` (what the official Python SDK reads). A token
(``sk-lm-<8>:<20>``) is split into the client identifier and passkey. Without one the
client is a guest with a random identity: all sockets of one client share it, so files
uploaded on one namespace can be used on another. A malformed token is a ``ValueError``
that says where the token came from and never repeats it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping, Sequence
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import anyio
import attrs

from ..errors import LMStudioConnectionError, LocalProtocolError
from ..protocol.session import parse_api_token
from ._http import GreetingFailed, fetch_greeting
from .transport import NOT_RUNNING_HINT

__all__ = [
    "DEFAULT_PORTS",
    "DISCOVERY_HOST",
    "HOST_ENV_VAR",
    "PROBE_TIMEOUT",
    "TOKEN_ENV_VARS",
    "Credentials",
    "discover",
    "normalize_host",
    "resolve_credentials",
    "resolve_host",
]

#: The API server ports LM Studio uses (the same list in both official SDKs).
DEFAULT_PORTS: Final[tuple[int, ...]] = (41343, 52993, 16141, 39414, 22931)
DISCOVERY_HOST: Final = "127.0.0.1"
HOST_ENV_VAR: Final = "LMSTUDIO_HOST"
TOKEN_ENV_VARS: Final[tuple[str, ...]] = ("LM_API_TOKEN", "LMSTUDIO_API_TOKEN")
#: Per-probe bound. Loopback answers (or refuses) in well under a millisecond; this only
#: matters for a port held by something that accepts and then never answers.
PROBE_TIMEOUT: Final = 2.0

_SCHEMES: Final = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}


def normalize_host(host: str, *, source: str = "host") -> str:
    """Turn a host in any accepted form into a base websocket URL (no trailing ``/``).

    ``source`` names where the value came from, for the error message. A bad value is a
    ``ValueError`` saying which forms are accepted.
    """
    if not isinstance(host, str):
        raise TypeError(f"{source} must be a str, got {type(host).__name__}")
    text = host.strip()
    accepted = (
        "use ws://host:port, wss://host:port, http://host:port, https://host:port or host:port"
    )
    if not text:
        raise ValueError(f"{source} is empty; {accepted}")
    bare = "://" not in text
    if bare:
        text = f"ws://{text}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{source} {host!r} is not a valid address ({exc}); {accepted}") from None
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        raise ValueError(
            f"{source} {host!r} has an unsupported scheme {parts.scheme!r}; {accepted}"
        )
    if parts.username is not None or parts.password is not None:
        # Refused rather than masked: credentials in a URL end up in logs and errors.
        raise ValueError(f"{source}: user:password@ is not supported; pass api_token= instead")
    if not parts.hostname:
        raise ValueError(f"{source} {host!r} names no host; {accepted}")
    if parts.query or parts.fragment:
        raise ValueError(f"{source} {host!r} must not have a query or fragment")
    if bare and port is None:
        raise ValueError(f"{source} {host!r} names no port; {accepted}")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def resolve_host(host: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The base URL from ``host`` or ``LMSTUDIO_HOST``; ``None`` means "discover"."""
    if host is not None:
        return normalize_host(host, source="host")
    env = os.environ if environ is None else environ
    value = env.get(HOST_ENV_VAR, "").strip()
    if value:
        return normalize_host(value, source=f"the {HOST_ENV_VAR} environment variable")
    return None


async def discover(
    ports: Sequence[int] = DEFAULT_PORTS,
    *,
    host: str = DISCOVERY_HOST,
    probe_timeout: float = PROBE_TIMEOUT,
) -> str:
    """Probe ``ports`` concurrently; return ``ws://host:port`` of the first LM Studio found.

    :raises LMStudioConnectionError: nobody answered; ``attempts`` has every port and why.
    """
    found: list[str] = []
    failures: dict[int, str] = {}

    async def probe(port: int, scope: anyio.CancelScope) -> None:
        try:
            await fetch_greeting(host, port, timeout=probe_timeout)
        except GreetingFailed as exc:
            failures[port] = exc.reason
            return
        if not found:
            found.append(f"ws://{host}:{port}")
        scope.cancel()  # the first answer wins: stop the other probes

    async with anyio.create_task_group() as tg:
        for port in ports:
            tg.start_soon(probe, port, tg.cancel_scope)
    if found:
        return found[0]
    attempts = [(f"{host}:{port}", failures.get(port, "no answer")) for port in ports]
    raise LMStudioConnectionError(
        "LM Studio was not found: no server answered the greeting on the well-known ports. "
        f"{NOT_RUNNING_HINT}, or pass host= / set {HOST_ENV_VAR}",
        attempts=attempts,
    )


@attrs.frozen
class Credentials:
    """The identity sent on every socket of one client. The passkey never shows in reprs."""

    client_identifier: str
    client_passkey: str = attrs.field(repr=False)
    #: ``"api_token"``, the environment variable it came from, or ``"guest"``.
    source: str

    @property
    def is_guest(self) -> bool:
        return self.source == "guest"


def resolve_credentials(
    api_token: str | None = None, environ: Mapping[str, str] | None = None
) -> Credentials:
    """Credentials from ``api_token``, else the token environment variables, else a guest.

    :raises ValueError: a malformed token (the message names its source, never the token).
    """
    env = os.environ if environ is None else environ
    if api_token is not None:
        if not isinstance(api_token, str):
            raise TypeError(f"api_token must be a str, got {type(api_token).__name__}")
        return _from_token(api_token, "api_token")
    for name in TOKEN_ENV_VARS:
        value = env.get(name, "")
        if value.strip():
            return _from_token(value, name)
    return Credentials(
        f"guest:{secrets.token_urlsafe(18)}", secrets.token_urlsafe(18), source="guest"
    )


def _from_token(token: str, source: str) -> Credentials:
    where = "api_token" if source == "api_token" else f"the {source} environment variable"
    try:
        identifier, passkey = parse_api_token(token)
    except LocalProtocolError:
        raise ValueError(
            f"{where} is not a valid LM Studio API token: expected "
            "sk-lm-<8 letters or digits>:<20 letters or digits>; copy the whole token from "
            "LM Studio's developer settings"
        ) from None
    return Credentials(identifier, passkey, source=source)
